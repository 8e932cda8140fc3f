"""`/memory` against the fake Discord: the panel pages, deletes, edits and pins, refuses other
users, and its history shows each change (toy models: no turn runs here)."""

from __future__ import annotations

from typing import Any

from bot.memory_panel import SELECT_LABEL_MAX
from engine.api import MEMORY_PAGE_SIZE, messages, messages_memory
from tests.bot.conftest import Running
from tests.bot.fake_discord import JIHO, MINSU, Sent

STORED = [("좋아하는 가수", "아이유"), ("좋아하는 꽃", "백합"), ("오늘 일정", "시험")]


async def _store(running: Running, items: list[tuple[str, str]], user: str = MINSU["id"]) -> None:
    for key, value in items:
        await running.repo.upsert_memory(user, key, value, running.clock.now)


async def _open(running: Running, user: dict[str, Any] = MINSU) -> Sent:
    fake = running.fake
    iid = await fake.slash("memory", user=user)
    [panel, *_] = await fake.wait_for(lambda: fake.responses(iid))
    return panel


def _options(running: Running, panel: Sent) -> dict[str, str]:
    """The select's options on the panel as it is now: label -> value (the item id)."""
    menu = running.fake.select_menu(running.fake.messages[panel.id])
    assert menu is not None
    return {o["label"]: o["value"] for o in menu["options"]}


async def _changed(running: Running, panel: Sent, wanted: str) -> str:
    """The panel's text once it contains `wanted` (the bot edits it in place)."""
    fake = running.fake
    await fake.wait_for(lambda: wanted in fake.messages[panel.id].content)
    return fake.messages[panel.id].content


async def _choose(running: Running, panel: Sent, number: int) -> None:
    """Pick item ``number`` and wait for the bot's answer to that pick itself: the panel may
    already show the mark (the same item chosen before), and a press sent before the pick is
    answered would race with its redraw."""
    fake = running.fake
    [value] = [v for label, v in _options(running, panel).items() if label.startswith(f"{number}.")]
    picked = await fake.select(fake.messages[panel.id], [value])
    await fake.wait_for(lambda: fake.callbacks.get(picked))
    await _changed(running, panel, f"{messages_memory.SELECTED_MARK} {number}.")


async def _click(running: Running, panel: Sent, label: str) -> str:
    return await running.fake.click(running.fake.messages[panel.id], label)


async def test_the_panel_lists_my_items_privately_and_pages(toy_running: Running) -> None:
    running = toy_running
    mine = [(f"항목 {n}", f"값 {n}") for n in range(1, MEMORY_PAGE_SIZE + 3)]
    await _store(running, mine)
    await _store(running, [("남의 기억", "비밀")], user=JIHO["id"])
    panel = await _open(running)
    assert panel.ephemeral and "1. [항목 1: 값 1]" in panel.content
    assert "남의 기억" not in panel.content and "(1/2쪽)" in panel.content
    assert len(_options(running, panel)) == MEMORY_PAGE_SIZE
    assert all(len(label) <= SELECT_LABEL_MAX for label in _options(running, panel))
    assert running.fake.button(panel, messages_memory.PREVIOUS_LABEL)["disabled"]
    assert running.fake.button(panel, messages_memory.DELETE_LABEL)["disabled"]  # none chosen
    await _click(running, panel, messages_memory.NEXT_LABEL)
    text = await _changed(running, panel, "(2/2쪽)")
    assert f"{MEMORY_PAGE_SIZE + 1}. [항목 {MEMORY_PAGE_SIZE + 1}:" in text
    assert "1. [항목 1:" not in text
    assert set(_options(running, panel)) == {
        f"{n}. [항목 {n}: 값 {n}]" for n in range(MEMORY_PAGE_SIZE + 1, MEMORY_PAGE_SIZE + 3)
    }
    empty = await _open(running, user={**JIHO, "id": "900000000000009999"})
    assert empty.content.startswith(messages.NOTHING_REMEMBERED)


async def test_the_panel_answers_only_its_owner(toy_running: Running) -> None:
    running = toy_running
    await _store(running, STORED)
    panel = await _open(running)
    [value, *_] = _options(running, panel).values()
    iid = await running.fake.select(panel, [value], user=JIHO)
    [refusal] = await running.fake.wait_for(lambda: running.fake.responses(iid))
    assert refusal.ephemeral and refusal.content == messages.NOT_YOURS
    assert messages_memory.SELECTED_MARK not in running.fake.messages[panel.id].content


