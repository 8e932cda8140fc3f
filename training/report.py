"""`python -m training eval`: every model's numbers in one Markdown report and one dict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.runtime.presets import Preset
from training.manifest import Manifest

REPORT_NAME = "eval_report.md"
# What upstream reports with klue/roberta-base (reference §4.3, §5.1), for context.
UPSTREAM = {"ethics_accuracy": 0.9852, "memory_r": 0.7449, "memory_mse": 0.0355}
# The metrics of `training.eval_lm.held_out_metrics` (their own table).
HELD_PREFIX = "held_"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(title: str, rows: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in rows.items() if not isinstance(v, (dict, list))]
    return lines + [""]


def _confusion(confusion: dict[str, dict[str, int]]) -> list[str]:
    labels = list(confusion)
    lines = [
        "Confusion matrix (rows: true, columns: predicted):",
        "",
        "| true \\ pred | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for true in labels:
        lines.append(
            f"| {true} | " + " | ".join(str(confusion[true].get(p, 0)) for p in labels) + " |"
        )
    return lines + [""]


def run_evaluation(
    preset: Preset, *, ethics_csv: Path | None = None, limit: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """Evaluate the S-BERT models and the four LLM roles; print and save the report."""
    from training.eval_lm import evaluate_roles
    from training.eval_sbert import PARAPHRASES_CSV, evaluate_ethics, evaluate_memory

    timings: dict[str, float] = {}
    start = time.perf_counter()
    ethics = evaluate_ethics(preset.sbert_dir("ethics"), ethics_csv)
    # New paraphrases written for issue 20 (data/ethics_paraphrases.csv): meaning, not spelling.
    paraphrases = evaluate_ethics(preset.sbert_dir("ethics"), PARAPHRASES_CSV)
    timings["ethics_s"] = time.perf_counter() - start
    start = time.perf_counter()
    memory = evaluate_memory(preset.sbert_dir("memory"))
    timings["memory_s"] = time.perf_counter() - start
    start = time.perf_counter()
    roles = evaluate_roles(preset, seed=seed, limit=limit)
    timings["roles_s"] = time.perf_counter() - start

    lines = [f"# OhLoRA evaluation — preset `{preset.name}`", ""]
    lines += [
        f"Ethics set: `{ethics_csv}`" if ethics_csv else "Ethics set: the 135-prompt test split",
        "",
    ]
    lines += _table("Ethics classifier", ethics)
    if isinstance(ethics.get("confusion"), dict):
        lines += _confusion(ethics["confusion"])
    lines += _table(
        "Ethics classifier — new paraphrases (data/ethics_paraphrases.csv)", paraphrases
    )
    lines += _table("Memory retriever (1,600 test pairs)", memory)
    valid = {k: v for k, v in roles.items() if not k.startswith(HELD_PREFIX)}
    held = {k: v for k, v in roles.items() if k.startswith(HELD_PREFIX)}
    lines += _table(f"LLM roles ({'all 90' if limit is None else limit} valid prompts)", valid)
    lines += _table(
        f"Background roles' content ({int(held.get('held_rows', 0))} held-out train rows, "
        "beside the nearest trained row's target and constant answers)",
        held,
    )
    lines += _table("Upstream (klue/roberta-base), for reference", UPSTREAM)
    lines += _table("Evaluation time (s)", {k: round(v, 1) for k, v in timings.items()})
    report = "\n".join(lines)
    print(report)
    preset.artifacts.mkdir(parents=True, exist_ok=True)
    (preset.artifacts / REPORT_NAME).write_text(report + "\n", encoding="utf-8")

    metrics: dict[str, Any] = {
        **ethics,
        **{f"paraphrase_{k}": v for k, v in paraphrases.items()},
        **memory,
        **roles,
    }
    manifest = Manifest.load(preset.manifest_path)
    if manifest is not None and ethics_csv is None and limit is None:
        manifest.evaluation = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
        manifest.save(preset.manifest_path)
    return metrics
