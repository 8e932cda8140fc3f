"""Engine creation (SQLite tuning, PostgreSQL pool and timeouts), dialect-portable upserts and
Alembic migrations applied at start-up."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# How long a writer waits for SQLite's single write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Switching a file to WAL can meet SQLITE_BUSY without SQLite's busy handler (a second process
# holding the write lock while this one holds a read lock: SQLite refuses at once rather than
# risk a deadlock), so `use_wal` retries it itself, this long between tries, up to the timeout.
WAL_RETRY_INTERVAL_S = 0.05
# Execution option that makes a transaction take the write lock up front (BEGIN IMMEDIATE).
WRITE_OPTION = "ohlora_write"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
# PostgreSQL advisory lock held (transaction-scoped) around the migrations, so processes that
# start together on one database upgrade one after the other: "OhLoRAmg" as a 64-bit number.
MIGRATION_LOCK_KEY = int.from_bytes(b"OhLoRAmg", "big")
# Connection pool and timeouts for a server database (SQLAlchemy's own defaults for the pool).
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10
DEFAULT_POOL_TIMEOUT_S = 30.0
DEFAULT_STATEMENT_TIMEOUT_S = 60.0
MS_PER_S = 1000


@dataclass(frozen=True)
class DatabaseOptions:
    """How a server database (PostgreSQL) is used: the connection pool and the timeouts.

    SQLite ignores them: one file, one writer at a time, queued by `Database` itself.
    """

    pool_size: int = DEFAULT_POOL_SIZE  # connections kept open
    max_overflow: int = DEFAULT_MAX_OVERFLOW  # extra connections under load, closed after
    pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S  # wait for a free connection, then fail
    # The server cancels a statement running longer (a lock wait included); None: no limit.
    statement_timeout_s: float | None = DEFAULT_STATEMENT_TIMEOUT_S


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == SQLITE


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a file-backed SQLite database so the first run just works."""
    parsed = make_url(url)
    if is_sqlite(url) and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _server_engine(url: str, options: DatabaseOptions) -> AsyncEngine:
    """A pooled engine for a server database: connections checked before use (a restarted
    server costs no failed request), the statement timeout set per connection (asyncpg's
    `server_settings`)."""
    connect_args: dict[str, Any] = {}
    if options.statement_timeout_s is not None and make_url(url).get_backend_name() == POSTGRESQL:
        timeout_ms = int(options.statement_timeout_s * MS_PER_S)
        connect_args["server_settings"] = {"statement_timeout": str(timeout_ms)}
    return create_async_engine(
        url,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_timeout=options.pool_timeout_s,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def create_engine(url: str, options: DatabaseOptions | None = None) -> AsyncEngine:
    """An async engine; for SQLite: WAL, busy timeout, foreign keys, and our own BEGIN.

    pysqlite's legacy transaction control never BEGINs before a SELECT, so a read-then-write
    escalation could race; SQLAlchemy's documented recipe takes BEGIN over, and write
    transactions use BEGIN IMMEDIATE so concurrent writers queue on the lock instead of
    failing to upgrade a read snapshot. A server database gets `options`' pool and timeouts.
    """
    if not is_sqlite(url):
        return _server_engine(url, options or DatabaseOptions())
    ensure_sqlite_dir(url)
    engine = create_async_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # A row whose bytes are not UTF-8 (written by another tool, or a damaged page) reads
        # with U+FFFD instead of failing the whole query.
        dbapi_connection.driver_connection.text_factory = _lenient_text
        cursor = dbapi_connection.cursor()
        for pragma in (  # WAL is the file's own setting, switched once by `use_wal`
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


async def use_wal(
    engine: AsyncEngine, wait: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """Put a SQLite file in WAL mode (persistent: later connections find it so).

    Not a per-connection pragma: the switch needs the file's exclusive lock, and when two
    processes open a new file together SQLite answers one of them SQLITE_BUSY at once, without
    waiting (its deadlock rule). So the switch is retried here, awaiting between tries so the
    event loop keeps running (`wait`), until `SQLITE_BUSY_TIMEOUT_MS`; an in-memory database
    keeps its own mode.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / MS_PER_S
    async with engine.connect() as conn:
        # The driver's own connection: outside any transaction (SQLite refuses the switch
        # inside one), where SQLAlchemy would begin one for the statement.
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None  # a checked-out connection always has one
        while True:
            try:
                cursor = await driver.execute("PRAGMA journal_mode=WAL")
                await cursor.close()
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            await wait(WAL_RETRY_INTERVAL_S)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` on the engine's own connection (no second loop), in one
    transaction.

    On PostgreSQL the transaction first takes an advisory lock, so processes starting at once
    upgrade in turn: the later one then finds the schema at `revision` and does nothing,
    instead of creating the same tables twice (DDL is transactional there). On SQLite the
    transaction is a write one (BEGIN IMMEDIATE), which takes the file's write lock before
    Alembic reads the current revision, to the same effect.
    """
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == POSTGRESQL:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await conn.run_sync(_upgrade)


def upsert(
    session: AsyncSession,
    model: type[Any],
    values: dict[str, Any],
    keys: tuple[str, ...],
    update: tuple[str, ...] = (),
) -> Any:
    """`INSERT … ON CONFLICT (keys) DO UPDATE SET update… / DO NOTHING` in the session's
    dialect (SQLite's and PostgreSQL's inserts spell it alike): one race-free statement where a
    select-then-insert would let two transactions insert the same key. On PostgreSQL the row,
    new or existing, stays locked by the transaction to its end once it is updated."""
    dialect = session.get_bind().dialect.name
    if dialect == POSTGRESQL:
        statement: Any = postgresql.insert(model).values(**values)
    elif dialect == SQLITE:
        statement = sqlite.insert(model).values(**values)
    else:
        raise NotImplementedError(f"no upsert for the {dialect} dialect (SQLite or PostgreSQL)")
    if not update:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in update}
    )


class Database:
    """Owns the engine and hands out read sessions and serialized write sessions."""

    def __init__(self, url: str, options: DatabaseOptions | None = None) -> None:
        self.url = url
        self.options = options or DatabaseOptions()
        self.engine = create_engine(url, self.options)
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time; queueing in-process avoids busy-polling the lock.
        self._write_lock = asyncio.Lock() if is_sqlite(url) else None

    async def start(self) -> None:
        if is_sqlite(self.url):
            await use_wal(self.engine)
        await migrate(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        """`SELECT 1` on a fresh checkout: raises if the database cannot answer (health check)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def on_error(self, report: Callable[[BaseException], None]) -> Callable[[], None]:
        """Call `report` with the driver's error whenever a statement or a connection fails
        (SQLAlchemy's `handle_error` event); returns the function that stops reporting."""

        def handle_error(context: ExceptionContext) -> None:
            report(context.original_exception)

        event.listen(self.engine.sync_engine, "handle_error", handle_error)
        return lambda: event.remove(self.engine.sync_engine, "handle_error", handle_error)

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
