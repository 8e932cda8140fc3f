"""A per-user lock that holds across processes sharing one PostgreSQL database.

Several service processes (Discord shards, a console) may serve the same person at once; the
engine holds this lock through a user's turn and its background roles so two processes never
run two turns of one user together. On PostgreSQL it is a session-level advisory lock
(`pg_advisory_lock(namespace, key)`) taken on a connection of a small pool of its own, held
while the turn runs (no transaction stays open) and given back with `pg_advisory_unlock`. If
the process dies (even SIGKILL) its connections close and the server drops their locks, so a
crash never leaves a user locked.

On SQLite there is nothing to take here: one process per SQLite file is the supported setup,
and the engine's in-process lock already serialises a user's turns in that process.

The storage layer knows only the SQL; the engine decides when to hold the lock.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

# The advisory lock's first key (`classid` in `pg_locks`): every user lock of OhLoRA's is
# (LOCK_NAMESPACE, user_key(user)), so other applications' advisory locks on the same database
# (one-key ones, or two-key ones in another namespace) never collide with ours.
LOCK_NAMESPACE = 0x4F4C  # "OL"
# How long a turn may wait for a free lock connection before it fails (every one is held by a
# running turn: under a load this high, failing a turn beats a queue without end).
LOCK_POOL_TIMEOUT_S = 300.0
# Shows in `pg_stat_activity`, so an operator can tell the lock connections from the others.
LOCK_APPLICATION_NAME = "ohlora-user-locks"
KEY_BYTES = 4  # the second key is an int4

LOCK_SQL = text("SELECT pg_advisory_lock(:namespace, :key)")
UNLOCK_SQL = text("SELECT pg_advisory_unlock(:namespace, :key)")


def user_key(user_id: str) -> int:
    """The lock's second key for a user: a stable signed 32-bit hash of the id (the same in every
    process, unlike `hash()`). Two users sharing a key only ever wait for each other."""
    digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=KEY_BYTES).digest()
    return int.from_bytes(digest, "big", signed=True)


class HeldUserLock(Protocol):
    """A user's lock, acquired; `release` once (later calls do nothing). It never raises for a
    lost connection: the server dropped the lock with it."""

    async def release(self) -> None: ...


class _NothingHeld:
    async def release(self) -> None:
        return None


_NOTHING_HELD = _NothingHeld()


class UserLocks:
    """No lock across processes (SQLite, or a repository of one process): `acquire` returns at
    once. `UserLocks.for_url` picks the PostgreSQL advisory locks where the database has them."""

    shared = False  # whether other processes see this lock

    @staticmethod
    def for_url(url: str, pool_size: int) -> UserLocks:
        """`pool_size`: connections in the lock pool. Each holds one user's lock through a
        whole turn, so it is how many users one process can have turns in flight for at once
        (further users wait for a free connection)."""
        if make_url(url).get_backend_name() == "postgresql":
            return AdvisoryUserLocks(url, pool_size)
        return UserLocks()

    async def acquire(self, user_id: str) -> HeldUserLock:
        return _NOTHING_HELD

    @asynccontextmanager
    async def holding(self, user_id: str) -> AsyncIterator[None]:
        held = await self.acquire(user_id)
        try:
            yield
        finally:
            await held.release()

    async def close(self) -> None:
        return None


class _AdvisoryHeld:
    def __init__(self, conn: AsyncConnection, user_id: str) -> None:
        self._conn: AsyncConnection | None = conn
        self._user_id = user_id

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            unlocked = await conn.scalar(UNLOCK_SQL, _params(self._user_id))
        except (SQLAlchemyError, OSError):
            # The connection died (a restarted server, a terminated backend): the server
            # released the lock with the session. Drop the connection, never reuse it.
            log.warning("user lock of %s: connection lost; the server released it", self._user_id)
            await _discard(conn)
            return
        except BaseException:  # cancelled mid-unlock: whether it ran is unknown
            await _discard(conn)
            raise
        if not unlocked:  # another session ended ours (the connection was replaced)
            log.warning("user lock of %s was no longer held at release", self._user_id)
        await conn.close()


class AdvisoryUserLocks(UserLocks):
    """PostgreSQL: a session-level advisory lock per user on a pool of its own.

    The pool runs in autocommit, so a held lock keeps no transaction open (no
    `idle in transaction` timeout can end it), and pre-pings, so a connection the server closed
    while idle in the pool is replaced instead of failing the next turn.
    """

    shared = True

    def __init__(self, url: str, pool_size: int) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, not {pool_size}")
        parsed = make_url(url)
        connect_args = (
            {"server_settings": {"application_name": LOCK_APPLICATION_NAME}}
            if parsed.get_driver_name() == "asyncpg"
            else {}
        )
        self.pool_size = pool_size
        self.engine: AsyncEngine = create_async_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=LOCK_POOL_TIMEOUT_S,
            pool_pre_ping=True,
            isolation_level="AUTOCOMMIT",
            connect_args=connect_args,
        )

    async def acquire(self, user_id: str) -> HeldUserLock:
        """Wait (without blocking the loop) until no other session holds this user's lock."""
        conn = await self.engine.connect()
        try:
            await conn.execute(LOCK_SQL, _params(user_id))
        except BaseException:
            # Failed or cancelled while waiting: the lock may have been granted just as the
            # wait ended, so this connection must never go back to the pool holding it.
            await _discard(conn)
            raise
        return _AdvisoryHeld(conn, user_id)

    async def close(self) -> None:
        """Close the pool; a lock still held ends with its connection."""
        await self.engine.dispose()


def _params(user_id: str) -> dict[str, int]:
    return {"namespace": LOCK_NAMESPACE, "key": user_key(user_id)}


async def _discard(conn: AsyncConnection) -> None:
    """Close the connection for good (the server ends the session and its locks)."""
    try:
        await conn.invalidate()
        await conn.close()
    except Exception:
        log.exception("could not discard a user-lock connection")
