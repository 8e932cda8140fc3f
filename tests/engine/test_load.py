"""A small version of `python -m bench.load`: concurrent users lose nothing (issue 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.load import run_load


async def test_concurrent_users_keep_every_turn_memory_and_sanction(tiny_split_backend: Any,
                                                                   tmp_path: Path) -> None:
    """On the service's shape: the Polyglot roles and S-BERTs in a child process."""
    report = await run_load(tiny_split_backend, f"sqlite+aiosqlite:///{tmp_path / 'load.db'}",
                            users=12, messages=4, seed=1)
    assert report.turns_persisted == report.turns_expected == 48
    assert (report.turns_unfinished, report.duplicate_turns, report.failed_turns) == (0, 0, 0)
    assert report.storage_errors == 0
    assert report.memory_upserts > 0 and report.memory_missing == 0
    assert report.sanctions > 0 and report.non_monotonic == 0
    assert report.ok
