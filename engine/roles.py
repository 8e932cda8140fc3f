"""Role procedures of one turn (reference §1 steps 5, 7, 8, 9) with upstream's retries.

Every procedure is batched: each attempt round generates one batch for the rows still
rejected (one batch per distinct temperature), so the evaluation and a cross-user batcher
share the code with the single-turn versions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine import prompts
from engine.answers import (
    clean_candidate,
    finalize_reply,
    finalize_summary,
    reply_rejection_reason,
    summary_rejection_reason,
)
from engine.expression import FALLBACK_EXPRESSION, Expression, parse_expression
from engine.lm import Generated
from engine.memory_items import MemoryItem, accepted_item, memory_rejection_reason, normalize_memory_output

WEEKDAY_REJECTION = "weekday hallucination"
UNTERMINATED = "unterminated"  # budget or EOS reached before the end marker: a cut-off reply
UNPARSABLE = "unparsable"
SEED_STRIDE = 1_000  # seed offset per attempt round, so retries draw fresh samples


class Generator(Protocol):
    """What the procedures need from `engine.lm.RoleModels`."""

    def generate(self, role: str, prompts: list[str], *, temperature: float,
                 max_new_tokens: int | None = None, max_length: int | None = None,
                 seed: int | None = None) -> list[Generated]: ...


@dataclass(frozen=True)
class RoleOutcome:
    """Result of one role for one row: final text, attempts used and what was rejected."""

    text: str
    attempts: int
    first_try: bool  # the first candidate was accepted
    failed: bool  # every attempt was rejected; ``text`` is the fallback
    rejections: tuple[str, ...] = ()
    item: MemoryItem | None = None
    expression: Expression | None = None


# judge(row, candidate, attempt) -> (rejection reason or None, accepted outcome fields)
Verdict = tuple[str | None, dict[str, object]]
Judge = Callable[[int, Generated, int], Verdict]


def _run_rounds(models: Generator, role: str, role_prompts: Sequence[str], *, attempts: int,
                temperature_of: Callable[[int], float], judge: Judge, fallback: dict[str, object],
                max_new_tokens: int | None = None, max_length: int | None = None,
                seed: int | None = None) -> list[RoleOutcome]:
    """Generate, judge and retry only the rejected rows, up to ``attempts`` rounds."""
    outcomes: list[RoleOutcome | None] = [None] * len(role_prompts)
    rejections: list[list[str]] = [[] for _ in role_prompts]
    for attempt in range(attempts):
        pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not pending:
            break
        by_temperature: dict[float, list[int]] = {}
        for i in pending:
            by_temperature.setdefault(temperature_of(i), []).append(i)
        for group, (temperature, rows) in enumerate(sorted(by_temperature.items())):
            round_seed = None if seed is None else seed + attempt * SEED_STRIDE + group
            generated = models.generate(role, [role_prompts[i] for i in rows], temperature=temperature,
                                        max_new_tokens=max_new_tokens, max_length=max_length,
                                        seed=round_seed)
            for i, candidate in zip(rows, generated):
                reason, fields = judge(i, candidate, attempt)
                if reason is not None:
                    rejections[i].append(reason)
                    continue
                outcomes[i] = RoleOutcome(attempts=attempt + 1, first_try=attempt == 0, failed=False,
                                          rejections=tuple(rejections[i]), **fields)  # type: ignore[arg-type]
    return [outcome or RoleOutcome(attempts=attempts, first_try=False, failed=True,
                                   rejections=tuple(rejections[i]), **fallback)  # type: ignore[arg-type]
            for i, outcome in enumerate(outcomes)]


def _per_row(now: datetime | None | Sequence[datetime | None], count: int) -> list[datetime | None]:
    if isinstance(now, Sequence):
        if len(now) != count:
            raise ValueError("one `now` per row")
        return list(now)
    return [now] * count


def generate_replies(models: Generator, final_inputs: Sequence[str],
                     now: datetime | None | Sequence[datetime | None], *,
                     seed: int | None = None) -> list[RoleOutcome]:
    """Answers (§1 step 5): 5 attempts within 128 total tokens; '(읽씹)' if all fail.

    ``now`` (one per row or shared) is the local time used for the weekday check; None skips
    it. The check is also skipped on the last attempt, and each weekday hallucination raises
    that row's temperature by 0.1. A candidate that never reached ``(답변 종료)`` is rejected.
    """
    nows = _per_row(now, len(final_inputs))
    hallucinations = [0] * len(final_inputs)

    def judge(i: int, candidate: Generated, attempt: int) -> Verdict:
        text = clean_candidate(candidate.text)
        last = attempt == prompts.REPLY_ATTEMPTS - 1
        reason = reply_rejection_reason(text, None if last else nows[i])
        if reason is None and not candidate.hit_end:
            reason = UNTERMINATED
        if reason == WEEKDAY_REJECTION:
            hallucinations[i] += 1
        return reason, {"text": finalize_reply(text)}

    return _run_rounds(models, "output_message", [prompts.reply_prompt(x) for x in final_inputs],
                       attempts=prompts.REPLY_ATTEMPTS,
                       temperature_of=lambda i: prompts.reply_temperature(hallucinations[i]),
                       judge=judge, fallback={"text": prompts.LEFT_ON_READ},
                       max_length=prompts.REPLY_MAX_LENGTH, seed=seed)


def generate_summaries(models: Generator, final_inputs: Sequence[str], answers: Sequence[str], *,
                       seed: int | None = None) -> list[RoleOutcome]:
    """Turn summaries (§1 step 8): 3 attempts, 64 new tokens; '' (no summary) if all fail."""
    if len(final_inputs) != len(answers):
        raise ValueError("one answer per input")

    def judge(i: int, candidate: Generated, attempt: int) -> Verdict:
        return (summary_rejection_reason(candidate.text, candidate.new_tokens),
                {"text": finalize_summary(candidate.text)})

    role_prompts = [prompts.summary_prompt(x, a) for x, a in zip(final_inputs, answers)]
    return _run_rounds(models, "summary", role_prompts, attempts=prompts.SUMMARY_ATTEMPTS,
                       temperature_of=lambda i: prompts.SUMMARY_TEMPERATURE, judge=judge,
                       fallback={"text": ""}, max_new_tokens=prompts.SUMMARY_MAX_NEW_TOKENS, seed=seed)


def extract_memories(models: Generator, final_inputs: Sequence[str], *,
                     seed: int | None = None) -> list[RoleOutcome]:
    """Memory items (§1 step 7): 5 attempts, 24 new tokens; ``item`` None = nothing to store.

    An empty candidate is a valid "nothing to remember"; a candidate that used all 24 tokens
    without the end marker was cut off and is rejected.
    """
    def judge(i: int, candidate: Generated, attempt: int) -> Verdict:
        used_all = candidate.new_tokens >= prompts.MEMORY_MAX_NEW_TOKENS and not candidate.hit_end
        normalized = normalize_memory_output(candidate.text)
        reason = memory_rejection_reason(normalized, used_all)
        item = accepted_item(normalized) if reason is None else None
        return reason, {"text": item.render() if item else "", "item": item}

    return _run_rounds(models, "memory", [prompts.memory_prompt(x) for x in final_inputs],
                       attempts=prompts.MEMORY_ATTEMPTS,
                       temperature_of=lambda i: prompts.MEMORY_TEMPERATURE, judge=judge,
                       fallback={"text": "", "item": None},
                       max_new_tokens=prompts.MEMORY_MAX_NEW_TOKENS, seed=seed)


def generate_expressions(models: Generator, answers: Sequence[str], *,
                         seed: int | None = None) -> list[RoleOutcome]:
    """Expressions (§1 step 9): 5 attempts at temperature 1.0; 보통/보통/없음 if none parses."""
    def judge(i: int, candidate: Generated, attempt: int) -> Verdict:
        expression = parse_expression(candidate.text)
        if expression is None:
            return UNPARSABLE, {}
        return None, {"text": expression.render(), "expression": expression}

    return _run_rounds(models, "eyes_mouth_pose", [prompts.expression_prompt(a) for a in answers],
                       attempts=prompts.EXPRESSION_ATTEMPTS,
                       temperature_of=lambda i: prompts.EXPRESSION_TEMPERATURE, judge=judge,
                       fallback={"text": FALLBACK_EXPRESSION.render(), "expression": FALLBACK_EXPRESSION},
                       max_new_tokens=prompts.EXPRESSION_MAX_NEW_TOKENS, seed=seed)


def generate_reply(models: Generator, final_input: str, now: datetime | None,
                   seed: int | None = None) -> RoleOutcome:
    """One turn's answer; see `generate_replies`."""
    return generate_replies(models, [final_input], now, seed=seed)[0]


def generate_summary(models: Generator, final_input: str, answer: str,
                     seed: int | None = None) -> RoleOutcome:
    """One turn's summary; see `generate_summaries`."""
    return generate_summaries(models, [final_input], [answer], seed=seed)[0]


def extract_memory(models: Generator, final_input: str, seed: int | None = None) -> RoleOutcome:
    """One turn's memory item (``.item``); see `extract_memories`."""
    return extract_memories(models, [final_input], seed=seed)[0]


def generate_expression(models: Generator, answer: str, seed: int | None = None) -> RoleOutcome:
    """One answer's expression (``.expression``); see `generate_expressions`."""
    return generate_expressions(models, [answer], seed=seed)[0]
