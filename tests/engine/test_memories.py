"""`service.memories`: the panel's pages, edits checked by the extraction rules, pins,
deletions and history, each change after the user's running turn (no model runs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import pytest

from engine.api import (
    MAX_MEMORY_KEY_CHARS,
    MAX_MEMORY_VALUE_CHARS,
    MEMORY_PAGE_SIZE,
    InvalidMemoryItem,
    OhLoraService,
    build_engine,
    messages_memory,
)
from engine.rules.memory_items import MemoryItem, item_problem, memory_rejection_reason
from engine.settings import Settings
from storage import Repository

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Asia/Seoul"))
SEOUL = ZoneInfo("Asia/Seoul")


class NoModels:
    mixes_roles = False

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        def call(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise AssertionError(f"no model call expected, got {name}")

        return call


@pytest.fixture
async def service(repo: Repository) -> AsyncIterator[OhLoraService]:
    settings = Settings(_env_file=None, max_memory_items=20)  # type: ignore[call-arg]
    async with build_engine(
        settings, clock=lambda: NOW, backend=NoModels(), repo=repo, threads=1, maintenance=None
    ) as built:
        yield built


async def _items(repo: Repository, user: str, count: int) -> None:
    for n in range(count):
        await repo.upsert_memory(user, f"항목 {n + 1}", f"값 {n + 1}", NOW + timedelta(seconds=n))


async def test_pages_are_clamped_and_numbered_across_pages(
    service: OhLoraService, repo: Repository
) -> None:
    await _items(repo, "u1", MEMORY_PAGE_SIZE + 2)
    await _items(repo, "u2", 1)  # another user's: never counted
    first = await service.memories.page("u1")
    assert (first.page, first.pages, first.total, first.cap) == (0, 2, MEMORY_PAGE_SIZE + 2, 20)
    assert [m.key for m in first.items] == [f"항목 {n + 1}" for n in range(MEMORY_PAGE_SIZE)]
    last = await service.memories.page("u1", 99)
    assert (last.page, last.offset, len(last.items)) == (1, MEMORY_PAGE_SIZE, 2)
    text = messages_memory.panel_text(last)
    assert f"{MEMORY_PAGE_SIZE + 1}. [항목 {MEMORY_PAGE_SIZE + 1}:" in text and "(2/2쪽)" in text
    assert (await service.memories.page("u1", -3)).page == 0
    everything = await service.memories.page("u1", size=None)
    assert (everything.pages, len(everything.items)) == (1, MEMORY_PAGE_SIZE + 2)
    empty = await service.memories.page("nobody")
    assert (empty.pages, empty.items) == (1, ())


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("", "아이유", "이름이 비어"),
        ("가수", "   ", "내용이 비어"),
        ("가" * (MAX_MEMORY_KEY_CHARS + 1), "아이유", f"{MAX_MEMORY_KEY_CHARS}자까지"),
        ("가수", "아" * (MAX_MEMORY_VALUE_CHARS + 1), f"{MAX_MEMORY_VALUE_CHARS}자까지"),
        ("가수: 좋아", "아이유", "쌍점"),
        ("[가수", "아이유", "대괄호"),
        ("가수", "아이유\n뉴진스", "줄바꿈"),
        ("가수", "https://example.com", "쌍점"),
        ("가수", "http//x", "주소"),
        ("가수", "요약 종료", "글자나 표현"),
    ],
)
async def test_an_edit_the_rules_refuse_changes_nothing(
    service: OhLoraService, repo: Repository, key: str, value: str, reason: str
) -> None:
    item = await repo.upsert_memory("u1", "좋아하는 가수", "아이유", NOW)
    with pytest.raises(InvalidMemoryItem) as refused:
        await service.memories.edit("u1", item.id, key, value)
    assert reason in refused.value.message
    assert await repo.list_memories("u1", NOW) == [item]
    assert len(await service.memories.history("u1")) == 1  # only the first ADDED


def test_what_item_problem_accepts_extraction_accepts_too() -> None:
    for key, value in [("좋아하는 가수", "아이유"), ("오늘 일정", "시험 보기")]:
        assert item_problem(key, value) is None
        assert memory_rejection_reason(MemoryItem(key, value).render()) is None


async def test_edit_pin_delete_and_history(service: OhLoraService, repo: Repository) -> None:
    item = await repo.upsert_memory("u1", "좋아하는 가수", "아이유", NOW)
    other = await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    panel = service.memories
    edited = await panel.edit("u1", item.id, "  좋아하는 가수 ", " 뉴진스 ")
    assert edited is not None and (edited.key, edited.value) == ("좋아하는 가수", "뉴진스")
    with pytest.raises(InvalidMemoryItem) as taken:
        await panel.edit("u1", item.id, "좋아하는 꽃", "장미")
    assert "이미 있어요" in taken.value.message
    assert await panel.edit("u2", item.id, "가수", "아이유") is None  # not theirs: not found
    pinned = await panel.set_pinned("u1", item.id, True)
    assert pinned is not None and pinned.pinned
    assert await panel.set_pinned("u2", item.id, False) is None
    assert await panel.delete("u1", other.id) is True
    assert await panel.delete("u1", other.id) is False
    events = await panel.history("u1")
    assert [(e.key, e.action, e.source) for e in events] == [
        ("좋아하는 꽃", "deleted", "user"),
        ("좋아하는 가수", "pinned", "user"),
        ("좋아하는 가수", "changed", "user"),
        ("좋아하는 꽃", "added", "turn"),
        ("좋아하는 가수", "added", "turn"),
    ]
    assert [e.action for e in await panel.history("u1", "좋아하는 가수")] == [
        "pinned",
        "changed",
        "added",
    ]
    text = messages_memory.history_text(events, SEOUL)
    assert "변경: 아이유 → 뉴진스 (내가 직접)" in text and "삭제: (있던 내용: 백합)" in text
    assert "📌" in messages_memory.panel_text(await panel.page("u1"))


async def test_a_change_waits_for_the_users_running_turn(
    service: OhLoraService, repo: Repository
) -> None:
    item = await repo.upsert_memory("u1", "좋아하는 가수", "아이유", NOW)
    lock = await service.engine.turn_lock("u1")  # as a turn's background roles hold it
    pin = asyncio.create_task(service.memories.set_pinned("u1", item.id, True))
    page = await service.memories.page("u1")  # reading never waits
    assert page.total == 1
    with pytest.raises(TimeoutError):  # still held: the change has not run
        await asyncio.wait_for(asyncio.shield(pin), 0.5)
    assert not (await repo.get_memory("u1", item.id)).pinned
    await lock.release()
    done = await asyncio.wait_for(pin, 10)
    assert done is not None and done.pinned
