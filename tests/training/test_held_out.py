"""The background roles' held-out train rows (issue 20): never trained on, scored for content."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.rules import prompts
from engine.rules.expression import parse_expression
from engine.runtime.lm import Generated
from engine.runtime.presets import ROLES, Role
from training.data import (
    HELD_OUT_ROLES,
    end_marker,
    held_out_rows,
    load_rows,
    pretraining_texts,
    role_prompt,
    role_rows,
)
from training.eval_lm import LM_HEADLINES, held_out_metrics
from training.finetune import role_pairs

BACKGROUND = (Role.SUMMARY, Role.MEMORY, Role.EXPRESSION)


def test_the_held_out_part_is_a_tenth_of_the_train_rows_spread_over_the_file() -> None:
    train = load_rows("train")
    held = held_out_rows()
    assert 0.09 <= len(held) / len(train) <= 0.11
    assert {row.split for row in held} == {"train"}
    # an input repeated in the file is held out everywhere it occurs, or nowhere
    held_inputs = {row.input_data for row in held}
    assert held == [row for row in train if row.input_data in held_inputs]
    # spread over the file, not one block of it
    assert held[0].idx < len(train) // 10 and held[-1].idx > len(train) * 9 // 10
    assert any(row.memory for row in held) and any(not row.memory for row in held)
    assert set(HELD_OUT_ROLES) == set(BACKGROUND)


@pytest.mark.parametrize("role", ROLES)
def test_no_background_role_trains_on_a_held_out_row(role: str) -> None:
    held = {row.idx for row in held_out_rows()}
    trained = {row.idx for row in role_rows(role)}
    if role in HELD_OUT_ROLES:
        assert not trained & held
        assert len(trained) == len(load_rows("train")) - len(held)
    else:  # the reply is scored on the valid split and keeps every train row
        assert held <= trained
    trained_prompts = {prompt for prompt, _ in role_pairs(role, "</s>")}
    held_prompts = {f"{role_prompt(role, r)} {prompts.RESPONSE_TEMPLATE}" for r in held_out_rows()}
    # not even the same prompt (the memory prompt is the user input alone)
    assert (trained_prompts & held_prompts) == (set() if role in HELD_OUT_ROLES else held_prompts)


def test_pretraining_texts_leave_out_the_held_out_targets_of_background_roles() -> None:
    held = held_out_rows()
    texts = set(pretraining_texts(ROLES, load_rows("train")))
    for row in held:
        for role in BACKGROUND:
            full = f"{role_prompt(role, row)} {row.target(role)} {end_marker(role)}"
            assert full not in texts
        reply = f"{role_prompt(Role.REPLY, row)} {row.output_message} {end_marker(Role.REPLY)}"
        assert reply in texts


@dataclass
class Answers:
    """Answers every prompt of the held-out rows with ``answer(role, row)``; counts calls."""

    answer: Any
    calls: Counter[str] = field(default_factory=Counter)

    def generate(self, role: str, prompts_: list[str], **_: Any) -> list[Generated]:
        by_prompt = {role_prompt(role, row): row for row in held_out_rows()}
        self.calls[role] += len(prompts_)
        out = []
        for prompt in prompts_:
            text = self.answer(role, by_prompt[prompt])
            out.append(Generated(f" {text} {end_marker(role)}", 8, True))
        return out


def test_answers_equal_to_the_targets_score_one_and_baselines_stay_below() -> None:
    metrics = held_out_metrics(Answers(lambda role, row: row.target(role)))  # type: ignore[arg-type]
    held = len(held_out_rows())
    assert metrics["held_rows"] == held
    for key in (
        "held_summary_f1",
        "held_memory_exact",
        "held_memory_key_exact",
        "held_memory_item_exact",
        "held_expression_eyes",
        "held_expression_mouth",
        "held_expression_pose",
        "held_expression_fields",
    ):
        assert metrics[key] == 1.0, key
    for key in (
        "held_summary_f1_baseline",
        "held_memory_exact_baseline",
        "held_memory_exact_empty_baseline",
        "held_expression_baseline_fields",
        "held_expression_common_baseline_fields",
    ):
        assert 0.0 < metrics[key] < 1.0, key


def test_a_constant_answer_scores_what_the_constant_baselines_say() -> None:
    """Nothing remembered and the most common expression: exactly the constant baselines."""
    common = "(눈 보통, 입 보통, 고개 돌림 없음)"
    fake = Answers(lambda role, row: "" if role == Role.MEMORY else common)
    metrics = held_out_metrics(fake)  # type: ignore[arg-type]
    assert metrics["held_memory_exact"] == metrics["held_memory_exact_empty_baseline"]
    assert metrics["held_memory_item_exact"] == 0.0
    assert metrics["held_expression_fields"] == metrics["held_expression_common_baseline_fields"]
    rows = held_out_rows()
    eyes = sum(parse_expression(r.eyes_mouth_pose).eyes == "보통" for r in rows)  # type: ignore[union-attr]
    assert metrics["held_expression_eyes"] == round(eyes / len(rows), 4)
    assert fake.calls[Role.SUMMARY] >= len(rows)  # each row asked at least once


def test_every_headline_is_a_metric_of_the_evaluation() -> None:
    held = held_out_metrics(Answers(lambda role, row: row.target(role)))  # type: ignore[arg-type]
    valid_split = {"reply_valid", "reply_f1", "reply_f1_baseline"}
    valid_split |= {"summary_valid", "memory_valid", "expression_valid"}
    assert set(LM_HEADLINES) <= set(held) | valid_split


def test_lm_seed_spread_fine_tunes_each_seed_in_its_own_folder(tmp_path, monkeypatch) -> None:
    import training.eval_lm
    import training.finetune
    from engine.runtime.presets import tiny

    preset = tiny(tmp_path)
    trained: list[tuple[str, int, str]] = []

    def finetune(seeded, role, *, seed):  # type: ignore[no-untyped-def]
        trained.append((role, seed, str(seeded.adapter_dir(role))))
        assert seeded.base_for(role) == preset.base_for(role)  # the preset's own bases
        return {}

    def evaluate(seeded, *, seed):  # type: ignore[no-untyped-def]
        return {k: 0.5 + 0.1 * seed for k in LM_HEADLINES} | {"rows": 90.0}, []

    monkeypatch.setattr(training.finetune, "finetune_role", finetune)
    monkeypatch.setattr(training.eval_lm, "run_evaluation", evaluate)
    result = training.eval_lm.lm_seed_spread(preset, tmp_path / "spread", (0, 2))
    assert [(r, s) for r, s, _ in trained] == [(r, s) for s in (0, 2) for r in ROLES]
    assert trained[0][2] == str(tmp_path / "spread" / "seed0" / "adapters" / ROLES[0])
    assert not preset.adapter_dir(ROLES[0]).exists()  # the preset's adapters are not touched
    assert set(result["per_seed"][0]) == set(LM_HEADLINES)
    assert result["spread"]["held_memory_exact"] == {"mean": 0.6, "min": 0.5, "max": 0.7}
