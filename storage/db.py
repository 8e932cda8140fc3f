"""Engine creation, SQLite tuning and Alembic migrations applied at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# How long a writer waits for SQLite's single write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option that makes a transaction take the write lock up front (BEGIN IMMEDIATE).
WRITE_OPTION = "ohlora_write"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a file-backed SQLite database so the first run just works."""
    parsed = make_url(url)
    if is_sqlite(url) and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def create_engine(url: str) -> AsyncEngine:
    """An async engine; for SQLite: WAL, busy timeout, foreign keys, and our own BEGIN.

    pysqlite's legacy transaction control never BEGINs before a SELECT, so a read-then-write
    escalation could race; SQLAlchemy's documented recipe takes BEGIN over, and write
    transactions use BEGIN IMMEDIATE so concurrent writers queue on the lock instead of
    failing to upgrade a read snapshot.
    """
    ensure_sqlite_dir(url)
    engine = create_async_engine(url)
    if not is_sqlite(url):
        return engine

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # A row whose bytes are not UTF-8 (written by another tool, or a damaged page) reads
        # with U+FFFD instead of failing the whole query.
        dbapi_connection.driver_connection.text_factory = _lenient_text
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "foreign_keys=ON",
            "synchronous=NORMAL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` on the engine's own connection (no second loop)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


class Database:
    """Owns the engine and hands out read sessions and serialized write sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time; queueing in-process avoids busy-polling the lock.
        self._write_lock = asyncio.Lock() if is_sqlite(url) else None

    async def start(self) -> None:
        await migrate(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session, session.begin():
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One write transaction; committed on success, rolled back on any error."""
        if self._write_lock is None:
            async with self._write() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._write() as session, session.begin():
            yield session
