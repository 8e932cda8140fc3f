"""`python -m bench` as issue 8 runs it: both modes over the same prompts, one JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.settings import DEFAULT_BATCH_CHUNK_TOKENS
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]
USERS = 3
TURNS = 2


def test_bench_runs_both_modes_and_ends_with_one_json_object(tiny_preset) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--users", str(USERS), "--turns", str(TURNS), "--json"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert lines[-2].startswith("throughput ×")
    serial, engine = summary["serial"], summary["engine"]
    for phase in (serial, engine):
        assert phase["turns"] == USERS * TURNS == sum(phase["kinds"].values())
        assert phase["turns_per_s"] > 0 and phase["p95_reply_s"] >= phase["p50_reply_s"] > 0
    assert set(serial["batch_sizes"].values()) == {1.0}  # the baseline never batches
    assert serial["child_peak_rss_mb"] == 0 and engine["child_peak_rss_mb"] > 0
    assert summary["processes"] == 2 and summary["chunk_tokens"] == DEFAULT_BATCH_CHUNK_TOKENS
    assert summary["throughput_ratio"] == round(engine["turns_per_s"] / serial["turns_per_s"], 2)
    assert summary["p95_latency_ratio"] == round(engine["p95_reply_s"] / serial["p95_reply_s"], 3)


def test_load_test_command_runs_on_the_service_shape_and_reports_ok(tiny_preset) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load", "--users", "4", "--messages", "2", "--json"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["turns_persisted"] == report["turns_expected"] == 8
    assert proc.stdout.strip().splitlines()[-2] == "OK"
