"""The per-user lock across processes (storage.locks): on PostgreSQL a session advisory lock that
a second process waits on, that other users never wait on, and that dies with its connection
(a terminated backend, a SIGKILLed process); on SQLite nothing beyond the in-process lock."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from engine.pipeline import Engine
from engine.serving.worker import ModelWorker
from storage import Database, Repository
from storage.locks import LOCK_NAMESPACE, AdvisoryUserLocks, UserLocks, user_key
from tests.conftest import sqlite_url
from tests.engine.conftest import WEDNESDAY_2PM
from tests.engine.test_lifecycle import SUMMARY, Toy
from tests.postgres import PostgresServer, database_name

DEADLINE_S = 30.0
POOL_SIZE = 4
ROOT = Path(__file__).resolve().parents[2]

# The users' locks on this database as pg_locks shows them: (pid, granted) per session.
LOCKS_SQL = text(
    "SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND classid = :namespace "
    "AND objid::bigint = :objid AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(database_name(url))


@pytest.fixture
async def observer(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """A third session that only looks at pg_locks (and ends other sessions)."""
    engine = create_async_engine(pg_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def _sessions(observer: AsyncEngine, user: str) -> list[tuple[int, bool]]:
    async with observer.connect() as conn:
        rows = await conn.execute(
            LOCKS_SQL, {"namespace": LOCK_NAMESPACE, "objid": user_key(user) & 0xFFFFFFFF}
        )
        return [(pid, granted) for pid, granted in rows.all()]


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll the server's lock table until `condition` holds (it signals no event)."""

    async def poll() -> None:
        while not await condition():  # noqa: ASYNC110 - pg_locks signals no event
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), DEADLINE_S)
    except TimeoutError:
        raise AssertionError(f"never saw: {what}") from None


async def _one_waits(observer: AsyncEngine, user: str) -> None:
    async def waiting() -> bool:
        return sorted(g for _, g in await _sessions(observer, user)) == [False, True]

    await _until(waiting, f"a second session waiting for {user}'s lock")


def test_a_user_key_is_stable_and_an_int4() -> None:
    assert user_key("900000000000002000") == user_key("900000000000002000")
    assert user_key("a") != user_key("b")
    for user in ("", "a", "900000000000002000", "콘솔"):
        assert -(2**31) <= user_key(user) < 2**31


async def test_on_sqlite_there_is_no_lock_across_processes(tmp_path: Path) -> None:
    """One process per SQLite file is the supported setup: only the engine's lock serialises."""
    locks = UserLocks.for_url(sqlite_url(tmp_path / "ohlora.db"), POOL_SIZE)
    assert not locks.shared and not isinstance(locks, AdvisoryUserLocks)
    first = await locks.acquire("u1")
    second = await asyncio.wait_for(locks.acquire("u1"), DEADLINE_S)  # nothing to wait for
    await second.release()
    await first.release()
    await locks.close()


async def test_a_second_process_waits_until_the_first_releases(
    pg_url: str, observer: AsyncEngine
) -> None:
    one, two = UserLocks.for_url(pg_url, POOL_SIZE), UserLocks.for_url(pg_url, POOL_SIZE)
    assert one.shared and two.shared
    order: list[str] = []
    try:
        held = await one.acquire("u1")
        order.append("one holds")

        async def second() -> None:
            got = await two.acquire("u1")
            order.append("two holds")
            await got.release()

        waiting = asyncio.create_task(second())
        await _one_waits(observer, "u1")  # the server queued the second session
        assert not waiting.done()
        order.append("one releases")
        await held.release()
        await asyncio.wait_for(waiting, DEADLINE_S)
        assert order == ["one holds", "one releases", "two holds"]
        assert await _sessions(observer, "u1") == []  # nothing left behind
        await held.release()  # a second release does nothing
    finally:
        await one.close()
        await two.close()


async def test_different_users_do_not_wait_for_each_other(
    pg_url: str, observer: AsyncEngine
) -> None:
    one, two = UserLocks.for_url(pg_url, POOL_SIZE), UserLocks.for_url(pg_url, POOL_SIZE)
    try:
        held = await one.acquire("u1")
        other = await asyncio.wait_for(two.acquire("u2"), DEADLINE_S)
        assert [g for _, g in await _sessions(observer, "u1")] == [True]
        assert [g for _, g in await _sessions(observer, "u2")] == [True]
        await other.release()
        await held.release()
    finally:
        await one.close()
        await two.close()


