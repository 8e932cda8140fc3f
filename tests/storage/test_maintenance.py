"""The daily job's storage side: day-bound memories age, expired blocks close, old texts go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.rules.sanctions import SanctionLadder
from storage import Repository, TurnStatus

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # 04:00 in Seoul


async def test_today_items_expire_and_tomorrow_items_become_today(repo: Repository) -> None:
    await repo.upsert_memory("u1", "오늘 일정", "카페", NOW)
    await repo.upsert_memory("u1", "내일 일정", "시험", NOW)
    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    await repo.upsert_memory("u2", "오늘 날씨", "비", NOW)
    report = await repo.age_day_memories(NOW)
    assert (report.expired, report.promoted) == (2, 1)
    assert {m.render() for m in await repo.list_memories("u1", NOW)} == {
        "[오늘 일정: 시험]",
        "[좋아하는 꽃: 백합]",
    }
    assert await repo.list_memories("u2", NOW) == []
    report = await repo.age_day_memories(NOW + timedelta(days=1))
    assert (report.expired, report.promoted) == (1, 0)
    assert [m.render() for m in await repo.list_memories("u1", NOW)] == ["[좋아하는 꽃: 백합]"]


async def test_expired_blocks_are_closed_once_and_audited(repo: Repository) -> None:
    ladder = SanctionLadder()
    for _ in range(2):  # politics: level 1 warns, level 2 blocks for 3 days
        decided = await repo.record_offence("u1", ["politics"], ladder, NOW)
    assert decided.is_block
    assert await repo.close_expired_blocks(NOW) == []  # still running
    after = decided.expires_at + timedelta(seconds=1)
    assert await repo.close_expired_blocks(after) == ["u1"]
    assert await repo.close_expired_blocks(after) == []
    closed = [r for r in await repo.sanction_history("u1") if r.is_block]
    assert closed and all(r.closed_at == after for r in closed)
    [entry] = await repo.recent_audit()
    assert (entry.action, entry.target_user_id, entry.actor_id) == ("block_expired", "u1", "system")


async def test_old_turn_texts_are_purged_and_sanctions_kept(repo: Repository) -> None:
    old = await repo.start_turn("u1", "c1", "옛날 이야기", NOW - timedelta(days=40))
    await repo.finish_turn(
        old, TurnStatus.COMPLETED, NOW - timedelta(days=40), reply="응!", final_input="옛날 이야기"
    )
    await repo.record_offence(
        "u1", ["politics"], SanctionLadder(), NOW - timedelta(days=40), turn_id=old
    )
    new = await repo.start_turn("u1", "c1", "오늘 이야기", NOW)
    assert await repo.purge_turn_texts(NOW - timedelta(days=30)) == 1
    turns = {t.id: t for t in await repo.turns("u1")}
    assert (turns[old].original_text, turns[old].reply, turns[old].final_input) == ("", None, None)
    assert turns[old].status == TurnStatus.COMPLETED
    assert turns[new].original_text == "오늘 이야기"
    assert [s.turn_id for s in await repo.sanction_history("u1")] == [old]
    assert await repo.purge_turn_texts(NOW - timedelta(days=30)) == 0


async def test_turns_left_pending_by_a_dead_process_are_failed_at_start(repo: Repository) -> None:
    done = await repo.start_turn("u1", "c1", "끝난 턴", NOW)
    await repo.finish_turn(done, TurnStatus.COMPLETED, NOW, reply="응")
    cut = await repo.start_turn("u1", "c1", "끊긴 턴", NOW)
    assert await repo.fail_interrupted_turns(NOW) == 1
    turns = {t.id: t for t in await repo.turns("u1")}
    assert turns[cut].status == TurnStatus.FAILED and "interrupted" in (turns[cut].error or "")
    assert turns[done].status == TurnStatus.COMPLETED and turns[done].reply == "응"


async def test_stored_text_that_is_not_utf8_reads_with_replacement_characters(
    repo: Repository,
) -> None:
    from sqlalchemy import text

    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    async with repo.db.writing() as s:
        await s.execute(text("UPDATE memory_items SET value = CAST(X'EBB0B1FF' AS TEXT)"))
    [item] = await repo.list_memories("u1", NOW)
    assert item.value.startswith("백") and "\ufffd" in item.value


# ---- whose turns a start-up may fail (issue 15, finding 11) ---------------------------------
def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_a_start_up_fails_only_the_turns_of_dead_processes(db) -> None:
    import os
    import subprocess
    import sys

    from storage.instances import SEP, new_instance_id

    host = new_instance_id().split(SEP)[0]
    # A bot still running on this host: a live process (it waits for its stdin to close).
    bot = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        running = Repository(db, instance_id=f"{host}{SEP}{bot.pid}{SEP}c0ffee00")
        dead = Repository(db, instance_id=f"{host}{SEP}{_dead_pid()}{SEP}0badf00d")
        elsewhere = Repository(db, instance_id=f"another-host{SEP}{os.getpid()}{SEP}12345678")
        legacy = Repository(db)  # rows from before owners were recorded
        live_turn = await running.start_turn("u1", "c1", "진행 중인 턴", NOW)
        dead_turn = await dead.start_turn("u2", "c1", "끊긴 턴", NOW)
        other_host_turn = await elsewhere.start_turn("u3", "c1", "다른 서버의 턴", NOW)
        legacy_turn = await legacy.start_turn("u4", "c1", "옛 턴", NOW)

        console = Repository(db, instance_id=new_instance_id())  # started beside the bot
        assert await console.fail_interrupted_turns(NOW) == 2

        status = {
            t.id: t.status for user in ("u1", "u2", "u3", "u4") for t in await console.turns(user)
        }
        assert status[live_turn] == TurnStatus.PENDING
        assert status[other_host_turn] == TurnStatus.PENDING  # unknown: left alone
        assert status[dead_turn] == TurnStatus.FAILED and status[legacy_turn] == TurnStatus.FAILED
        await running.finish_turn(live_turn, TurnStatus.COMPLETED, NOW, reply="응")  # still its own
    finally:
        bot.communicate(b"")


async def test_a_previous_process_with_this_pid_counts_as_dead(db) -> None:
    import os

    from storage.instances import SEP, new_instance_id

    host = new_instance_id().split(SEP)[0]
    before = Repository(db, instance_id=f"{host}{SEP}{os.getpid()}{SEP}00000000")  # pid reused
    turn = await before.start_turn("u1", "c1", "재시작 전", NOW)
    assert await Repository(db, instance_id=new_instance_id()).fail_interrupted_turns(NOW) == 1
    [row] = await before.turns("u1")
    assert row.id == turn and row.status == TurnStatus.FAILED