async def test_the_panel_pins_edits_deletes_and_shows_each_change(toy_running: Running) -> None:
    running = toy_running
    fake, repo, user = running.fake, running.repo, MINSU["id"]
    await _store(running, STORED)
    panel = await _open(running)

    # Pin the first item: marked 📌, the button turns into 고정 해제.
    await _choose(running, panel, 1)
    await _click(running, panel, messages_memory.PIN_LABEL)
    text = await _changed(running, panel, "고정했어요")
    assert f"{messages_memory.PIN_MARK} [좋아하는 가수: 아이유]" in text
    assert fake.button(fake.messages[panel.id], messages_memory.UNPIN_LABEL) is not None
    [singer] = [m for m in await repo.list_memories(user, running.clock.now) if m.pinned]
    assert singer.key == "좋아하는 가수"

    # Edit it: the form is prefilled; a refused value changes nothing and is kept.
    opened = await _click(running, panel, messages_memory.EDIT_LABEL)
    form = await fake.wait_for(lambda: fake.modal(opened))
    assert {"좋아하는 가수", "아이유"} <= set(_defaults(form))
    assert _lengths(form) == {30, 100}
    await fake.submit(opened, {messages_memory.VALUE_INPUT_LABEL: "아이유: 최고"})
    text = await _changed(running, panel, "아무것도 바뀌지 않았어요")
    assert "쌍점" in text and "아이유: 최고" in text
    assert (await repo.get_memory(user, singer.id)).value == "아이유"
    again = await _click(running, panel, messages_memory.EDIT_LABEL)
    form = await fake.wait_for(lambda: fake.modal(again))
    assert "아이유: 최고" in _defaults(form)  # the draft, not lost
    await fake.submit(again, {messages_memory.VALUE_INPUT_LABEL: "뉴진스"})
    text = await _changed(running, panel, "고쳤어요")
    edited = await repo.get_memory(user, singer.id)
    assert (edited.key, edited.value, edited.pinned) == ("좋아하는 가수", "뉴진스", True)

    # Delete the second, after the confirmation (취소 first: nothing goes).
    await _choose(running, panel, 2)
    await _click(running, panel, messages_memory.DELETE_LABEL)
    await _changed(running, panel, "지울까요")
    await _click(running, panel, messages_memory.CANCEL_LABEL)
    await _changed(running, panel, messages_memory.DELETE_CANCELLED)
    assert len(await repo.list_memories(user, running.clock.now)) == 3
    await _choose(running, panel, 2)
    await _click(running, panel, messages_memory.DELETE_LABEL)
    await _changed(running, panel, "지울까요")
    await _click(running, panel, messages_memory.CONFIRM_DELETE_LABEL)
    text = await _changed(running, panel, "[좋아하는 꽃: 백합] 기억을 지웠어요")
    assert "백합" not in text.split("\n\n", 1)[1]  # gone from the list below the notice
    keys = [m.key for m in await repo.list_memories(user, running.clock.now)]
    assert keys == ["좋아하는 가수", "오늘 일정"]

    # The history of everything (nothing chosen now), newest first.
    iid = await _click(running, panel, messages_memory.HISTORY_LABEL)
    [history] = await fake.wait_for(lambda: fake.responses(iid))
    assert history.ephemeral
    lines = history.content.splitlines()[1:]
    assert "[좋아하는 꽃] 삭제: (있던 내용: 백합) (내가 직접)" in lines[0]
    assert "[좋아하는 가수] 변경: 아이유 → 뉴진스 (내가 직접)" in lines[1]
    assert "[좋아하는 가수] 고정: 아이유 (내가 직접)" in lines[2]
    assert all("추가" in line for line in lines[3:]) and len(lines) == 6

    # One item's history: only its own entries.
    await _choose(running, panel, 1)
    iid = await _click(running, panel, messages_memory.HISTORY_LABEL)
    [own] = await fake.wait_for(lambda: fake.responses(iid))
    assert "[좋아하는 가수] 기억이 바뀐 기록" in own.content and "백합" not in own.content
    assert len(own.content.splitlines()) == 4


def _inputs(form: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for component in form["components"]:
        if component["type"] == 1:
            found.extend(component["components"])
        elif component["type"] == 18:
            found.append(component["component"])
        else:
            found.append(component)
    return found


def _defaults(form: dict[str, Any]) -> list[str]:
    return [c.get("value") or "" for c in _inputs(form)]


def _lengths(form: dict[str, Any]) -> set[int]:
    return {c["max_length"] for c in _inputs(form)}
