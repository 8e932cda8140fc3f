"""SIGKILL in the middle of a turn, five times over (issue 9): the database opens cleanly, no
turn is recorded as complete when it was not, blocks and memories survive."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.rules.sanctions import SanctionLadder
from storage import Database, Repository, TurnStatus
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 5
NOW = datetime.now(UTC)
START_DEADLINE_S = 300  # a console start-up on the busiest CI machine, with a turn begun


def _env(models_dir: Path, data: Path) -> dict[str, str]:
    return clean_env(OHLORA_DATA_DIR=str(data), OHLORA_MODELS_DIR=str(models_dir))


def _pending_turns(db_file: Path, after_id: int) -> int:
    """Pending turns newer than turn ``after_id`` (an older one is the last round's cut-off
    turn until this start-up fails it)."""
    try:
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(
                "SELECT count(*) FROM turns WHERE status = 'pending' AND id > ?", (after_id,)
            ).fetchone()[0]
    except sqlite3.Error:
        return 0


def _console(env: dict[str, str], cwd: Path, **options: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--console"],
        stdin=subprocess.PIPE,
        cwd=cwd,
        env=env,
        text=True,
        **options,
    )


async def _seed(url: str) -> None:
    db = Database(url)
    await db.start()
    repo = Repository(db)
    await repo.upsert_memory("console", "좋아하는 꽃", "백합", NOW)
    for _ in range(3):  # politics level 3: a 7-day block for another user
        await repo.record_offence("blocked-user", ["politics"], SanctionLadder(), NOW)
    await db.close()


async def _state(url: str) -> tuple[list, list, object, str]:
    db = Database(url)
    await db.start()  # migrations apply cleanly on the database the kill left behind
    repo = Repository(db)
    try:
        turns = await repo.turns("console", limit=1000)
        memories = await repo.list_memories("console", datetime.now(UTC))
        block = await repo.active_block("blocked-user", datetime.now(UTC))
        async with db.reading() as s:
            from sqlalchemy import text

            check = (await s.execute(text("PRAGMA integrity_check"))).scalar_one()
    finally:
        await db.close()
    return turns, memories, block, check


def _children(pid: int) -> list[int]:
    """Child pids of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever adopts it to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _all_gone(pids: list[int], wait_s: float = 15.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not any(_running(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def test_sigkill_mid_turn_five_times_in_a_row(toy_models_dir: Path, tmp_path: Path) -> None:
    """Five kills in a row, each restart being the next round's start-up: it fails the turn the
    last kill cut off before it takes a new one, and a last start-up fails the fifth. The
    toy models (tests/toy_models.py) go through the same main.py, settings and model child as
    the demo models; what is killed here is storage and process plumbing, not what they say."""
    data = tmp_path / "state"
    data.mkdir()
    db_file = data / "ohlora.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    env = _env(toy_models_dir, data)
    asyncio.run(_seed(url))  # creates and migrates the database, then the state to keep
    killed_pending = 0
    last_id = 0  # the newest turn before this round's
    for round_ in range(ROUNDS):
        proc = _console(env, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert proc.stdin is not None
            proc.stdin.write(f"안녕 오로라 {round_}번째야\n")
            proc.stdin.flush()
            deadline = time.monotonic() + START_DEADLINE_S
            while _pending_turns(db_file, last_id) == 0 and proc.poll() is None:
                assert time.monotonic() < deadline, "the turn never started"
                time.sleep(0.005)
            if _pending_turns(db_file, last_id):
                killed_pending += 1
        finally:
            children = _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        # The model child process (and multiprocessing's helper) exits with its parent.
        assert children, "the service runs its Polyglot models in a child process"
        assert _all_gone(children), f"orphaned processes {children}"
        turns, memories, block, check = asyncio.run(_state(url))
        assert check == "ok"
        # The seeded item survives; a turn that finished may have updated it (its memory role
        # sampled the same key): then the new value is newer than the seed.
        [flower] = [m for m in memories if m.key == "좋아하는 꽃"]
        assert flower.value == "백합" or flower.updated_at > NOW
        assert block is not None and block.expires_at > datetime.now(UTC) + timedelta(days=6)
        for turn in turns:  # nothing claims to be complete without its reply
            if turn.status == TurnStatus.COMPLETED:
                assert turn.reply and turn.completed_at is not None
        # This round's start-up failed the turn the last kill cut off, never completed it.
        _assert_restarted(t for t in turns if t.id <= last_id)
        last_id = max((t.id for t in turns), default=last_id)
    # A last start-up fails the fifth round's turn; the block still holds.
    again = _console(env, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = again.communicate("/quit\n", timeout=START_DEADLINE_S)
    assert again.returncode == 0, stderr[-2000:]
    turns, _, block, _ = asyncio.run(_state(url))
    assert block is not None
    assert len(turns) == ROUNDS
    _assert_restarted(turns)
    assert killed_pending >= 1  # at least one kill landed inside the reply path itself


def _assert_restarted(turns: Iterable[Any]) -> None:
    """After a start-up: no turn is left pending; a cut-off one is failed as interrupted."""
    for turn in turns:
        assert turn.status != TurnStatus.PENDING
        if turn.status == TurnStatus.FAILED:
            assert "interrupted" in (turn.error or "")
