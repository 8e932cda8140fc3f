"""Serving benchmark: N simulated users through (a) a serial baseline and (b) the engine.

Both modes run in this process on the same loaded models, the same prompts (drawn from the
fine-tuning set's valid split) and the same offered load: every user sends M messages, each
after the previous one was answered (a closed loop), all users starting together.

- serial: upstream's shape. One turn at a time for everyone, its four roles in series, batch
  size 1: a global lock held from a user's message until the turn's background roles finished.
- engine: the service as it runs: cross-user batching, replies ahead of background roles,
  per-user ordering only, the Polyglot roles and S-BERTs in a child process (`--processes 1`:
  on a second thread of this process instead).

Reply latency is from sending a message to receiving its reply (queueing included). Wall time
ends when every turn, background roles included, is done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.settings import DEFAULT_BATCH_CHUNK_TOKENS

DEFAULT_USERS = 32
DEFAULT_TURNS = 3
DEFAULT_MAX_BATCH = 16
DEFAULT_WINDOW_MS = 0
MAX_PROMPTS = 90  # the valid split


@dataclass
class PhaseResult:
    mode: str
    turns: int
    wall_s: float
    turns_per_s: float
    p50_reply_s: float
    p95_reply_s: float
    peak_rss_mb: float
    kinds: dict[str, int]
    batch_sizes: dict[str, float] = field(default_factory=dict)
    model_s: dict[str, float] = field(default_factory=dict)
    child_peak_rss_mb: float = 0.0  # the model child process (engine mode), 0 without one


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def child_peak_rss_mb(pid: int | None) -> float:
    """Peak resident memory of a running child (Linux VmHWM; 0 where unknown). Not
    RUSAGE_CHILDREN: on Linux that counts the parent's memory at fork time as the child's."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def user_prompts(users: int, turns: int) -> list[list[str]]:
    from training.data import load_rows

    valid = [row.input_data for row in load_rows("valid")][:MAX_PROMPTS]
    return [[valid[(u * turns + t) % len(valid)] for t in range(turns)] for u in range(users)]


async def run_phase(
    mode: str,
    backend: Any,
    prompts: list[list[str]],
    *,
    max_batch: int,
    window_s: float,
    threads: int,
    clock: Any,
    workdir: Path,
    chunk_tokens: int | None = None,
    child: Any = None,
    kanana_child: Any = None,
) -> PhaseResult:
    """One mode's run; ``child`` (a started `ModelProcess`) serves the engine's second group,
    ``kanana_child`` (a started `ProcessRoles`) its Kanana roles."""
    from engine.build import build_engine
    from engine.settings import Settings
    from storage import Database, Repository

    db = Database(f"sqlite+aiosqlite:///{workdir / f'{mode}.db'}")
    await db.start()
    serial = mode == "serial"
    # The service's settings, but for the serial baseline: one row per model call, at once.
    overrides: dict[str, Any] = (
        {"batch_max_size": 1, "batch_window_ms": 0}
        if serial
        else {"batch_max_size": max_batch, "batch_window_ms": round(window_s * 1000)}
    )
    settings = Settings(_env_file=None, **overrides)  # type: ignore[call-arg]
    if not serial:
        backend = replace(backend, chunk_tokens=chunk_tokens)
    if child is not None:
        from engine.serving.processes import SplitBackend

        local = backend if kanana_child is None else kanana_child
        backend = await asyncio.to_thread(SplitBackend, local, child)  # waits for its models
    child_peak = 0.0
    one_at_a_time = asyncio.Lock()
    latencies: list[float] = []
    kinds: Counter[str] = Counter()

    async def user(index: int, texts: list[str]) -> None:
        for text in texts:
            sent = time.perf_counter()
            if serial:
                async with one_at_a_time:
                    result = await service.chat(f"user{index}", "bench", text)
                    latencies.append(time.perf_counter() - sent)
                    if result.background is not None:
                        await result.background
            else:
                result = await service.chat(f"user{index}", "bench", text)
                latencies.append(time.perf_counter() - sent)
            kinds[str(result.kind)] += 1

    try:
        # One torch thread per worker: on a small CPU that is faster even for the serial
        # baseline (batch-1 matmuls are too small to split), and the engine's two workers get
        # a core each.
        async with build_engine(
            settings,
            clock=clock,
            backend=backend,
            repo=Repository(db),
            workers=1 if serial else 2,
            threads=threads,
            maintenance=None,
        ) as service:
            started = time.perf_counter()
            await asyncio.gather(*(user(i, texts) for i, texts in enumerate(prompts)))
            await service.drain()
            wall = time.perf_counter() - started
        engine = service.engine
    finally:
        if child is not None:
            child_peak = child_peak_rss_mb(child.pid)
            child.close()
        if kanana_child is not None:
            child_peak += child_peak_rss_mb(kanana_child.process.pid)
            kanana_child.close()
        await db.close()
    turns = sum(len(texts) for texts in prompts)
    sizes = {
        str(name): round(statistics.fmean(b.batch_sizes), 2)
        for name, b in engine.batchers.items()
        if b.batch_sizes
    }
    busy = {str(name): round(b.busy_s, 2) for name, b in engine.batchers.items() if b.batch_sizes}
    return PhaseResult(
        mode,
        turns,
        round(wall, 2),
        round(turns / wall, 3),
        round(percentile(latencies, 50), 3),
        round(percentile(latencies, 95), 3),
        round(peak_rss_mb(), 1),
        dict(kinds),
        sizes,
        busy,
        child_peak,
    )


