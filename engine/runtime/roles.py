"""Role procedures of one turn (reference §1 steps 5, 7, 8, 9) with upstream's retries.

Every procedure is batched and step-able: `step` makes one attempt for a batch of rows (one
generation per distinct temperature) and hands back the rows still to retry, so a serving
batcher can merge those retries into its next batch; `run` repeats `step` to the end, as
upstream's retry loops do. Evaluation and serving share the code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from engine.rules import prompts
from engine.rules.answers import (
    clean_candidate,
    finalize_reply,
    finalize_summary,
    reply_rejection_reason,
    summary_rejection_reason,
)
from engine.rules.expression import FALLBACK_EXPRESSION, Expression, parse_expression
from engine.rules.memory_items import (
    MemoryItem,
    accepted_item,
    memory_rejection_reason,
    normalize_memory_output,
)
from engine.runtime.attempts import Attempt
from engine.runtime.lm import Generated, Request
from engine.runtime.presets import Role

WEEKDAY_REJECTION = "weekday hallucination"
UNTERMINATED = "unterminated"  # budget or EOS reached before the end marker: a cut-off reply
UNPARSABLE = "unparsable"
SEED_STRIDE = 1_000  # seed offset per attempt round, so retries draw fresh samples


class Generator(Protocol):
    """What the procedures need from `engine.runtime.lm.RoleModels`."""

    def generate(
        self,
        role: str,
        prompts: list[str],
        *,
        temperature: float,
        max_new_tokens: int | None = None,
        max_length: int | None = None,
        seed: int | None = None,
        prefixes: list[tuple[int, ...]] | None = None,
        caches: list[Any] | None = None,
        max_steps: int | None = None,
    ) -> list[Generated]: ...


class RowGenerator(Protocol):
    """`engine.runtime.lm.RoleModels.generate_rows`: rows of several roles in one batch."""

    def generate_rows(
        self, requests: list[Request], *, seed: int | None = None, max_steps: int | None = None
    ) -> list[Generated]: ...


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


@dataclass(frozen=True)
class Judged:
    """What a judged candidate (or a role's fallback) gives its outcome."""

    text: str = ""
    item: MemoryItem | None = None
    expression: Expression | None = None


# A candidate's rejection reason (None: accepted) and what it gives.
Judge = Callable[[Attempt, Generated], tuple[str | None, Judged]]


@dataclass(frozen=True)
class Procedure:
    """A role's generation rules: attempts, budget, temperature and the judge of a candidate."""

    role: Role
    attempts: int
    judge: Judge
    fallback: Judged
    temperature: Callable[[Attempt], float]
    max_new_tokens: int | None = None
    max_length: int | None = None

    def outcome(self, row: Attempt, judged: Judged) -> RoleOutcome:
        return RoleOutcome(
            judged.text,
            row.attempt,
            first_try=row.attempt == 1,
            failed=False,
            rejections=row.rejections,
            item=judged.item,
            expression=judged.expression,
        )

    def failure(self, row: Attempt) -> RoleOutcome:
        return RoleOutcome(
            self.fallback.text,
            row.attempt,
            first_try=False,
            failed=True,
            rejections=row.rejections,
            item=self.fallback.item,
            expression=self.fallback.expression,
        )


def step(
    models: Generator,
    procedure: Procedure,
    rows: Sequence[Attempt],
    *,
    seed: int | None = None,
    chunk: int | None = None,
) -> list[RoleOutcome | Attempt]:
    """One attempt for each row (one batch per distinct temperature): an outcome where the
    candidate was accepted or the row ran out of attempts, else the row for another try.

    With ``chunk``, an attempt decodes at most that many tokens per call; a row still going
    comes back with its tokens so far in ``partial`` and continues in a later call (its
    attempt is judged once it ends), so one long row never holds a whole batch."""
    results: list[RoleOutcome | Attempt] = list(rows)
    by_temperature: dict[float, list[int]] = {}
    for i, row in enumerate(rows):
        by_temperature.setdefault(procedure.temperature(row), []).append(i)
    for group, (temperature, indices) in enumerate(sorted(by_temperature.items())):
        prompts_ = [rows[i].prompt for i in indices]
        group_seed = None if seed is None else seed + group
        if chunk is None:  # to the end (a generator without chunked decoding is enough)
            generated = models.generate(
                procedure.role,
                prompts_,
                temperature=temperature,
                max_new_tokens=procedure.max_new_tokens,
                max_length=procedure.max_length,
                seed=group_seed,
            )
        else:  # at most ``chunk`` tokens, continuing each row's tokens and cache so far
            generated = models.generate(
                procedure.role,
                prompts_,
                temperature=temperature,
                max_new_tokens=procedure.max_new_tokens,
                max_length=procedure.max_length,
                seed=group_seed,
                prefixes=[rows[i].partial for i in indices],
                caches=[rows[i].cache for i in indices],
                max_steps=chunk,
            )
        for i, candidate in zip(indices, generated):
            results[i] = _settle(procedure, rows[i], candidate)
    return results


def step_rows(
    models: RowGenerator, items: Sequence[tuple[Procedure, Attempt]], *, chunk: int | None = None
) -> list[RoleOutcome | Attempt]:
    """`step` over rows of different roles on one base, as one batch: each row has its own
    adapter, budget and temperature (reply and summary rows decode together)."""
    generated = models.generate_rows(
        [
            Request(
                procedure.role,
                row.prompt,
                procedure.temperature(row),
                procedure.max_new_tokens,
                procedure.max_length,
                row.partial,
                row.cache,
            )
            for procedure, row in items
        ],
        max_steps=chunk,
    )
    return [
        _settle(procedure, row, candidate) for (procedure, row), candidate in zip(items, generated)
    ]


def _settle(procedure: Procedure, row: Attempt, candidate: Generated) -> RoleOutcome | Attempt:
    """A row after one call: still decoding (tokens kept), judged and accepted, out of
    attempts, or rejected and due another attempt."""
    if not candidate.finished:
        row.partial, row.cache = candidate.ids, candidate.cache
        return row
    row.partial, row.cache = (), None
    reason, fields = procedure.judge(row, candidate)
    row.attempt += 1
    if reason is None:
        return procedure.outcome(row, fields)
    row.rejections += (reason,)
    if reason == WEEKDAY_REJECTION:
        row.hallucinations += 1
    if row.attempt >= procedure.attempts:
        return procedure.failure(row)
    return row


def run(
    models: Generator, procedure: Procedure, rows: Sequence[Attempt], *, seed: int | None = None
) -> list[RoleOutcome]:
    """Every row to its outcome: rounds of `step` over the rows still pending."""
    outcomes: list[RoleOutcome | Attempt] = list(rows)
    for attempt in range(procedure.attempts):
        pending = [i for i, o in enumerate(outcomes) if isinstance(o, Attempt)]
        if not pending:
            break
        stepped = step(
            models,
            procedure,
            [outcomes[i] for i in pending],  # type: ignore[misc]
            seed=None if seed is None else seed + attempt * SEED_STRIDE,
        )
        for i, result in zip(pending, stepped):
            outcomes[i] = result
    return [o for o in outcomes if isinstance(o, RoleOutcome)]


def _judge_reply(row: Attempt, candidate: Generated) -> tuple[str | None, Judged]:
    """The weekday check is skipped on the last attempt; a reply must reach `(답변 종료)`."""
    text = clean_candidate(candidate.text)
    last = row.attempt == prompts.REPLY_ATTEMPTS - 1
    reason = reply_rejection_reason(text, None if last else row.now)
    if reason is None and not candidate.hit_end:
        reason = UNTERMINATED
    return reason, Judged(finalize_reply(text))


def _judge_summary(row: Attempt, candidate: Generated) -> tuple[str | None, Judged]:
    return (
        summary_rejection_reason(candidate.text, candidate.new_tokens),
        Judged(finalize_summary(candidate.text)),
    )


def _judge_memory(row: Attempt, candidate: Generated) -> tuple[str | None, Judged]:
    """Empty is a valid "nothing to remember"; all 24 tokens without the marker is cut off."""
    used_all = candidate.new_tokens >= prompts.MEMORY_MAX_NEW_TOKENS and not candidate.hit_end
    normalized = normalize_memory_output(candidate.text)
    reason = memory_rejection_reason(normalized, used_all)
    item = accepted_item(normalized) if reason is None else None
    return reason, Judged(item.render() if item else "", item=item)


def _judge_expression(row: Attempt, candidate: Generated) -> tuple[str | None, Judged]:
    expression = parse_expression(candidate.text)
    if expression is None:
        return UNPARSABLE, Judged()
    return None, Judged(expression.render(), expression=expression)


# Reference §1 steps 5, 8, 7, 9.
REPLY = Procedure(
    Role.REPLY,
    prompts.REPLY_ATTEMPTS,
    _judge_reply,
    Judged(prompts.LEFT_ON_READ),
    lambda row: prompts.reply_temperature(row.hallucinations),
    max_length=prompts.REPLY_MAX_LENGTH,
)
SUMMARY = Procedure(
    Role.SUMMARY,
    prompts.SUMMARY_ATTEMPTS,
    _judge_summary,
    Judged(""),
    lambda row: prompts.SUMMARY_TEMPERATURE,
    max_new_tokens=prompts.SUMMARY_MAX_NEW_TOKENS,
)
MEMORY = Procedure(
    Role.MEMORY,
    prompts.MEMORY_ATTEMPTS,
    _judge_memory,
    Judged(""),
    lambda row: prompts.MEMORY_TEMPERATURE,
    max_new_tokens=prompts.MEMORY_MAX_NEW_TOKENS,
)
EXPRESSION = Procedure(
    Role.EXPRESSION,
    prompts.EXPRESSION_ATTEMPTS,
    _judge_expression,
    Judged(FALLBACK_EXPRESSION.render(), expression=FALLBACK_EXPRESSION),
    lambda row: prompts.EXPRESSION_TEMPERATURE,
    max_new_tokens=prompts.EXPRESSION_MAX_NEW_TOKENS,
)


def _per_row(now: datetime | Sequence[datetime | None] | None, count: int) -> list[datetime | None]:
    if isinstance(now, Sequence):
        if len(now) != count:
            raise ValueError("one `now` per row")
        return list(now)
    return [now] * count


def reply_attempt(final_input: str, now: datetime | None) -> Attempt:
    return Attempt(prompts.reply_prompt(final_input), now)


def summary_attempt(final_input: str, answer: str) -> Attempt:
    return Attempt(prompts.summary_prompt(final_input, answer))


def memory_attempt(final_input: str) -> Attempt:
    return Attempt(prompts.memory_prompt(final_input))


def expression_attempt(answer: str) -> Attempt:
    return Attempt(prompts.expression_prompt(answer))


def generate_replies(
    models: Generator,
    final_inputs: Sequence[str],
    now: datetime | Sequence[datetime | None] | None,
    *,
    seed: int | None = None,
) -> list[RoleOutcome]:
    """Answers (§1 step 5): 5 attempts within 128 total tokens; '(읽씹)' if all fail.

    ``now`` (one per row or shared) is the local time used for the weekday check; None skips
    it. The check is also skipped on the last attempt, and each weekday hallucination raises
    that row's temperature by 0.1. A candidate that never reached ``(답변 종료)`` is rejected.
    """
    nows = _per_row(now, len(final_inputs))
    return run(models, REPLY, [reply_attempt(x, t) for x, t in zip(final_inputs, nows)], seed=seed)


def generate_summaries(
    models: Generator,
    final_inputs: Sequence[str],
    answers: Sequence[str],
    *,
    seed: int | None = None,
) -> list[RoleOutcome]:
    """Turn summaries (§1 step 8): 3 attempts, 64 new tokens; '' (no summary) if all fail."""
    if len(final_inputs) != len(answers):
        raise ValueError("one answer per input")
    return run(
        models, SUMMARY, [summary_attempt(x, a) for x, a in zip(final_inputs, answers)], seed=seed
    )


def extract_memories(
    models: Generator, final_inputs: Sequence[str], *, seed: int | None = None
) -> list[RoleOutcome]:
    """Memory items (§1 step 7): 5 attempts, 24 new tokens; ``item`` None = nothing to store."""
    return run(models, MEMORY, [memory_attempt(x) for x in final_inputs], seed=seed)


def generate_expressions(
    models: Generator, answers: Sequence[str], *, seed: int | None = None
) -> list[RoleOutcome]:
    """Expressions (§1 step 9): 5 attempts at temperature 1.0; 보통/보통/없음 if none parses."""
    return run(models, EXPRESSION, [expression_attempt(a) for a in answers], seed=seed)


def generate_reply(
    models: Generator, final_input: str, now: datetime | None, seed: int | None = None
) -> RoleOutcome:
    """One turn's answer; see `generate_replies`."""
    return generate_replies(models, [final_input], now, seed=seed)[0]


def generate_summary(
    models: Generator, final_input: str, answer: str, seed: int | None = None
) -> RoleOutcome:
    """One turn's summary; see `generate_summaries`."""
    return generate_summaries(models, [final_input], [answer], seed=seed)[0]


def extract_memory(models: Generator, final_input: str, seed: int | None = None) -> RoleOutcome:
    """One turn's memory item (``.item``); see `extract_memories`."""
    return extract_memories(models, [final_input], seed=seed)[0]


def generate_expression(models: Generator, answer: str, seed: int | None = None) -> RoleOutcome:
    """One answer's expression (``.expression``); see `generate_expressions`."""
    return generate_expressions(models, [answer], seed=seed)[0]
