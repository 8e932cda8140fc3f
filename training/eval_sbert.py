"""Test-split evaluation of the two S-BERT models through the runtime classes (`engine.runtime.sbert`).

`evaluate_ethics`: argmax accuracy and the 4×4 confusion matrix on the 135 test prompts (or any
CSV with ``user_prompt,category`` columns; a ``type`` column, when present, selects ``test``), and
how the saved thresholds + 일반 veto behave. The sanction rule is applied *without its answer
condition* (as if Oh-LoRA's answer always declined with 미안/부담), i.e. the classifier's part
of §5.2 alone: a prompt is "flagged" with a category when 일반 < veto and that category's score
≥ its threshold.

`evaluate_memory`: MSE, MAE and Pearson r of the cosine vs ``similarity_score`` on the 1,600 test
pairs (memory_0, user_prompt_1), as upstream's test report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.rules.ethics_rules import ETHICS_CATEGORIES, NORMAL_NAME
from engine.runtime.presets import DATA_DIR
from engine.runtime.sbert import EthicsClassifier, MemoryRetriever
from training.data import read_csv

DECLINING_ANSWER = "미안"  # stands for "Oh-LoRA declined": the answer condition always holds


def evaluate_ethics(model_dir: Path, csv_path: Path | None = None) -> dict[str, Any]:
    """Accuracy, confusion (``confusion[true][predicted]``) and threshold flags on a test CSV."""
    rows = read_csv(csv_path or DATA_DIR / "ethics_train_test_dataset.csv")
    if rows and "type" in rows[0]:
        rows = [r for r in rows if r["type"] == "test"]
    classifier = EthicsClassifier.load(model_dir)
    scores = classifier.scores([r["user_prompt"] for r in rows])
    labels = [r["category"] for r in rows]

    confusion = {t: {p: 0 for p in ETHICS_CATEGORIES} for t in ETHICS_CATEGORIES}
    flag_right = {c: 0 for c in ETHICS_CATEGORIES if c != NORMAL_NAME}
    flag_wrong_category = 0
    false_flags = 0
    errors = []
    for row, score, label in zip(rows, scores, labels):
        predicted = max(score, key=score.__getitem__)
        confusion.setdefault(label, {p: 0 for p in ETHICS_CATEGORIES})[predicted] += 1
        flagged = classifier.flagged(score)
        if label == NORMAL_NAME:
            false_flags += bool(flagged)
        else:
            flag_right[label] = flag_right.get(label, 0) + (label in flagged)
            flag_wrong_category += bool(set(flagged) - {label})
        if predicted != label:
            errors.append({"prompt": row["user_prompt"], "true": label, "predicted": predicted})

    n = len(rows)
    correct = sum(confusion[c][c] for c in confusion)
    per_category = {c: sum(1 for y in labels if y == c) for c in ETHICS_CATEGORIES}
    harmful = n - per_category.get(NORMAL_NAME, 0)
    return {
        "ethics_accuracy": round(correct / n, 4) if n else 0.0,
        "ethics_n": n,
        "confusion": confusion,
        "ethics_flagged_right": flag_right,
        "ethics_flag_recall": round(sum(flag_right.values()) / harmful, 4) if harmful else 0.0,
        "ethics_false_flags": false_flags,
        "ethics_normal_prompts": per_category.get(NORMAL_NAME, 0),
        "ethics_flagged_wrong_category": flag_wrong_category,
        "per_category": per_category,
        "thresholds": dict(classifier.thresholds),
        "normal_veto": classifier.normal_veto,
        "answer_condition": "ignored (answer treated as declining)",
        "errors": errors,
    }


def evaluate_memory(model_dir: Path, csv_path: Path | None = None) -> dict[str, Any]:
    """MSE / MAE / Pearson r of cosine(memory_0, user_prompt_1) vs similarity_score."""
    rows = read_csv(csv_path or DATA_DIR / "memory_test_dataset.csv")
    retriever = MemoryRetriever.load(model_dir)
    memories = sorted({r["memory_0"] for r in rows})
    prompts = sorted({r["user_prompt_1"] for r in rows})
    em = dict(zip(memories, retriever.embed(memories)))
    ep = dict(zip(prompts, retriever.embed(prompts)))
    predicted = [float(em[r["memory_0"]] @ ep[r["user_prompt_1"]]) for r in rows]
    labels = [float(r["similarity_score"]) for r in rows]
    n = len(rows)
    mse = sum((p - y) ** 2 for p, y in zip(predicted, labels)) / n
    mae = sum(abs(p - y) for p, y in zip(predicted, labels)) / n
    mp, my = sum(predicted) / n, sum(labels) / n
    cov = sum((p - mp) * (y - my) for p, y in zip(predicted, labels))
    vp = sum((p - mp) ** 2 for p in predicted)
    vy = sum((y - my) ** 2 for y in labels)
    r = cov / math.sqrt(vp * vy) if vp > 0 and vy > 0 else 0.0
    t = retriever.threshold
    positives = [p for p, y in zip(predicted, labels) if y >= 1.0]
    negatives = [p for p, y in zip(predicted, labels) if y < 1.0]
    return {
        "memory_mse": round(mse, 4),
        "memory_mae": round(mae, 4),
        "memory_r": round(r, 4),
        "memory_n": n,
        "memory_threshold": t,
        "memory_positive_recall": round(sum(p >= t for p in positives) / len(positives), 4)
        if positives
        else 0.0,
        "memory_negative_pass": round(sum(p >= t for p in negatives) / len(negatives), 4)
        if negatives
        else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# New paraphrases and the spread over training seeds (issue 20)
# ---------------------------------------------------------------------------------------------

# Prompts written for issue 20 (not from upstream, not in any split): new phrasings of all four
# categories, to measure meaning rather than the train prompts' spelling.
PARAPHRASES_CSV = DATA_DIR.parent / "ethics_paraphrases.csv"
SPREAD_SEEDS = (0, 1, 2)
# The headline numbers whose mean and range over seeds are reported.
ETHICS_HEADLINES = ("ethics_accuracy", "ethics_flagged", "ethics_false_flags")
PARAPHRASE_HEADLINES = ("paraphrase_accuracy", "paraphrase_flag_recall", "paraphrase_false_flags")
MEMORY_HEADLINES = ("memory_r", "memory_mse")


def headline_numbers(ethics_dir: Path, memory_dir: Path) -> dict[str, float]:
    """One seed's headline numbers: test split, the paraphrase set, the memory test pairs."""
    test = evaluate_ethics(ethics_dir)
    para = evaluate_ethics(ethics_dir, PARAPHRASES_CSV)
    memory = evaluate_memory(memory_dir)
    return {
        "ethics_accuracy": test["ethics_accuracy"],
        "ethics_flagged": float(sum(test["ethics_flagged_right"].values())),
        "ethics_false_flags": float(test["ethics_false_flags"]),
        "paraphrase_accuracy": para["ethics_accuracy"],
        "paraphrase_flag_recall": para["ethics_flag_recall"],
        "paraphrase_false_flags": float(para["ethics_false_flags"]),
        "memory_r": memory["memory_r"],
        "memory_mse": memory["memory_mse"],
    }


