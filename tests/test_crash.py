"""SIGKILL in the middle of a turn, five times over (issue 9): the database opens cleanly, no
turn is recorded as complete when it was not, blocks and memories survive."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.rules.sanctions import SanctionLadder
from storage import Database, Repository, TurnStatus
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 5
NOW = datetime.now(UTC)


def _env(tiny_preset, data: Path) -> dict[str, str]:
    return clean_env(OHLORA_DATA_DIR=str(data), OHLORA_MODELS_DIR=str(tiny_preset.artifacts.parent))


def _pending_turns(db_file: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM turns WHERE status = 'pending'").fetchone()[0]
    except sqlite3.Error:
        return 0


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


def test_sigkill_mid_turn_five_times_in_a_row(tiny_preset, tmp_path: Path) -> None:
    data = tmp_path / "state"
    db_file = data / "ohlora.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    env = _env(tiny_preset, data)
    # First start creates and migrates the database; then the state we must not lose.
    first = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--console"],
        input="/quit\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    asyncio.run(_seed(url))
    killed_pending = 0
    for round_ in range(ROUNDS):
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "--console"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
            env=env,
            text=True,
        )
        try:
            assert proc.stdin is not None
            proc.stdin.write(f"안녕 오로라 {round_}번째야\n")
            proc.stdin.flush()
            deadline = time.monotonic() + 120
            while _pending_turns(db_file) == 0 and proc.poll() is None:
                assert time.monotonic() < deadline, "the turn never started"
                time.sleep(0.005)
            if _pending_turns(db_file):
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
        # Restart: the cut-off turn is failed, never completed, and the block still holds.
        again = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "--console"],
            input="/quit\n",
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr[-2000:]
        turns, _, block, _ = asyncio.run(_state(url))
        assert block is not None
        assert all(t.status != TurnStatus.PENDING for t in turns)
        cut = [t for t in turns if t.status == TurnStatus.FAILED]
        assert all("interrupted" in (t.error or "") for t in cut)
    assert killed_pending >= 1  # at least one kill landed inside the reply path itself
