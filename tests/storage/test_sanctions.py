"""Escalation is atomic, every triggered category is logged, blocks can be lifted and audited."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.rules.sanctions import SanctionLadder
from storage import Database, Repository
from storage.records import EVERYWHERE
from tests.conftest import clean_env
from tests.storage import offender

ROOT = Path(__file__).resolve().parents[2]

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CONCURRENT_OFFENCES = 50


async def test_concurrent_offences_get_distinct_consecutive_levels(repo: Repository) -> None:
    ladder = SanctionLadder()
    decisions = await asyncio.gather(
        *(repo.record_offence("u1", ["love"], ladder, NOW) for _ in range(CONCURRENT_OFFENCES))
    )
    levels = sorted(d.records[0].level for d in decisions)
    assert levels == list(range(1, CONCURRENT_OFFENCES + 1))
    history = await repo.sanction_history("u1")
    assert sorted(r.level for r in history) == levels


async def test_concurrent_offences_from_separate_connections_pools(repo: Repository, db) -> None:
    """Two repositories on one file (as two processes would be) still never share a level."""
    from storage import Database
    from storage import Repository as Repo

    other_db = Database(db.url)
    other = Repo(other_db)
    ladder = SanctionLadder()
    try:
        results = await asyncio.gather(
            *(
                (repo if i % 2 else other).record_offence("u1", ["politics"], ladder, NOW)
                for i in range(20)
            )
        )
    finally:
        await other_db.close()
    assert sorted(d.records[0].level for d in results) == list(range(1, 21))


async def test_every_triggered_category_is_logged_with_combined_period(repo: Repository) -> None:
    ladder = SanctionLadder()
    await repo.record_offence("u1", ["politics"], ladder, NOW)  # politics level 1: warning
    decision = await repo.record_offence("u1", ["politics", "paedrip"], ladder, NOW)
    by_category = {r.category: r for r in decision.records}
    assert set(by_category) == {"politics", "paedrip"}
    assert by_category["politics"].level == 2 and by_category["politics"].period == timedelta(
        days=3
    )
    assert by_category["paedrip"].level == 1 and by_category["paedrip"].period == timedelta(days=7)
    assert all(r.block == timedelta(days=10) for r in decision.records)
    assert decision.expires_at == NOW + timedelta(days=10)
    block = await repo.active_block("u1", NOW)
    assert block is not None and set(block.categories) == {"politics", "paedrip"}


async def test_warning_is_logged_but_does_not_block(repo: Repository) -> None:
    decision = await repo.record_offence("u1", ["love"], SanctionLadder(), NOW)
    assert not decision.is_block
    assert await repo.active_block("u1", NOW) is None
    [row] = await repo.sanction_history("u1")
    assert row.level == 1 and row.block == timedelta(0)


async def test_block_expires_by_time(repo: Repository) -> None:
    await repo.record_offence("u1", ["paedrip"], SanctionLadder(), NOW)
    assert await repo.active_block("u1", NOW + timedelta(days=7) - timedelta(seconds=1))
    assert await repo.active_block("u1", NOW + timedelta(days=7)) is None


async def test_lift_ends_block_keeps_history_and_audits(repo: Repository) -> None:
    ladder = SanctionLadder()
    await repo.record_offence("u1", ["paedrip"], ladder, NOW)
    assert (
        await repo.lift_blocks("u1", "admin9", "오판", NOW + timedelta(hours=1), scope=EVERYWHERE)
        == 1
    )
    assert await repo.active_block("u1", NOW + timedelta(hours=2)) is None
    [row] = await repo.sanction_history("u1")
    assert (row.lifted_by, row.lift_reason) == ("admin9", "오판")
    [entry] = await repo.recent_audit()
    assert (entry.actor_id, entry.action, entry.target_user_id) == ("admin9", "unban", "u1")
    assert "오판" in entry.detail
    # history still counts toward the next level
    nxt = await repo.record_offence("u1", ["paedrip"], ladder, NOW + timedelta(days=1))
    assert nxt.records[0].level == 2


async def test_recent_sanctions_newest_first(repo: Repository) -> None:
    ladder = SanctionLadder()
    await repo.record_offence("u1", ["love"], ladder, NOW)
    await repo.record_offence("u2", ["politics"], ladder, NOW)
    assert [r.user_id for r in await repo.recent_sanctions(limit=5)] == ["u2", "u1"]
    assert len(await repo.recent_sanctions(limit=1)) == 1


# ---- scoped by the server where each decision was made (issue 15, findings 1 and 7) ----------
GUILD_A = "900000000000000500"
GUILD_B = "900000000000000600"
LATER = NOW + timedelta(hours=1)


async def _block_in(repo: Repository, user_id: str, guild_id: str | None) -> None:
    decision = await repo.record_offence(
        user_id, ["paedrip"], SanctionLadder(), NOW, guild_id=guild_id
    )
    assert decision.is_block


async def test_lifting_one_servers_decision_leaves_the_others_in_force(repo: Repository) -> None:
    for guild in (GUILD_A, GUILD_B, None):
        await _block_in(repo, "u1", guild)
    assert (
        await repo.lift_blocks("u1", "mod-a", "오판", LATER, scope=GUILD_A, guild_id=GUILD_A) == 1
    )
    assert await repo.active_block("u1", LATER) is not None
    assert {r.guild_id for r in await repo.sanction_history("u1") if r.lifted_at} == {GUILD_A}
    [entry] = await repo.recent_audit()
    assert (entry.action, entry.guild_id) == ("unban", GUILD_A) and "lifted=1" in entry.detail
    # None is the DMs' (and the console's) decisions: the global admins' alone
    assert await repo.lift_blocks("u1", "admin", "x", LATER, scope=None) == 1
    assert await repo.active_block("u1", LATER) is not None
    assert (
        await repo.lift_blocks("u1", "admin", "x", LATER, scope=EVERYWHERE, guild_id=GUILD_A) == 1
    )
    assert await repo.active_block("u1", LATER) is None
    assert all(r.lifted_at for r in await repo.sanction_history("u1"))


async def test_a_scope_with_no_active_block_lifts_nothing_and_is_still_audited(
    repo: Repository,
) -> None:
    await _block_in(repo, "u1", GUILD_B)
    assert (
        await repo.lift_blocks("u1", "mod-a", "풀어줘", LATER, scope=GUILD_A, guild_id=GUILD_A) == 0
    )
    assert await repo.active_block("u1", LATER) is not None
    [entry] = await repo.recent_audit()
    assert entry.guild_id == GUILD_A and "lifted=0" in entry.detail


async def test_sanction_history_is_scoped_to_a_server(repo: Repository) -> None:
    for guild in (GUILD_A, GUILD_B, None):
        await _block_in(repo, "u1", guild)
    assert [r.guild_id for r in await repo.sanction_history("u1", scope=GUILD_A)] == [GUILD_A]
    assert [r.guild_id for r in await repo.sanction_history("u1", scope=None)] == [None]
    assert [r.guild_id for r in await repo.sanction_history("u1")] == [GUILD_A, GUILD_B, None]


async def test_recent_sanctions_and_audit_are_scoped_and_paged(repo: Repository) -> None:
    ladder = SanctionLadder()
    for i in range(25):
        await repo.record_offence(f"a{i}", ["love"], ladder, NOW, guild_id=GUILD_A)
        await repo.audit("mod-a", "view_sanctions", f"a{i}", "", NOW, guild_id=GUILD_A)
    for i in range(3):
        await repo.record_offence(f"b{i}", ["love"], ladder, NOW, guild_id=GUILD_B)
        await repo.audit("mod-b", "view_sanctions", f"b{i}", "", NOW, guild_id=GUILD_B)
    pages = [await repo.recent_sanctions(scope=GUILD_A, limit=10, offset=o) for o in (0, 10, 20)]
    assert [len(p) for p in pages] == [10, 10, 5]
    users = [r.user_id for page in pages for r in page]
    assert users == [f"a{i}" for i in reversed(range(25))]  # newest first, each row once
    audit = [await repo.recent_audit(scope=GUILD_A, limit=10, offset=o) for o in (0, 10, 20)]
    assert [e.target_user_id for page in audit for e in page] == users
    assert {r.guild_id for r in await repo.recent_sanctions(scope=GUILD_B)} == {GUILD_B}
    assert {e.actor_id for e in await repo.recent_audit(scope=GUILD_B)} == {"mod-b"}
    assert len(await repo.recent_sanctions(limit=100)) == 28  # everywhere: the global view


# ---- escalation across OS processes (issue 17): every backend, an empty database -----------
PROCESSES = 2
OFFENCES_PER_PROCESS = 25
PROCESS_DEADLINE_S = 120


def _offenders(url: str) -> list[subprocess.Popen[str]]:
    """Start the offender processes and hold them at the barrier: each says `ready` once
    imported; none has touched the database yet."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.storage.offender",
                url,
                "u1",
                str(OFFENCES_PER_PROCESS),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=clean_env(),
        )
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == offender.READY, proc.communicate()[1]
    return procs


async def test_two_processes_starting_together_on_an_empty_database_never_share_a_level(
    new_database: Callable[[], str],
) -> None:
    """Both run the migrations at once (PostgreSQL: the advisory lock), then offend together:
    50 distinct consecutive levels, no error in either process."""
    url = new_database()
    procs = _offenders(url)
    for proc in procs:  # the barrier opens: both go at the same moment
        assert proc.stdin is not None
        proc.stdin.write(offender.GO + "\n")
        proc.stdin.flush()
    outputs = [await asyncio.to_thread(p.communicate, timeout=PROCESS_DEADLINE_S) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    levels = sorted(level for out, _ in outputs for level in json.loads(out))
    assert levels == list(range(1, PROCESSES * OFFENCES_PER_PROCESS + 1))
    db = Database(url)
    try:
        history = await Repository(db).sanction_history("u1")
    finally:
        await db.close()
    assert sorted(r.level for r in history) == levels