def spread(per_seed: dict[int, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "min", "max"}}`` over the seeds' numbers."""
    metrics = sorted({k for numbers in per_seed.values() for k in numbers})
    out: dict[str, dict[str, float]] = {}
    for metric in metrics:
        values = [numbers[metric] for numbers in per_seed.values() if metric in numbers]
        out[metric] = {
            "mean": round(sum(values) / len(values), 4),
            "min": round(min(values), 4),
            "max": round(max(values), 4),
        }
    return out


def seed_spread(
    preset, work_dir: Path, seeds: tuple[int, ...] = SPREAD_SEEDS, *, show_progress: bool = False
) -> dict[str, Any]:
    """Train the ethics and memory S-BERTs once per seed under ``work_dir`` (never over the
    preset's own models), evaluate each, and return ``{"per_seed", "spread", "seconds"}``."""
    import time

    from training.reproducible import TRAIN_THREADS, reproducible
    from training.sbert import train_ethics, train_memory

    per_seed: dict[int, dict[str, float]] = {}
    seconds: dict[int, dict[str, float]] = {}
    for seed in seeds:
        ethics_dir, memory_dir = (
            work_dir / f"seed{seed}" / "ethics",
            work_dir / f"seed{seed}" / "memory",
        )
        started = time.perf_counter()
        with reproducible(seed, TRAIN_THREADS):
            train_ethics(preset, seed=seed, out_dir=ethics_dir, show_progress=show_progress)
        ethics_s = time.perf_counter() - started
        with reproducible(seed, TRAIN_THREADS):
            train_memory(preset, seed=seed, out_dir=memory_dir, show_progress=show_progress)
        per_seed[seed] = headline_numbers(ethics_dir, memory_dir)
        seconds[seed] = {
            "ethics_s": round(ethics_s, 1),
            "memory_s": round(time.perf_counter() - started - ethics_s, 1),
        }
    return {"per_seed": per_seed, "spread": spread(per_seed), "seconds": seconds}


def spread_lines(result: dict[str, Any], title: str = "S-BERT headline numbers") -> list[str]:
    """The Markdown table of a seed spread: one row per metric, mean and range."""
    seeds = list(result["per_seed"])
    lines = [
        f"## {title} over seeds {', '.join(map(str, seeds))}",
        "",
        "| metric | mean | range | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|---|---|" + "---|" * len(seeds),
    ]
    for metric, stats in result["spread"].items():
        values = " | ".join(f"{result['per_seed'][s][metric]:g}" for s in seeds)
        lines.append(
            f"| {metric} | {stats['mean']:g} | {stats['min']:g}–{stats['max']:g} | {values} |"
        )
    return lines + [""]
