"""Role generation: batched RoleModels on real toy models, and the retry/fallback bookkeeping."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from engine.rules import prompts
from engine.rules.expression import FALLBACK_EXPRESSION, Expression
from engine.rules.memory_items import MemoryItem
from engine.runtime.lm import Generated, RoleModels
from engine.runtime.roles import (
    UNTERMINATED,
    WEEKDAY_REJECTION,
    extract_memories,
    extract_memory,
    generate_expression,
    generate_replies,
    generate_reply,
    generate_summaries,
    generate_summary,
)
from tests.training.conftest import ToyWorkspace, toy_workspace_for

WEDNESDAY = datetime(2025, 6, 4, 15, 0)
PROMPTS = [
    "너는 누구야?",
    "(지금은 수요일 오후) 오늘 뭐 해?",
    "로라야 나이 몇살이야? 궁금해서 물어봐",
    "[상태: 피곤함] 오늘 너무 힘들었어",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> RoleModels:
    workspace: ToyWorkspace = toy_workspace_for(tmp_path_factory)
    return RoleModels.from_preset(workspace.preset)


# --- real toy models ---------------------------------------------------------------


def test_each_base_loaded_once_with_its_roles_weights(models: RoleModels) -> None:
    from engine.runtime.merged import RoleLinear

    assert set(models.models) == {"kanana", "polyglot"}
    for base, roles in (
        ("kanana", {"output_message", "summary"}),
        ("polyglot", {"memory", "eyes_mouth_pose"}),
    ):
        layers = [m for m in models.models[base].modules() if isinstance(m, RoleLinear)]
        assert layers and all(set(layer.weights) == roles for layer in layers)


@pytest.mark.parametrize("role", ["output_message", "summary", "memory", "eyes_mouth_pose"])
def test_batched_greedy_equals_one_by_one(models: RoleModels, role: str) -> None:
    role_prompts = [p + models.preset.roles[role].start for p in PROMPTS]
    batched = models.generate(role, role_prompts, temperature=0.0, max_new_tokens=20)
    single = [
        models.generate(role, [p], temperature=0.0, max_new_tokens=20)[0] for p in role_prompts
    ]
    assert batched == single


def test_budgets_are_per_row_and_only_new_text_returned(models: RoleModels) -> None:
    role_prompts = [prompts.reply_prompt(p) for p in PROMPTS]
    lengths = [models.count_tokens(p) for p in role_prompts]
    budget = min(lengths) + 3
    out = models.generate("output_message", role_prompts, temperature=0.0, max_length=budget)
    for length, generated in zip(lengths, out):
        assert generated.new_tokens <= max(budget - length, 0)
        assert not generated.text.startswith(prompts.REPLY_START.strip())
    longest = lengths.index(max(lengths))
    assert out[longest] == Generated("", 0, False)  # no room left for this row


def test_sampling_is_seeded_and_never_emits_half_characters(models: RoleModels) -> None:
    role_prompts = [prompts.reply_prompt(p) for p in PROMPTS] * 4
    first = models.generate(
        "output_message", role_prompts, temperature=2.0, max_new_tokens=30, seed=5
    )
    again = models.generate(
        "output_message", role_prompts, temperature=2.0, max_new_tokens=30, seed=5
    )
    assert first == again
    assert all("\ufffd" not in g.text for g in first)
    for g in first:
        if g.hit_end:
            assert g.text.endswith(prompts.REPLY_END)


def test_count_tokens_includes_bos(models: RoleModels) -> None:
    tokenizer = models.tokenizers["output_message"]
    assert (
        models.count_tokens("안녕")
        == len(tokenizer("안녕", add_special_tokens=False)["input_ids"]) + 1
    )


def test_role_procedures_run_on_toy_models(models: RoleModels) -> None:
    reply = generate_reply(models, PROMPTS[1], WEDNESDAY, seed=0)
    assert 1 <= reply.attempts <= prompts.REPLY_ATTEMPTS and reply.text
    summary = generate_summary(models, PROMPTS[1], reply.text, seed=0)
    assert 1 <= summary.attempts <= prompts.SUMMARY_ATTEMPTS
    memory = extract_memory(models, PROMPTS[3], seed=0)
    assert memory.item is None or isinstance(memory.item, MemoryItem)
    expression = generate_expression(models, reply.text, seed=0)
    assert isinstance(expression.expression, Expression)


# --- retry bookkeeping with scripted generations --------------------------------------

Script = Callable[[str, float], Generated]


@dataclass
class ScriptedModels:
    """Stands in for RoleModels only to test the retry/fallback bookkeeping."""

    script: Script
    calls: list[tuple[str, list[str], float, int | None, int | None]] = field(default_factory=list)

    def generate(
        self,
        role: str,
        prompts_: list[str],
        *,
        temperature: float,
        max_new_tokens: int | None = None,
        max_length: int | None = None,
        seed: int | None = None,
    ) -> list[Generated]:
        self.calls.append((role, list(prompts_), temperature, max_new_tokens, max_length))
        return [self.script(p, temperature) for p in prompts_]


def _end(text: str, marker: str = prompts.REPLY_END) -> Generated:
    return Generated(f" {text} {marker}", 5, True)


def test_reply_retries_only_rejected_rows_and_raises_temperature() -> None:
    def script(prompt: str, temperature: float) -> Generated:
        if prompt.startswith("좋은"):
            return _end("좋아!")
        if prompt.startswith("요일"):  # hallucinates at 0.6, fine once the temperature rose
            return _end("오늘은 금요일!") if temperature < 0.65 else _end("수요일 좋아")
        return Generated(" ", 3, False)  # empty every time

    fake = ScriptedModels(script)
    good, weekday, empty = generate_replies(fake, ["좋은 질문", "요일 질문", "빈 질문"], WEDNESDAY)
    assert (good.text, good.attempts, good.first_try, good.failed) == ("좋아!", 1, True, False)
    assert (weekday.text, weekday.attempts, weekday.rejections) == (
        "수요일 좋아",
        2,
        (WEEKDAY_REJECTION,),
    )
    assert (empty.text, empty.attempts, empty.failed) == (
        prompts.LEFT_ON_READ,
        prompts.REPLY_ATTEMPTS,
        True,
    )
    assert [len(c[1]) for c in fake.calls] == [3, 1, 1, 1, 1, 1]  # round 2 split by temperature
    assert {c[4] for c in fake.calls} == {prompts.REPLY_MAX_LENGTH}
    assert sorted(c[2] for c in fake.calls[1:3]) == [0.6, 0.7]


def test_weekday_check_skipped_on_last_attempt_and_unterminated_rejected() -> None:
    fake = ScriptedModels(lambda p, t: _end("오늘은 금요일!"))
    outcome = generate_reply(fake, "질문", WEDNESDAY)
    assert outcome.attempts == prompts.REPLY_ATTEMPTS and not outcome.failed
    assert outcome.rejections == (WEEKDAY_REJECTION,) * (prompts.REPLY_ATTEMPTS - 1)
    assert [c[2] for c in fake.calls] == [0.6, 0.7, 0.8, 0.9, 1.0]
    cut = generate_reply(
        ScriptedModels(lambda p, t: Generated(" 끝나지 않은 답", 100, False)), "질문", None
    )
    assert cut.failed and set(cut.rejections) == {UNTERMINATED}


def test_summary_three_attempts_then_empty() -> None:
    attempts = iter(
        [
            Generated(" 가" * 40, 64, False),
            Generated(" 요약 종료 (요약 종료)", 6, True),
            Generated(" 😤 (요약 종료)", 4, True),
        ]
    )
    fake = ScriptedModels(lambda p, t: next(attempts))
    outcome = generate_summary(fake, "질문", "답변")
    assert (outcome.text, outcome.attempts, outcome.failed) == ("", prompts.SUMMARY_ATTEMPTS, True)
    assert fake.calls[0][1] == [prompts.summary_prompt("질문", "답변")]
    assert fake.calls[0][3] == prompts.SUMMARY_MAX_NEW_TOKENS
    ok = generate_summaries(
        ScriptedModels(lambda p, t: _end("오로라 소개", prompts.SUMMARY_END)), ["a"], ["b"]
    )
    assert ok[0].text == "오로라 소개" and ok[0].first_try


def test_memory_items_empty_truncated_and_fallback() -> None:
    def script(prompt: str, temperature: float) -> Generated:
        if prompt.startswith("기억"):
            return _end("[상태: 피곤함]", prompts.SUMMARY_END)
        if prompt.startswith("없음"):
            return _end("", prompts.SUMMARY_END)
        return Generated(" [오늘 일정: 아주 긴", prompts.MEMORY_MAX_NEW_TOKENS, False)

    fake = ScriptedModels(script)
    item, nothing, cut = extract_memories(fake, ["기억할 것", "없음", "잘림"])
    assert (
        item.item == MemoryItem("상태", "피곤함")
        and item.text == "[상태: 피곤함]"
        and item.first_try
    )
    assert nothing.item is None and not nothing.failed and nothing.text == ""
    assert cut.item is None and cut.failed and cut.attempts == prompts.MEMORY_ATTEMPTS
    assert all(
        c[3] == prompts.MEMORY_MAX_NEW_TOKENS and c[2] == prompts.MEMORY_TEMPERATURE
        for c in fake.calls
    )


def test_expression_parses_or_falls_back() -> None:
    outputs = iter(
        [
            Generated(" (눈 (또는 입", 10, False),
            _end("(눈 크게, 입 보통, 고개 돌림 없음)", prompts.EXPRESSION_END),
        ]
    )
    fake = ScriptedModels(lambda p, t: next(outputs))
    outcome = generate_expression(fake, "좋아!")
    assert outcome.expression == Expression("크게", "보통", "없음") and outcome.attempts == 2
    assert fake.calls[0][2] == prompts.EXPRESSION_TEMPERATURE
    fallback = generate_expression(ScriptedModels(lambda p, t: Generated("???", 3, False)), "좋아!")
    assert fallback.expression == FALLBACK_EXPRESSION and fallback.failed
    assert fallback.attempts == prompts.EXPRESSION_ATTEMPTS
