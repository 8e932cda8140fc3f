"""Every memory change writes its history entry in the same transaction; pinned items are
never replaced by extraction, never aged and never evicted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import MemoryAction, MemorySource, Repository, TurnStatus
from storage.repository import EditOutcome, RememberOutcome

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)


def _summary(events) -> list[tuple[str, str, str, str | None, str | None]]:
    """(key, action, source, old, new), oldest first."""
    return [(e.key, e.action, e.source, e.old_value, e.new_value) for e in reversed(events)]


async def _turn(repo: Repository, user: str = "u1") -> int:
    turn_id = await repo.start_turn(user, "c1", "안녕", NOW)
    await repo.finish_turn(turn_id, TurnStatus.COMPLETED, NOW, reply="응")
    return turn_id


async def test_extraction_records_added_and_changed_with_the_turn(repo: Repository) -> None:
    first, second = await _turn(repo), await _turn(repo)
    await repo.remember("u1", "좋아하는 가수", "아이유", NOW, source_turn_id=first)
    await repo.remember("u1", "좋아하는 가수", "아이유", LATER, source_turn_id=second)  # same
    done = await repo.remember("u1", "좋아하는 가수", "뉴진스", LATER, source_turn_id=second)
    assert done.outcome is RememberOutcome.STORED
    events = await repo.memory_history("u1")
    assert _summary(events) == [
        ("좋아하는 가수", "added", "turn", None, "아이유"),
        ("좋아하는 가수", "changed", "turn", "아이유", "뉴진스"),
    ]
    assert [e.turn_id for e in reversed(events)] == [first, second]
    assert events[0].action is MemoryAction.CHANGED and events[0].source is MemorySource.TURN
    assert events[0].at == LATER


async def test_a_pinned_item_is_never_replaced_by_extraction(repo: Repository) -> None:
    item = await repo.upsert_memory("u1", "좋아하는 가수", "아이유", NOW)
    pinned = await repo.set_memory_pinned("u1", item.id, True, NOW)
    assert pinned is not None and pinned.pinned
    done = await repo.remember("u1", "좋아하는 가수", "뉴진스", LATER, max_items=3)
    assert done.outcome is RememberOutcome.PINNED and done.record == pinned
    [kept] = await repo.list_memories("u1", LATER)
    assert (kept.value, kept.pinned) == ("아이유", True)
    # The dropped value writes no entry; pinning again changes nothing and writes none.
    assert await repo.set_memory_pinned("u1", item.id, True, LATER) == pinned
    assert [e.action for e in await repo.memory_history("u1")] == ["pinned", "added"]


async def test_the_cap_evicts_unpinned_items_only_and_records_it(repo: Repository) -> None:
    turn = await _turn(repo)
    old = await repo.upsert_memory("u1", "a", "1", NOW)
    await repo.upsert_memory("u1", "b", "2", NOW + timedelta(seconds=1))
    await repo.set_memory_pinned("u1", old.id, True, NOW)  # the oldest, but pinned
    done = await repo.remember("u1", "c", "3", LATER, max_items=2, source_turn_id=turn)
    assert done.evicted == ("b",)
    assert {m.key for m in await repo.list_memories("u1", LATER)} == {"a", "c"}
    [evicted, added, *_] = await repo.memory_history("u1")
    assert (evicted.key, evicted.action, evicted.source) == ("b", "deleted", "cap")
    assert (evicted.old_value, evicted.turn_id) == ("2", turn)
    assert (added.key, added.action) == ("c", "added")


async def test_a_cap_full_of_pinned_items_stores_nothing_new(repo: Repository) -> None:
    for key in ("a", "b"):
        item = await repo.upsert_memory("u1", key, "v", NOW)
        await repo.set_memory_pinned("u1", item.id, True, NOW)
    done = await repo.remember("u1", "c", "v", LATER, max_items=2)
    assert done.outcome is RememberOutcome.FULL and done.record is None and done.evicted == ()
    assert {m.key for m in await repo.list_memories("u1", LATER)} == {"a", "b"}
    assert "c" not in {e.key for e in await repo.memory_history("u1")}
    # A known key still takes a new value (nothing is added).
    item = await repo.upsert_memory("u1", "x", "1", NOW)  # no cap: stored
    assert (await repo.remember("u1", "x", "2", LATER, max_items=2)).outcome == "stored"


async def test_aging_skips_pinned_items_and_records_what_it_did(repo: Repository) -> None:
    today = await repo.upsert_memory("u1", "오늘 일정", "카페", NOW)
    tomorrow = await repo.upsert_memory("u1", "내일 일정", "시험", NOW)
    pinned_tomorrow = await repo.upsert_memory("u2", "내일 약속", "영화", NOW)
    await repo.set_memory_pinned("u2", pinned_tomorrow.id, True, NOW)
    report = await repo.age_day_memories(LATER)
    assert (report.expired, report.promoted) == (1, 1)
    [moved] = await repo.list_memories("u1", LATER)
    assert (moved.id, moved.key, moved.value) == (tomorrow.id, "오늘 일정", "시험")
    assert [m.key for m in await repo.list_memories("u2", LATER)] == ["내일 약속"]  # untouched
    assert _summary((await repo.memory_history("u1"))[:3]) == [
        ("오늘 일정", "deleted", "expiry", "카페", None),
        ("내일 일정", "deleted", "expiry", "시험", None),
        ("오늘 일정", "added", "expiry", None, "시험"),
    ]
    assert today.id != moved.id


async def test_aging_never_renames_onto_a_pinned_today_item(repo: Repository) -> None:
    pinned = await repo.upsert_memory("u1", "오늘 일정", "카페", NOW)
    await repo.set_memory_pinned("u1", pinned.id, True, NOW)
    await repo.upsert_memory("u1", "내일 일정", "시험", NOW)
    report = await repo.age_day_memories(LATER, boundaries=2)
    assert (report.expired, report.promoted) == (1, 0)
    [kept] = await repo.list_memories("u1", LATER)
    assert (kept.key, kept.value, kept.pinned) == ("오늘 일정", "카페", True)


async def test_user_edits_deletions_and_forget_are_recorded(repo: Repository) -> None:
    item = await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    other = await repo.upsert_memory("u1", "좋아하는 색", "파랑", NOW)
    changed = await repo.edit_memory("u1", item.id, "좋아하는 꽃", "장미", LATER)
    assert changed.outcome is EditOutcome.CHANGED and changed.record.value == "장미"
    same = await repo.edit_memory("u1", item.id, "좋아하는 꽃", "장미", LATER)
    assert same.outcome is EditOutcome.UNCHANGED
    taken = await repo.edit_memory("u1", item.id, "좋아하는 색", "장미", LATER)
    assert taken.outcome is EditOutcome.KEY_TAKEN
    renamed = await repo.edit_memory("u1", item.id, "제일 좋은 꽃", "장미", LATER)
    assert renamed.record.id == item.id and renamed.record.key == "제일 좋은 꽃"
    assert (await repo.edit_memory("u2", item.id, "x", "y", LATER)).outcome == "not_found"
    assert await repo.delete_memory("u2", other.id, LATER) is None  # never another user's
    gone = await repo.delete_memory("u1", other.id, LATER)
    assert gone is not None and gone.key == "좋아하는 색"
    assert await repo.forget_memory("u1", "제일 좋은 꽃", LATER) is True
    assert _summary(await repo.memory_history("u1")) == [
        ("좋아하는 꽃", "added", "turn", None, "백합"),
        ("좋아하는 색", "added", "turn", None, "파랑"),
        ("좋아하는 꽃", "changed", "user", "백합", "장미"),
        ("좋아하는 꽃", "deleted", "user", "장미", None),
        ("제일 좋은 꽃", "added", "user", None, "장미"),
        ("좋아하는 색", "deleted", "user", "파랑", None),
        ("제일 좋은 꽃", "deleted", "user", "장미", None),
    ]
    assert [e.action for e in await repo.memory_history("u1", "좋아하는 색")] == [
        "deleted",
        "added",
    ]
    assert len(await repo.memory_history("u1", limit=2)) == 2


async def test_forget_all_records_each_item_and_forget_me_takes_the_history(
    repo: Repository,
) -> None:
    for key in ("a", "b"):
        await repo.upsert_memory("u1", key, "v", NOW)
    await repo.upsert_memory("u2", "c", "v", NOW)
    assert await repo.forget_all_memories("u1", LATER) == 2
    assert [(e.key, e.source) for e in await repo.memory_history("u1")][:2] == [
        ("b", "user"),
        ("a", "user"),
    ]
    report = await repo.delete_user_data("u1")
    assert report.memory_events == 4
    assert await repo.memory_history("u1") == []
    assert len(await repo.memory_history("u2")) == 1  # another user's stays
