"""Repository behaviour: memory per (user, key), turns, summaries, data deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.rules.sanctions import SanctionLadder
from storage import Repository, TurnStatus

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def test_new_value_for_same_key_replaces_the_old(repo: Repository) -> None:
    first = await repo.upsert_memory("u1", "오늘 날씨", "비", NOW)
    second = await repo.upsert_memory("u1", "오늘 날씨", "맑음", NOW + timedelta(minutes=1))
    items = await repo.list_memories("u1", NOW + timedelta(minutes=2))
    assert [(m.key, m.value) for m in items] == [("오늘 날씨", "맑음")]
    assert second.id == first.id
    assert second.created_at == NOW and second.updated_at == NOW + timedelta(minutes=1)
    assert items[0].render() == "[오늘 날씨: 맑음]"


async def test_memories_never_cross_users(repo: Repository) -> None:
    await repo.upsert_memory("u1", "좋아하는 가수", "아이유", NOW)
    await repo.upsert_memory("u2", "좋아하는 가수", "뉴진스", NOW)
    assert [m.value for m in await repo.list_memories("u1", NOW)] == ["아이유"]
    assert await repo.forget_memory("u2", "좋아하는 가수") is True
    assert [m.value for m in await repo.list_memories("u1", NOW)] == ["아이유"]
    assert await repo.list_memories("u2", NOW) == []
    assert await repo.forget_memory("u2", "좋아하는 가수") is False


async def test_expired_memories_are_not_listed(repo: Repository) -> None:
    await repo.upsert_memory("u1", "오늘 일정", "시험", NOW, expires_at=NOW + timedelta(hours=1))
    await repo.upsert_memory("u1", "상태", "힘듦", NOW)
    assert {m.key for m in await repo.list_memories("u1", NOW)} == {"오늘 일정", "상태"}
    later = NOW + timedelta(hours=2)
    assert {m.key for m in await repo.list_memories("u1", later)} == {"상태"}


async def test_forget_all_memories_counts_rows(repo: Repository) -> None:
    for key in ("a", "b", "c"):
        await repo.upsert_memory("u1", key, "v", NOW)
    assert await repo.forget_all_memories("u1") == 3
    assert await repo.list_memories("u1", NOW) == []


async def test_summary_is_per_user_and_channel(repo: Repository) -> None:
    assert await repo.get_summary("u1", "c1") == ""
    await repo.set_summary("u1", "c1", "가상 인간 오로라 소개", NOW)
    await repo.set_summary("u1", "c1", "오로라의 MBTI", NOW)
    await repo.set_summary("u1", "c2", "다른 채널", NOW)
    assert await repo.get_summary("u1", "c1") == "오로라의 MBTI"
    assert await repo.get_summary("u1", "c2") == "다른 채널"
    assert await repo.get_summary("u2", "c1") == ""


async def test_turn_lifecycle_is_recorded_once(repo: Repository) -> None:
    turn_id = await repo.start_turn("u1", "c1", "오늘 뭐해?", NOW, message_id="99")
    [pending] = await repo.turns("u1")
    assert pending.status == TurnStatus.PENDING and pending.reply is None
    await repo.finish_turn(
        turn_id,
        TurnStatus.COMPLETED,
        NOW + timedelta(seconds=2),
        tagged_prompt="(지금은 화요일 오후) 오늘 뭐해?",
        reply="난 공부 중이야!",
        ethics_scores={"일반": 0.9},
        timings={"reply": 1.5},
    )
    [done] = await repo.turns("u1")
    assert done.status == "completed" and done.reply == "난 공부 중이야!"
    assert done.ethics_scores == {"일반": 0.9} and done.timings == {"reply": 1.5}
    assert done.completed_at == NOW + timedelta(seconds=2)
    with pytest.raises(LookupError):
        await repo.finish_turn(turn_id, TurnStatus.FAILED, NOW, error="late")
    with pytest.raises(TypeError):
        await repo.finish_turn(turn_id, TurnStatus.FAILED, NOW, original_text="rewritten")


async def test_forgetting_a_user_keeps_sanctions_and_active_block(repo: Repository) -> None:
    ladder = SanctionLadder()
    turn_id = await repo.start_turn("u1", "c1", "패드립", NOW)
    decision = await repo.record_offence("u1", ["paedrip"], ladder, NOW, turn_id=turn_id)
    assert decision.is_block and decision.expires_at == NOW + timedelta(days=7)
    await repo.upsert_memory("u1", "상태", "화남", NOW)
    await repo.set_summary("u1", "c1", "요약", NOW)
    await repo.upsert_memory("u2", "상태", "좋음", NOW)

    report = await repo.delete_user_data("u1")

    assert (report.memories, report.turns, report.conversations) == (1, 1, 1)
    assert await repo.list_memories("u1", NOW) == []
    assert await repo.turns("u1") == []
    assert await repo.get_summary("u1", "c1") == ""
    [kept] = await repo.sanction_history("u1")
    assert (kept.category, kept.level, kept.turn_id) == ("paedrip", 1, None)
    block = await repo.active_block("u1", NOW + timedelta(days=1))
    assert block is not None and block.expires_at == NOW + timedelta(days=7)
    assert [m.value for m in await repo.list_memories("u2", NOW)] == ["좋음"]
    # and the ladder goes on from the kept history
    again = await repo.record_offence("u1", ["paedrip"], ladder, NOW + timedelta(days=8))
    assert [r.level for r in again.records] == [2]


# ---- the item cap (issue 15, finding 5) ---------------------------------------------------
async def test_a_new_key_at_the_cap_evicts_the_least_recently_used_or_updated(
    repo: Repository,
) -> None:
    for minute, key in enumerate(("좋아하는 꽃", "좋아하는 가수", "좋아하는 음식")):
        await repo.remember("u1", key, "v", NOW + timedelta(minutes=minute), max_items=3)
    await repo.remember("u2", "남의 기억", "v", NOW, max_items=3)  # another user's: never counted
    [flower] = [m for m in await repo.list_memories("u1", NOW) if m.key == "좋아하는 꽃"]
    await repo.mark_memory_used("u1", flower.id, NOW + timedelta(minutes=5))  # used: now recent

    done = await repo.remember("u1", "오늘 일정", "시험", NOW + timedelta(minutes=6), max_items=3)

    assert done.evicted == ("좋아하는 가수",) and done.record.key == "오늘 일정"
    assert {m.key for m in await repo.list_memories("u1", NOW)} == {
        "좋아하는 꽃",
        "좋아하는 음식",
        "오늘 일정",
    }
    [used] = [m for m in await repo.list_memories("u1", NOW) if m.key == "좋아하는 꽃"]
    assert used.last_used_at == NOW + timedelta(minutes=5)
    assert [m.key for m in await repo.list_memories("u2", NOW)] == ["남의 기억"]


async def test_a_known_key_at_the_cap_is_replaced_without_evicting(repo: Repository) -> None:
    for key in ("a", "b"):
        await repo.remember("u1", key, "v", NOW, max_items=2)
    done = await repo.remember("u1", "a", "새 값", NOW + timedelta(minutes=1), max_items=2)
    assert done.evicted == ()
    assert {(m.key, m.value) for m in await repo.list_memories("u1", NOW)} == {
        ("a", "새 값"),
        ("b", "v"),
    }


async def test_a_lowered_cap_evicts_down_to_it(repo: Repository) -> None:
    for minute, key in enumerate("abcd"):
        await repo.remember("u1", key, "v", NOW + timedelta(minutes=minute))
    done = await repo.remember("u1", "e", "v", NOW + timedelta(minutes=9), max_items=2)
    assert done.evicted == ("a", "b", "c")
    assert [m.key for m in await repo.list_memories("u1", NOW)] == ["d", "e"]


async def test_marking_another_users_item_used_changes_nothing(repo: Repository) -> None:
    mine = await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    await repo.mark_memory_used("u2", mine.id, NOW + timedelta(minutes=1))
    [item] = await repo.list_memories("u1", NOW)
    assert item.last_used_at is None


async def test_times_come_back_as_the_same_instant_in_utc_to_the_microsecond(
    repo: Repository,
) -> None:
    """Both backends store UTC without a zone (UTCDateTime) and hand back aware UTC times."""
    seoul = timezone(timedelta(hours=9))
    written = datetime(2026, 11, 24, 21, 0, 0, 123456, tzinfo=seoul)
    await repo.start_turn("u1", "c1", "안녕", written)
    [turn] = await repo.turns("u1")
    assert turn.created_at == written and turn.created_at.tzinfo is UTC
    assert turn.created_at.microsecond == written.microsecond
