"""Evaluation of the four roles through the serving procedures.

On the 90 valid prompts (input and reference reply only, §2.1) every role is scored for format
validity (the runtime's own acceptance checks) and the reply also for relevance: character-bigram
F1 against the reference, next to the F1 of simply returning the train reply whose input is most
similar (what a pure lookup would score). The background roles' content is scored on the train
rows they never trained on (`training.data.held_out_rows`): summary bigram F1, memory item and
key exact match, expression per-field accuracy, each beside the same nearest-row lookup (and,
where one class dominates, the constant answer).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.rules.expression import FALLBACK_EXPRESSION, Expression, parse_expression
from engine.rules.memory_items import MemoryItem, parse_memory_item
from engine.rules.timetag import TIME_TAG_PATTERN, WEEKDAYS
from engine.runtime.lm import RoleModels
from engine.runtime.presets import ROLES, Preset
from engine.runtime.roles import (
    RoleOutcome,
    extract_memories,
    generate_expressions,
    generate_replies,
    generate_summaries,
)
from training.data import FinetuneRow, held_out_rows, load_rows, role_rows
from training.eval_sbert import SPREAD_SEEDS, spread

# A Monday: weekday tags in valid inputs are turned into a `now` on that week.
REFERENCE_MONDAY = datetime(2025, 6, 2)
# Hours that land in each part of day under `engine.rules.timetag.time_of_day`.
PART_HOURS = {"오전": 10, "오후": 14, "저녁": 20}
# Untagged inputs are checked at a fixed Wednesday afternoon.
DEFAULT_NOW = datetime(2025, 6, 4, 15, 0)
DEFAULT_EXAMPLES = 6
EXPRESSION_FIELDS = ("eyes", "mouth", "pose")
# The numbers whose mean and range over fine-tuning seeds `lm_seed_spread` reports (the
# baselines do not depend on the seed; they are there to read the others against).
LM_HEADLINES = (
    "reply_valid",
    "reply_f1",
    "reply_f1_baseline",
    "summary_valid",
    "memory_valid",
    "expression_valid",
    "held_summary_f1",
    "held_summary_f1_baseline",
    "held_memory_exact",
    "held_memory_key_exact",
    "held_memory_exact_baseline",
    "held_memory_exact_empty_baseline",
    "held_memory_item_exact",
    "held_memory_item_exact_baseline",
    "held_expression_fields",
    "held_expression_baseline_fields",
    "held_expression_common_baseline_fields",
)


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


def nearest_row(text: str, rows: Sequence[FinetuneRow], key: str = "input_data") -> FinetuneRow:
    """The row whose ``key`` column is most similar (bigram F1) to ``text``."""
    return max(rows, key=lambda row: bigram_f1(text, getattr(row, key)))


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else float("nan")


def _expression(text: str) -> Expression:
    """The expression a text states, the runtime's fallback when it states none."""
    return parse_expression(text) or FALLBACK_EXPRESSION


def _field_accuracy(
    prefix: str, guesses: Sequence[Expression], truths: Sequence[Expression]
) -> dict[str, float]:
    scores = {
        f"{prefix}_{name}": _rate(
            [getattr(g, name) == getattr(t, name) for g, t in zip(guesses, truths)]
        )
        for name in EXPRESSION_FIELDS
    }
    scores[f"{prefix}_fields"] = _mean(list(scores.values()))
    return scores


def _same_key(a: MemoryItem | None, b: MemoryItem | None) -> bool:
    return (a.key if a else None) == (b.key if b else None)


