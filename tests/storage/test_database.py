"""A server database gets the configured pool and statement timeout; SQLite stays embedded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from engine.build import database_options
from engine.settings import Settings
from storage import Database, DatabaseOptions
from tests.conftest import sqlite_url
from tests.postgres import PostgresServer

SHORT_TIMEOUT_S = 0.25  # the pool wait and the statement timeout in these tests
LONGER_THAN_TIMEOUT_S = 30  # pg_sleep this long only ends by the timeout


async def test_a_postgresql_database_gets_the_pool_and_the_statement_timeout(
    postgres_server: PostgresServer,
) -> None:
    options = DatabaseOptions(
        pool_size=1,
        max_overflow=1,
        pool_timeout_s=SHORT_TIMEOUT_S,
        statement_timeout_s=SHORT_TIMEOUT_S,
    )
    db = Database(postgres_server.create_database(), options)
    try:
        await db.start()
        async with db.engine.connect() as first, db.engine.connect() as second:
            assert await first.scalar(text("SHOW statement_timeout")) == "250ms"
            with pytest.raises(DBAPIError, match="statement timeout"):
                await second.execute(text(f"SELECT pg_sleep({LONGER_THAN_TIMEOUT_S})"))
            with pytest.raises(PoolTimeout):  # the pool and its one overflow are in use
                async with db.engine.connect():
                    pass
    finally:
        await db.close()


async def test_no_statement_timeout_leaves_the_servers_default(
    postgres_server: PostgresServer,
) -> None:
    db = Database(postgres_server.create_database(), DatabaseOptions(statement_timeout_s=None))
    try:
        async with db.engine.connect() as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "0"
    finally:
        await db.close()


async def test_sqlite_ignores_the_server_options(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "ohlora.db"), DatabaseOptions(pool_size=1))
    await db.start()
    async with db.writing() as s:
        assert await s.scalar(text("SELECT 1")) == 1
    await db.close()


def test_the_settings_pass_the_pool_and_timeouts_to_storage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert database_options(Settings(_env_file=None)) == DatabaseOptions()  # type: ignore[call-arg]
    for name, value in {
        "OHLORA_DB_POOL_SIZE": "7",
        "OHLORA_DB_MAX_OVERFLOW": "0",
        "OHLORA_DB_POOL_TIMEOUT_S": "2.5",
        "OHLORA_DB_STATEMENT_TIMEOUT_S": "",  # blank: no limit
    }.items():
        monkeypatch.setenv(name, value)
    assert database_options(Settings(_env_file=None)) == DatabaseOptions(  # type: ignore[call-arg]
        pool_size=7, max_overflow=0, pool_timeout_s=2.5, statement_timeout_s=None
    )
