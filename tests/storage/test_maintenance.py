"""The daily job's storage side: day-bound memories age, expired blocks close, old texts go."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from engine.sanctions import SanctionLadder
from storage import Repository, TurnStatus

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=timezone.utc)  # 04:00 in Seoul


async def test_today_items_expire_and_tomorrow_items_become_today(repo: Repository) -> None:
    await repo.upsert_memory("u1", "오늘 일정", "카페", NOW)
    await repo.upsert_memory("u1", "내일 일정", "시험", NOW)
    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    await repo.upsert_memory("u2", "오늘 날씨", "비", NOW)
    report = await repo.age_day_memories(NOW)
    assert (report.expired, report.promoted) == (2, 1)
    assert {m.render() for m in await repo.list_memories("u1", NOW)} == {
        "[오늘 일정: 시험]", "[좋아하는 꽃: 백합]"}
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
    await repo.finish_turn(old, TurnStatus.COMPLETED, NOW - timedelta(days=40), reply="응!",
                           final_input="옛날 이야기")
    await repo.record_offence("u1", ["politics"], SanctionLadder(), NOW - timedelta(days=40),
                              turn_id=old)
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


async def test_stored_text_that_is_not_utf8_reads_with_replacement_characters(repo: Repository) -> None:
    from sqlalchemy import text

    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    async with repo.db.writing() as s:
        await s.execute(text("UPDATE memory_items SET value = CAST(X'EBB0B1FF' AS TEXT)"))
    [item] = await repo.list_memories("u1", NOW)
    assert item.value.startswith("백") and "\ufffd" in item.value
