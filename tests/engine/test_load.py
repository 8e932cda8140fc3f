"""A small version of `python -m bench.load`: concurrent users lose nothing (issue 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.load import run_load
from engine.rules.memory_items import MemoryItem
from tests.engine.conftest import FixedRoles

MEMORY_KEY = "최근 이야기"  # one key per user: each turn's item replaces the last one


def latest_words(final_input: str) -> MemoryItem:
    """A memory item for every turn, its value the message's last word."""
    return MemoryItem(MEMORY_KEY, final_input.split()[-1][:20])


async def test_concurrent_users_keep_every_turn_memory_and_sanction(
    tiny_split_backend: Any, tmp_path: Path
) -> None:
    """On the service's shape: the Polyglot roles and S-BERTs in a child process.

    The memory model runs for every turn, but each turn remembers a fixed item: whether the
    demo model extracts one is sampling, and what is tested is that every item the engine
    extracted is stored with its latest value."""
    backend = FixedRoles(tiny_split_backend, memory=latest_words, run_real=True)
    report = await run_load(
        backend, f"sqlite+aiosqlite:///{tmp_path / 'load.db'}", users=12, messages=4, seed=1
    )
    assert report.turns_persisted == report.turns_expected == 48
    assert (report.turns_unfinished, report.duplicate_turns, report.failed_turns) == (0, 0, 0)
    assert report.storage_errors == 0
    assert report.memory_upserts > 0 and report.memory_missing == 0
    assert report.sanctions > 0 and report.non_monotonic == 0
    assert report.ok