def held_out_metrics(
    models: RoleModels, *, seed: int = 0, limit: int | None = None
) -> dict[str, float]:
    """Content of summary, memory and expression on the held-out train rows, beside baselines.

    Each role gets the reference inputs (the summary the reference reply too, the expression
    the reference reply), as in training. Baselines: the target of the nearest row the role
    trained on (by input; by reply for the expression), the constant "nothing to remember"
    for memory and the most common value per field for the expression.
    """
    rows = held_out_rows()[:limit]
    inputs = [row.input_data for row in rows]
    replies = [row.output_message for row in rows]
    summaries = generate_summaries(models, inputs, replies, seed=seed)
    memories = extract_memories(models, inputs, seed=seed)
    expressions = generate_expressions(models, replies, seed=seed)

    metrics: dict[str, float] = {"held_rows": float(len(rows))}
    trained_summary = role_rows("summary")
    near_summary = [nearest_row(x, trained_summary).summary for x in inputs]
    metrics["held_summary_f1"] = _mean(
        [bigram_f1(o.text, r.summary) for o, r in zip(summaries, rows)]
    )
    metrics["held_summary_f1_baseline"] = _mean(
        [bigram_f1(n, r.summary) for n, r in zip(near_summary, rows)]
    )

    truth = [parse_memory_item(row.memory) for row in rows]
    trained_memory = role_rows("memory")
    near_memory = [parse_memory_item(nearest_row(x, trained_memory).memory) for x in inputs]
    got = [o.item for o in memories]
    metrics["held_memory_exact"] = _rate([g == t for g, t in zip(got, truth)])
    metrics["held_memory_key_exact"] = _rate([_same_key(g, t) for g, t in zip(got, truth)])
    metrics["held_memory_exact_baseline"] = _rate([g == t for g, t in zip(near_memory, truth)])
    metrics["held_memory_key_exact_baseline"] = _rate(
        [_same_key(g, t) for g, t in zip(near_memory, truth)]
    )
    metrics["held_memory_exact_empty_baseline"] = _rate([t is None for t in truth])
    # Among the rows with something to remember only (the constant answer scores 0 here).
    items = [k for k, t in enumerate(truth) if t is not None]
    metrics["held_memory_item_exact"] = _rate([got[k] == truth[k] for k in items])
    metrics["held_memory_item_exact_baseline"] = _rate([near_memory[k] == truth[k] for k in items])

    trained = role_rows("eyes_mouth_pose")
    truths = [_expression(row.eyes_mouth_pose) for row in rows]
    nearest = [
        _expression(nearest_row(a, trained, "output_message").eyes_mouth_pose) for a in replies
    ]
    seen = [_expression(r.eyes_mouth_pose) for r in trained]
    common = Expression(
        *(
            Counter(getattr(e, name) for e in seen).most_common(1)[0][0]
            for name in EXPRESSION_FIELDS
        )
    )
    guesses = [o.expression or _expression(o.text) for o in expressions]
    metrics.update(_field_accuracy("held_expression", guesses, truths))
    metrics.update(_field_accuracy("held_expression_baseline", nearest, truths))
    metrics.update(_field_accuracy("held_expression_common_baseline", [common] * len(rows), truths))
    return metrics


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
    train = load_rows("train")
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
        sum(bigram_f1(nearest_row(x, train).output_message, r) for x, r in zip(inputs, references))
        / len(rows),
        4,
    )
    train_replies = {row.output_message for row in train}
    metrics["reply_copies_train"] = _rate([a in train_replies for a in answers])
    metrics["rows"] = float(len(rows))
    metrics["load_seconds"] = round(load_seconds, 2)
    stage = time.perf_counter()
    metrics.update(held_out_metrics(models, seed=seed, limit=limit))
    timings["held_out_seconds"] = time.perf_counter() - stage
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


def lm_seed_spread(
    preset: Preset, work_dir: Path, seeds: tuple[int, ...] = SPREAD_SEEDS
) -> dict[str, Any]:
    """Fine-tune the four LoRAs once per seed under ``work_dir`` (on the preset's own bases,
    never over its adapters), evaluate each with that sampling seed, and return
    ``{"per_seed", "spread", "seconds"}`` of `LM_HEADLINES`. The bases are not pretrained again
    (a quarter of an hour each here): the spread is that of the fine-tuning and the sampling."""
    from training.finetune import finetune_role
    from training.reproducible import TRAIN_THREADS, reproducible

    per_seed: dict[int, dict[str, float]] = {}
    seconds: dict[int, float] = {}
    for seed in seeds:
        started = time.perf_counter()
        seeded = replace(preset, artifacts=work_dir / f"seed{seed}")
        for role in ROLES:
            with reproducible(seed, TRAIN_THREADS):
                finetune_role(seeded, role, seed=seed)
        metrics, _ = run_evaluation(seeded, seed=seed)
        per_seed[seed] = {k: metrics[k] for k in LM_HEADLINES}
        seconds[seed] = round(time.perf_counter() - started, 1)
    return {"per_seed": per_seed, "spread": spread(per_seed), "seconds": seconds}