def load(preset_name: str, models_dir: str | None) -> tuple[Any, Any, str]:
    from engine.runtime.lm import device
    from engine.runtime.presets import get_preset
    from engine.serving.hub import LocalBackend
    from training.bootstrap import bootstrap, is_built

    preset = get_preset(preset_name, Path(models_dir) if models_dir else None)
    if preset_name == "tiny" and not is_built(preset):
        print(
            "building the embedded demo models first (about 15 minutes, once) ...", file=sys.stderr
        )
        bootstrap(preset)
    return LocalBackend.load(preset), preset, str(device())


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from engine.serving.hub import kanana_process, polyglot_process

    backend, preset, where = load(args.preset, args.models_dir)
    prompts = user_prompts(args.users, args.turns)
    fixed_now = datetime.now().astimezone()
    results = {}
    with tempfile.TemporaryDirectory(prefix="ohlora-bench-") as tmp:
        for mode in ("serial", "engine"):
            torch.manual_seed(args.seed)
            child = kanana_child = None
            if mode == "engine" and args.processes > 1:
                child = polyglot_process(preset, threads=args.threads or None, seed=args.seed)
            if mode == "engine" and args.processes > 2:
                kanana_child = kanana_process(
                    preset,
                    chunk_tokens=args.chunk or None,
                    threads=args.threads or None,
                    seed=args.seed,
                )
            results[mode] = await run_phase(
                mode,
                backend,
                prompts,
                max_batch=args.max_batch,
                window_s=args.window_ms / 1000,
                threads=args.threads,
                clock=lambda: fixed_now,
                workdir=Path(tmp),
                chunk_tokens=args.chunk or None,
                child=child,
                kanana_child=kanana_child,
            )
            print(format_phase(results[mode]), flush=True)
    serial, engine = results["serial"], results["engine"]
    return {
        "users": args.users,
        "turns_per_user": args.turns,
        "preset": args.preset,
        "device": where,
        "threads_per_worker": args.threads or torch.get_num_threads(),
        "max_batch": args.max_batch,
        "processes": args.processes,
        "chunk_tokens": args.chunk,
        "window_ms": args.window_ms,
        "throughput_ratio": round(engine.turns_per_s / serial.turns_per_s, 2),
        "p95_latency_ratio": round(engine.p95_reply_s / serial.p95_reply_s, 3),
        "p50_latency_ratio": round(engine.p50_reply_s / serial.p50_reply_s, 3),
        "serial": asdict(serial),
        "engine": asdict(engine),
    }


def format_phase(r: PhaseResult) -> str:
    return (
        f"{r.mode:>7}: {r.turns} turns in {r.wall_s:.1f} s = {r.turns_per_s:.2f} turns/s; "
        f"reply latency p50 {r.p50_reply_s:.2f} s, p95 {r.p95_reply_s:.2f} s; "
        f"peak RSS {r.peak_rss_mb:.0f} MB"
        + (f" + model child {r.child_peak_rss_mb:.0f} MB" if r.child_peak_rss_mb else "")
        + f"; mean batch {r.batch_sizes or '-'}; "
        f"model seconds {r.model_s or '-'}; {r.kinds}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--turns", type=int, default=DEFAULT_TURNS, help="messages per user")
    parser.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    parser.add_argument("--models-dir", default=None, help="where the preset's artifacts live")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument(
        "--window-ms",
        type=int,
        default=DEFAULT_WINDOW_MS,
        help="batch collection window of the engine",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per model worker (0: torch's default)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        choices=(1, 2, 3),
        default=2,
        help="engine: 2 runs the Polyglot roles and S-BERTs in a child process, "
        "3 the Kanana roles in a second one",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_BATCH_CHUNK_TOKENS,
        help="engine: decoding steps per batch call (0: every row to its end)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args(argv)
    if args.users < 1 or args.turns < 1 or args.max_batch < 1:
        parser.error("--users, --turns and --max-batch must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = parse_args(argv)
    summary = asyncio.run(bench(args))
    print(
        f"throughput ×{summary['throughput_ratio']}, p95 reply latency ×"
        f"{summary['p95_latency_ratio']} (engine vs serial, {args.users} users × {args.turns} "
        f"turns, {summary['device']})"
    )
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0
