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
