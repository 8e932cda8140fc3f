"""Both ways to reach the head schema end in the same tables the ORM describes, on SQLite and
on PostgreSQL alike."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage.db import WAL_RETRY_INTERVAL_S, Database, migrate, use_wal
from storage.models import Base
from tests.conftest import sqlite_url

HEAD = "0007"


def _schema(connection: Connection) -> dict[str, object]:
    insp = inspect(connection)
    return {
        table: (
            sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)),
            sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)),
            sorted(
                str(fk["referred_table"]) + ":" + str(fk["options"])
                for fk in insp.get_foreign_keys(table)
            ),
            sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
        )
        for table in sorted(insp.get_table_names())
    }


def _diff(connection: Connection) -> list[object]:
    return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def test_fresh_and_stepwise_databases_reach_the_same_head(
    new_database: Callable[[], str],
) -> None:
    fresh = Database(new_database())
    await fresh.start()

    old = Database(new_database())
    await migrate(old.engine, "0001")
    async with old.engine.connect() as conn:
        assert await conn.run_sync(_revision) == "0001"
        assert "audit_log" not in await conn.run_sync(lambda c: inspect(c).get_table_names())
    await old.start()  # what start-up does to an existing database

    async with fresh.engine.connect() as a, old.engine.connect() as b:
        assert await a.run_sync(_revision) == await b.run_sync(_revision) == HEAD
        assert await a.run_sync(_diff) == []
        assert await b.run_sync(_diff) == []
        schema_a = await a.run_sync(_schema)
        assert schema_a == await b.run_sync(_schema)
        assert {
            "users",
            "conversations",
            "turns",
            "memory_items",
            "sanctions",
            "audit_log",
            "maintenance_state",
        } <= set(schema_a)
    await fresh.close()
    await old.close()


async def test_the_daily_maintenance_row_exists_before_any_run(
    new_database: Callable[[], str],
) -> None:
    """0005 seeds the one state row, so concurrent first starts lock a row instead of racing to
    insert it; an existing database upgraded to it has no run recorded yet."""
    from sqlalchemy import text

    db = Database(new_database())
    await migrate(db.engine, "0004")
    await db.start()
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT name, day, ran_at FROM maintenance_state"))).all()
    assert [tuple(r) for r in rows] == [("daily", None, None)]
    await db.close()


async def test_start_is_idempotent(new_database: Callable[[], str]) -> None:
    db = Database(new_database())
    await db.start()
    await db.start()
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_revision) == HEAD
        assert await conn.run_sync(_diff) == []
    await db.close()


async def test_sqlite_start_creates_the_data_folder(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ohlora.db"
    db = Database(sqlite_url(path))
    await db.start()
    assert path.exists()
    await db.close()


async def test_sqlite_pragmas_are_applied(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "ohlora.db"))
    await db.start()
    async with db.engine.connect() as conn:
        values = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    assert values == {
        "journal_mode": "wal",
        "busy_timeout": 30000,
        "foreign_keys": 1,
        "synchronous": 1,
    }
    await db.close()


async def test_switching_to_wal_waits_out_a_writer_that_sqlite_would_refuse_at_once(
    tmp_path: Path,
) -> None:
    """Another process holds a new file's write lock: SQLite answers the WAL switch BUSY at once
    (no busy handler, its deadlock rule), so the switch waits and tries again instead of failing
    the start — what two processes opening a new database together meet."""
    path = tmp_path / "ohlora.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    waits: list[float] = []

    async def writer_finishes(seconds: float) -> None:
        waits.append(seconds)
        other.execute("COMMIT")

    db = Database(sqlite_url(path))
    await use_wal(db.engine, wait=writer_finishes)
    await db.start()
    async with db.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert await conn.run_sync(_revision) == HEAD
    assert waits == [WAL_RETRY_INTERVAL_S]  # refused once, then switched
    await db.close()
    other.close()
