"""LoRA fine-tuning of one role, the same code for the tiny and the production preset (§3).

Completion-only loss: labels are -100 over the whole prompt (input, start marker and the
``### 답변:`` template) and over padding. ``output_message`` rows are rewritten with synonyms
on the fly, per example per batch, before tokenisation (§2.5).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase, Trainer, set_seed

from engine.rules.prompts import RESPONSE_TEMPLATE
from engine.runtime.lm import load_base, load_tokenizer, resolve_base
from engine.runtime.presets import LORA_ALPHA, LORA_DROPOUT, LORA_LR, LORA_RANK, Preset
from training.augment import augment
from training.data import load_rows, role_example, role_rows
from training.pretrain import loss_summary, training_arguments

IGNORE_INDEX = -100  # label value the loss skips
AUGMENTED_ROLES = ("output_message",)
ADAPTER_CONFIG = "adapter_config.json"  # peft's file name


class PairDataset(Dataset):
    """(prompt, completion) pairs kept as text: the collator tokenises (after augmenting)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, str]:
        prompt, completion = self.pairs[index]
        return {"prompt": prompt, "completion": completion}


def split_augmented(prompt: str, completion: str, rng: random.Random) -> tuple[str, str]:
    """Augment prompt and completion as one text (one draw per group, as upstream), then split
    again right after the response template, which no synonym touches."""
    text = augment(prompt + completion, rng)
    cut = text.index(RESPONSE_TEMPLATE) + len(RESPONSE_TEMPLATE)
    return text[:cut], text[cut:]


@dataclass
class CompletionCollator:
    """Tokenise pairs, mask the prompt and padding with -100, right-pad to the batch maximum.

    The prompt is tokenised on its own (with the tokenizer's BOS if it adds one) and the
    completion without special tokens, so the mask boundary is exactly the end of the template.
    """

    tokenizer: PreTrainedTokenizerBase
    augment_rows: bool = False
    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def encode(self, prompt: str, completion: str) -> tuple[list[int], list[int]]:
        """Input ids and labels of one example (labels masked over the prompt)."""
        if self.augment_rows:
            prompt, completion = split_augmented(prompt, completion, self.rng)
        prompt_ids = self.tokenizer(prompt)["input_ids"]
        completion_ids = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        return prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids

    def __call__(self, batch: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        encoded = [self.encode(item["prompt"], item["completion"]) for item in batch]
        width = max(len(ids) for ids, _ in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids, labels, attention = [], [], []
        for ids, item_labels in encoded:
            fill = width - len(ids)
            input_ids.append(ids + [pad] * fill)
            labels.append(item_labels + [IGNORE_INDEX] * fill)
            attention.append([1] * len(ids) + [0] * fill)
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(attention),
        }


def make_collator(
    role: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0
) -> CompletionCollator:
    """The role's collator: only ``output_message`` is augmented (§2.5)."""
    return CompletionCollator(tokenizer, augment_rows=role in AUGMENTED_ROLES, seed=seed)


def role_pairs(role: str, eos: str, max_rows: int | None = None) -> list[tuple[str, str]]:
    """(prompt, completion) pairs of the role's train rows (`training.data.role_rows`) among the
    first ``max_rows`` rows of the train split if given."""
    rows = load_rows("train")
    if max_rows is not None:
        rows = rows[:max_rows]
    return [role_example(role, row, eos) for row in role_rows(role, rows)]


def lora_config(target_modules: tuple[str, ...]) -> Any:
    """Upstream's LoRA settings (§3): r=64, alpha=16, dropout 0.05, gaussian init."""
    from peft import LoraConfig

    return LoraConfig(
        r=LORA_RANK,
        lora_alpha=LORA_ALPHA,
        lora_dropout=LORA_DROPOUT,
        init_lora_weights="gaussian",
        task_type="CAUSAL_LM",
        target_modules=list(target_modules),
    )


def sort_saved_sets(out_dir: Path, config: Any) -> None:
    """Rewrite the saved adapter config with its set-valued fields sorted.

    peft keeps e.g. ``target_modules`` as a set and writes it in string-hash order, which
    changes from process to process (PYTHONHASHSEED): sorted, the same adapter is the same
    file, so two builds' checksums compare equal. Written as peft writes it otherwise.
    """
    path = out_dir / ADAPTER_CONFIG
    saved = json.loads(path.read_text(encoding="utf-8"))
    for key, value in config.to_dict().items():
        if isinstance(value, set) and key in saved:
            saved[key] = sorted(value, key=str)
    path.write_text(json.dumps(saved, indent=2, sort_keys=True), encoding="utf-8")


def finetune_role(
    preset: Preset,
    role: str,
    *,
    epochs: int | None = None,
    max_rows: int | None = None,
    seed: int = 0,
    output_dir: Path | None = None,
) -> dict[str, float]:
    """Train ``role``'s LoRA adapter on the preset's base and save it (adapter + tokenizer).

    Raises `engine.runtime.lm.MissingBaseModel` (one line) when the base is not available locally.
    Returns first/final logged loss, mean loss, steps, seconds and trainable parameters.
    """
    from peft import get_peft_model

    started = time.perf_counter()
    spec = preset.roles[role]
    field_name = f"{spec.base}_base"
    base_location = resolve_base(preset.base_for(role), field_name)
    tokenizer = load_tokenizer(base_location)
    base = load_base(preset.base_for(role), field_name)
    set_seed(seed)  # the LoRA weights' gaussian init draws from it
    model = get_peft_model(base, lora_config(spec.target_modules))
    out_dir = output_dir or preset.adapter_dir(role)

    collator = make_collator(role, tokenizer, seed)
    args = training_arguments(
        out_dir / "_trainer",
        epochs=epochs or spec.epochs,
        batch_size=spec.batch_size,
        lr=LORA_LR,
        seed=seed,
        label_names=["labels"],
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=PairDataset(role_pairs(role, tokenizer.eos_token, max_rows)),
        data_collator=collator,
    )
    trainer.train()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    sort_saved_sets(out_dir, model.peft_config["default"])
    tokenizer.save_pretrained(str(out_dir))
    shutil.rmtree(out_dir / "_trainer", ignore_errors=True)
    summary = loss_summary(trainer, started)
    summary["trainable_parameters"] = float(
        sum(p.numel() for p in model.parameters() if p.requires_grad)
    )
    return summary
