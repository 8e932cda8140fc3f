"""Evaluation of the four roles on the 90 valid prompts, through the serving procedures.

Valid rows carry only input and reference reply (§2.1), so summary, memory and expression are
scored for format validity (the runtime's own acceptance checks), and the reply also for
relevance: character-bigram F1 against the reference, next to the F1 of simply returning the
train reply whose input is most similar (what a pure lookup would score).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from engine.rules.timetag import TIME_TAG_PATTERN, WEEKDAYS
from engine.runtime.lm import RoleModels
from engine.runtime.presets import Preset
from engine.runtime.roles import (
    RoleOutcome,
    extract_memories,
    generate_expressions,
    generate_replies,
    generate_summaries,
)
from training.data import load_rows

# A Monday: weekday tags in valid inputs are turned into a `now` on that week.
REFERENCE_MONDAY = datetime(2025, 6, 2)
# Hours that land in each part of day under `engine.rules.timetag.time_of_day`.
PART_HOURS = {"오전": 10, "오후": 14, "저녁": 20}
# Untagged inputs are checked at a fixed Wednesday afternoon.
DEFAULT_NOW = datetime(2025, 6, 4, 15, 0)
DEFAULT_EXAMPLES = 6


def now_for_input(final_input: str) -> datetime:
    """A wall time consistent with the input's time tag, so the weekday check is fair."""
    match = TIME_TAG_PATTERN.search(final_input)
    if match is None:
        return DEFAULT_NOW
    day = REFERENCE_MONDAY + timedelta(days=WEEKDAYS.index(match.group(1)))
    return day.replace(hour=PART_HOURS[match.group(2)])


def char_bigrams(text: str) -> Counter[str]:
    """Character bigrams of the text with whitespace runs collapsed."""
    text = " ".join(text.split())
    return Counter(text[i : i + 2] for i in range(len(text) - 1))


def bigram_f1(candidate: str, reference: str) -> float:
    """Multiset character-bigram F1, a crude relevance score for short Korean replies."""
    cand, ref = char_bigrams(candidate), char_bigrams(reference)
    overlap = sum((cand & ref).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(cand.values()), overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def nearest_train_reply(prompt: str, train_pairs: Sequence[tuple[str, str]]) -> str:
    """The train reply whose train input is most similar (bigram F1) to ``prompt``."""
    return max(train_pairs, key=lambda pair: bigram_f1(prompt, pair[0]))[1]


def _rate(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else float("nan")


def _role_rates(prefix: str, outcomes: Sequence[RoleOutcome]) -> dict[str, float]:
    return {
        f"{prefix}_first_try": _rate([o.first_try for o in outcomes]),
        f"{prefix}_valid": _rate([not o.failed for o in outcomes]),
        f"{prefix}_attempts_mean": round(sum(o.attempts for o in outcomes) / len(outcomes), 3),
    }


def run_evaluation(
    preset: Preset,
    *,
    seed: int = 0,
    limit: int | None = None,
    models: RoleModels | None = None,
    examples: int = DEFAULT_EXAMPLES,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Metrics and a few sample rows (input, reference and every role's output)."""
    rows = load_rows("valid")[:limit]
    train = [(row.input_data, row.output_message) for row in load_rows("train")]
    started = time.perf_counter()
    models = models or RoleModels.from_preset(preset)
    load_seconds = time.perf_counter() - started
    inputs = [row.input_data for row in rows]

    timings: dict[str, float] = {}
    stage = time.perf_counter()
    replies = generate_replies(models, inputs, [now_for_input(x) for x in inputs], seed=seed)
    timings["reply_seconds"] = time.perf_counter() - stage
    answers = [outcome.text for outcome in replies]
    stage = time.perf_counter()
    summaries = generate_summaries(models, inputs, answers, seed=seed)
    timings["summary_seconds"] = time.perf_counter() - stage
    stage = time.perf_counter()
    memories = extract_memories(models, inputs, seed=seed)
    timings["memory_seconds"] = time.perf_counter() - stage
    stage = time.perf_counter()
    expressions = generate_expressions(models, answers, seed=seed)
    timings["expression_seconds"] = time.perf_counter() - stage

    metrics: dict[str, float] = {}
    for prefix, outcomes in (
        ("reply", replies),
        ("summary", summaries),
        ("memory", memories),
        ("expression", expressions),
    ):
        metrics.update(_role_rates(prefix, outcomes))
    # Share of all attempts whose output parsed / validated (every accepted row parsed once).
    expression_tries = sum(o.attempts for o in expressions)
    metrics["expression_parse_rate"] = round(
        sum(1 for o in expressions if not o.failed) / expression_tries, 4
    )
    memory_tries = sum(o.attempts for o in memories)
    metrics["memory_format_valid"] = round(
        sum(1 for o in memories if not o.failed) / memory_tries, 4
    )
    metrics["memory_nonempty"] = _rate([o.item is not None for o in memories])
    references = [row.output_message for row in rows]
    metrics["reply_f1"] = round(
        sum(bigram_f1(a, r) for a, r in zip(answers, references)) / len(rows), 4
    )
    metrics["reply_f1_baseline"] = round(
        sum(bigram_f1(nearest_train_reply(x, train), r) for x, r in zip(inputs, references))
        / len(rows),
        4,
    )
    train_replies = {reply for _, reply in train}
    metrics["reply_copies_train"] = _rate([a in train_replies for a in answers])
    metrics["rows"] = float(len(rows))
    metrics["load_seconds"] = round(load_seconds, 2)
    metrics.update({key: round(value, 2) for key, value in timings.items()})

    samples = [
        {
            "input": x,
            "reference": r,
            "reply": rep.text,
            "summary": s.text,
            "memory": m.text,
            "expression": e.text,
        }
        for x, r, rep, s, m, e in list(
            zip(inputs, references, replies, summaries, memories, expressions)
        )[:examples]
    ]
    return metrics, samples


def evaluate_roles(preset: Preset, *, seed: int = 0, limit: int | None = None) -> dict[str, float]:
    """Acceptance, validity and relevance metrics of the preset's roles on the valid prompts."""
    return run_evaluation(preset, seed=seed, limit=limit)[0]