async def test_a_lock_whose_connection_is_terminated_is_released(
    pg_url: str, observer: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    one, two = UserLocks.for_url(pg_url, POOL_SIZE), UserLocks.for_url(pg_url, POOL_SIZE)
    try:
        held = await one.acquire("u1")
        waiting = asyncio.create_task(two.acquire("u1"))
        await _one_waits(observer, "u1")
        [holder] = [pid for pid, granted in await _sessions(observer, "u1") if granted]
        async with observer.connect() as conn:
            assert await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
        got = await asyncio.wait_for(waiting, DEADLINE_S)  # the server dropped the lock
        with caplog.at_level(logging.WARNING, logger="storage.locks"):
            await held.release()  # the connection is gone: logged, not raised
        assert "connection lost" in caplog.text
        await got.release()
        again = await asyncio.wait_for(one.acquire("u1"), DEADLINE_S)  # the pool recovered
        await again.release()
    finally:
        await one.close()
        await two.close()


async def test_a_waiter_cancelled_leaves_no_lock_behind(pg_url: str, observer: AsyncEngine) -> None:
    """Cancelled while waiting, its connection is discarded: a lock granted just as the wait
    ended can never stay held by a pooled connection."""
    one, two = UserLocks.for_url(pg_url, POOL_SIZE), UserLocks.for_url(pg_url, POOL_SIZE)
    try:
        held = await one.acquire("u1")
        waiting = asyncio.create_task(two.acquire("u1"))
        await _one_waits(observer, "u1")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

        async def only_the_holder() -> bool:
            return [g for _, g in await _sessions(observer, "u1")] == [True]

        await _until(only_the_holder, "the cancelled waiter's session gone")
        await held.release()
        got = await asyncio.wait_for(two.acquire("u1"), DEADLINE_S)
        await got.release()
    finally:
        await one.close()
        await two.close()


# A process that takes u1's lock, says so, and then holds it until it is killed or told to go.
HOLDER = """
import asyncio, sys
from storage.locks import UserLocks

async def main(url: str) -> None:
    locks = UserLocks.for_url(url, 1)
    held = await locks.acquire("u1")
    print("holding", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await held.release()
    print("released", flush=True)
    await locks.close()

asyncio.run(main(sys.argv[1]))
"""


async def _spawn(url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def _says(process: asyncio.subprocess.Process, word: str) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), DEADLINE_S)
    assert line.decode().strip() == word


async def test_two_os_processes_take_turns_and_a_killed_holder_frees_the_user(
    pg_url: str, observer: AsyncEngine
) -> None:
    """Process A holds u1; B waits on the server; A is SIGKILLed (no release ran) and B gets
    the lock; B releases cleanly when told."""
    first = await _spawn(pg_url)
    second: asyncio.subprocess.Process | None = None
    try:
        await _says(first, "holding")
        second = await _spawn(pg_url)
        await _one_waits(observer, "u1")
        assert second.returncode is None
        first.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), DEADLINE_S) == -signal.SIGKILL
        await _says(second, "holding")
        assert second.stdin is not None
        second.stdin.write(b"go\n")
        await second.stdin.drain()
        await _says(second, "released")
        assert await asyncio.wait_for(second.wait(), DEADLINE_S) == 0
        assert await _sessions(observer, "u1") == []
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()


# ---- the engine holds it: two service processes' engines on one database ---------------------
@dataclass
class _Process:
    """What one service process has: its database pool, lock pool, model worker and engine."""

    db: Database
    locks: UserLocks
    worker: ModelWorker
    engine: Engine

    async def close(self) -> None:
        await self.engine.drain()
        await self.worker.stop()
        await self.locks.close()
        await self.db.close()


async def _process(url: str, backend: Toy) -> _Process:
    db = Database(url)
    await db.start()
    locks = UserLocks.for_url(url, POOL_SIZE)
    worker = ModelWorker()
    worker.start()
    engine = Engine(
        Repository(db),
        backend,
        worker,
        clock=lambda: WEDNESDAY_2PM,
        max_prompt_tokens=48,
        max_message_chars=2000,
        user_locks=locks,
    )
    return _Process(db, locks, worker, engine)


async def test_two_engines_run_one_users_turns_one_at_a_time_background_roles_included(
    pg_url: str, observer: AsyncEngine
) -> None:
    """Process A's turn for u1 answers, and its background roles (held at the summary) keep
    u1's lock: process B's turn for u1 waits on the server until they finish, and so it reads
    the summary A wrote; B's turn for u2 runs meanwhile."""
    toy_a, toy_b = Toy(), Toy()
    toy_a.summary_gate = threading.Event()
    a = await _process(pg_url, toy_a)
    b = await _process(pg_url, toy_b)
    try:
        first = await a.engine.handle("u1", "c1", "안녕 오로라")
        assert first.reply and first.background is not None
        assert await asyncio.to_thread(toy_a.summary_entered.wait, DEADLINE_S)
        second = asyncio.create_task(b.engine.handle("u1", "c1", "또 왔어"))
        await _one_waits(observer, "u1")
        other = await asyncio.wait_for(b.engine.handle("u2", "c1", "나도 안녕"), DEADLINE_S)
        assert other.reply and not second.done()
        assert await b.engine.repo.get_summary("u1", "c1") == ""  # A's roles have not ended
        toy_a.summary_gate.set()
        await asyncio.wait_for(first.background, DEADLINE_S)
        result = await asyncio.wait_for(second, DEADLINE_S)
        assert result.reply
        assert await a.engine.repo.get_summary("u1", "c1") == SUMMARY  # B's roles wrote it again
        if result.background is not None:
            await result.background
        assert await _sessions(observer, "u1") == []
    finally:
        if toy_a.summary_gate is not None:
            toy_a.summary_gate.set()
        await a.close()
        await b.close()
