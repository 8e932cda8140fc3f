"""LoRA fine-tuning: completion-only masking, augmentation, saved adapters, the production path."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.rules.prompts import RESPONSE_TEMPLATE
from engine.rules.timetag import time_of_day
from engine.runtime.lm import MissingBaseModel, RoleModels
from engine.runtime.presets import KANANA_TARGETS, POLYGLOT_TARGETS, ROLES, production, with_bases
from tests.training.conftest import ToyWorkspace
from training.data import load_rows, role_example
from training.eval_lm import bigram_f1, now_for_input, run_evaluation
from training.finetune import IGNORE_INDEX, finetune_role, make_collator


@pytest.fixture(scope="module")
def tokenizer(toy_workspace: ToyWorkspace):
    return AutoTokenizer.from_pretrained(toy_workspace.tokenizer_dir)


def test_label_mask_covers_the_whole_prompt_and_padding(tokenizer) -> None:
    rows = load_rows("train")
    pairs = [
        role_example("summary", rows[0], tokenizer.eos_token),
        role_example("summary", rows[5], tokenizer.eos_token),
    ]
    batch = make_collator("summary", tokenizer)([{"prompt": p, "completion": c} for p, c in pairs])
    for i, (prompt, completion) in enumerate(pairs):
        prompt_ids = tokenizer(prompt)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        n, m = len(prompt_ids), len(completion_ids)
        labels = batch["labels"][i].tolist()
        ids = batch["input_ids"][i].tolist()
        assert ids[: n + m] == prompt_ids + completion_ids
        assert labels[:n] == [IGNORE_INDEX] * n  # BOS, input, markers and the template
        assert labels[n : n + m] == completion_ids
        assert labels[n + m :] == [IGNORE_INDEX] * (len(labels) - n - m)  # padding
        assert batch["attention_mask"][i].tolist() == [1] * (n + m) + [0] * (len(labels) - n - m)
        assert tokenizer.decode(ids[:n], skip_special_tokens=True).endswith(RESPONSE_TEMPLATE)
        assert labels[n + m - 1] == tokenizer.eos_token_id
    assert (
        min(int((row != tokenizer.pad_token_id).sum()) for row in batch["input_ids"])
        < batch["input_ids"].shape[1]
    )


def test_augmentation_only_for_output_message(tokenizer) -> None:
    row = next(
        r for r in load_rows("train") if "ENTJ" in r.output_message or "엔티제" in r.output_message
    )
    for role in ROLES:
        collator = make_collator(role, tokenizer, seed=3)
        prompt, completion = role_example(role, row, tokenizer.eos_token)
        plain = (
            tokenizer(prompt)["input_ids"]
            + tokenizer(completion, add_special_tokens=False)["input_ids"]
        )
        seen = {tuple(collator.encode(prompt, completion)[0]) for _ in range(20)}
        if role == "output_message":
            assert collator.augment_rows and len(seen) > 1
        else:
            assert not collator.augment_rows and seen == {tuple(plain)}
    # The augmented prompt still ends with the template and is fully masked.
    collator = make_collator("output_message", tokenizer, seed=3)
    prompt, completion = role_example("output_message", row, tokenizer.eos_token)
    ids, labels = collator.encode(prompt, completion)
    n_masked = labels.index(next(label for label in labels if label != IGNORE_INDEX))
    assert tokenizer.decode(ids[:n_masked], skip_special_tokens=True).endswith(RESPONSE_TEMPLATE)


def test_finetune_loss_falls_saves_and_changes_outputs(
    tmp_path: Path, toy_workspace: ToyWorkspace
) -> None:
    out = tmp_path / "summary"
    result = finetune_role(toy_workspace.preset, "summary", epochs=12, max_rows=8, output_dir=out)
    assert result["final_loss"] < result["first_loss"]
    assert (out / "adapter_model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "_trainer").exists()
    config = json.loads((out / "adapter_config.json").read_text())
    assert (
        config["r"] == 64
        and config["lora_alpha"] == 16
        and config["init_lora_weights"] == "gaussian"
    )

    models = RoleModels.from_preset(toy_workspace.preset, merge=False)  # peft adapters, to add one
    models.models["kanana"].load_adapter(str(out), adapter_name="trained_summary")
    tokenizer = models.tokenizers["summary"]
    batch = tokenizer(["너는 누구야? (오로라 답변) 난 오로라야! (요약 시작)"], return_tensors="pt")
    bare = AutoModelForCausalLM.from_pretrained(toy_workspace.preset.kanana_base)
    model = models.models["kanana"]
    model.set_adapter("trained_summary")
    with torch.no_grad():
        tuned_logits = model(**batch).logits
        bare_logits = bare(**batch).logits
    assert not torch.allclose(tuned_logits, bare_logits, atol=1e-4)


def test_production_preset_without_weights_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    with pytest.raises(MissingBaseModel) as error:
        finetune_role(production(tmp_path), "output_message", max_rows=2)
    message = str(error.value)
    assert (
        "\n" not in message
        and "kakaocorp/kanana-1.5-2.1b-base" in message
        and "kanana_base" in message
    )
    with pytest.raises(MissingBaseModel):
        finetune_role(
            with_bases(production(tmp_path), polyglot_base=str(tmp_path / "nowhere")), "memory"
        )


def test_production_preset_trains_on_local_toy_bases(
    tmp_path: Path, toy_workspace: ToyWorkspace
) -> None:
    preset = with_bases(
        production(tmp_path),
        kanana_base=toy_workspace.preset.kanana_base,
        polyglot_base=toy_workspace.preset.polyglot_base,
    )
    for role, targets in (
        ("output_message", KANANA_TARGETS),
        ("eyes_mouth_pose", POLYGLOT_TARGETS),
    ):
        result = finetune_role(preset, role, epochs=1, max_rows=8)
        spec = preset.roles[role]
        assert result["steps"] == 8 // spec.batch_size
        config = json.loads((preset.adapter_dir(role) / "adapter_config.json").read_text())
        assert sorted(config["target_modules"]) == sorted(targets)
        assert config["base_model_name_or_path"] == preset.base_for(role)
    weights = AutoModelForCausalLM.from_pretrained(preset.kanana_base)
    assert weights.dtype == torch.float32  # CPU choice; bf16 only on CUDA


def test_evaluation_runs_on_toy_models(toy_workspace: ToyWorkspace) -> None:
    metrics, samples = run_evaluation(toy_workspace.preset, limit=4, examples=2)
    for key in (
        "reply_first_try",
        "reply_valid",
        "summary_first_try",
        "summary_valid",
        "memory_first_try",
        "memory_valid",
        "expression_first_try",
        "expression_valid",
        "reply_f1",
        "reply_f1_baseline",
        "expression_parse_rate",
        "memory_format_valid",
        "held_summary_f1",
        "held_memory_exact",
        "held_memory_key_exact",
        "held_expression_fields",
    ):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["rows"] == 4 and len(samples) == 2 and "examples" not in metrics
    assert metrics["held_rows"] == 4  # the held-out train rows are cut by the same limit
    assert set(samples[0]) >= {"input", "reference", "reply", "summary", "memory", "expression"}


def test_eval_helpers() -> None:
    assert bigram_f1("오로라야 안녕", "오로라야 안녕") == 1.0
    assert bigram_f1("가나", "다라") == 0.0
    tagged = "(지금은 금요일 저녁) 오늘 뭐 해?"
    now = now_for_input(tagged)
    assert (time_of_day(now).weekday, time_of_day(now).part) == ("금", "저녁")
    assert isinstance(now_for_input("안녕"), datetime)
