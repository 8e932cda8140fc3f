"""🔄 👍 👎 under her reply and "왜 이렇게 답했어?" (issue 18), the real bot over the toy models
against the fake Discord. The reply, memory, retrieval and expression roles are stand-ins
where a test needs to know what they say."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from engine.api import messages_feedback
from engine.pipeline import Call
from engine.rules.ethics_rules import POLITICS_NAME
from engine.rules.memory_items import MemoryItem
from tests.bot.conftest import ADMIN, Running, settle
from tests.bot.fake_discord import CHAT_CHANNEL, DM, JIHO, MINSU, Install, Sent

REGEN = messages_feedback.REGENERATE_LABEL
UP = messages_feedback.RATE_UP_LABEL
DOWN = messages_feedback.RATE_DOWN_LABEL
WHY = messages_feedback.WHY_MENU_NAME
FIRST = "오늘은 비가 와서 집에 있었어"
SECOND = "사실 오늘 영화 보러 갔었어"
THIRD = "음, 나는 책을 읽고 있었어"
DECLINING = "미안, 그런 얘기는 잘 모르겠어"  # politics is sanctioned only when she declines


def stub_replies(running: Running, *texts: str) -> None:
    """The reply model says `texts`, in order (one per call)."""
    said: Iterator[str] = iter(texts)
    running.engine.batchers[Call.REPLY].fn = lambda rows: [next(said) for _ in rows]


def counting(running: Running, call: Call, answer: Callable[[Any], Any]) -> list[Any]:
    """The role `call` answers each row with `answer(row)`; the rows it was asked for."""
    asked: list[Any] = []

    def fn(rows: list[Any]) -> list[Any]:
        asked.extend(rows)
        return [answer(row) for row in rows]

    running.engine.batchers[call].fn = fn
    return asked


async def answer(running: Running, interaction_id: str) -> Sent:
    """The (first) message an interaction answered with."""
    [sent, *_] = await running.fake.wait_for(lambda: running.fake.responses(interaction_id))
    return sent


def labels(message: Sent) -> list[str]:
    return [c.get("label", "") for row in message.components for c in row["components"]]


async def her_reply(running: Running, text: str, **where: Any) -> Sent:
    """Say `text` and wait until her answer and its background roles are done."""
    channel = where.get("channel", DM)
    before = len(running.fake.in_channel(channel))
    await running.fake.message(text, **where)
    await settle(running)
    sent = running.fake.in_channel(channel)
    assert len(sent) > before
    return sent[-1]


# ---- regenerate ----------------------------------------------------------------------------
async def test_regenerate_replaces_the_reply_and_runs_ethics_and_extraction_once(
    toy_running: Running,
) -> None:
    running, fake = toy_running, toy_running.fake
    stub_replies(running, DECLINING, SECOND)
    judged = counting(running, Call.ETHICS, lambda _: {POLITICS_NAME: 0.99})  # a warning
    extracted = counting(running, Call.MEMORY, lambda _: MemoryItem("오늘 일정", "집"))

    reply = await her_reply(running, "오늘 뭐 했어?")
    notice, shown = fake.in_channel(DM)
    assert shown.id == reply.id and reply.content == DECLINING and notice.content
    assert labels(reply) == [REGEN, UP, DOWN] and labels(notice) == []
    [turn] = await running.repo.turns(MINSU["id"])

    pressed = await fake.click(reply, REGEN)
    await fake.wait_for(lambda: fake.messages[reply.id].content == SECOND)
    await settle(running)
    assert fake.callbacks[pressed] == [6]  # acknowledged first (DEFERRED_UPDATE_MESSAGE)
    assert labels(fake.messages[reply.id]) == [REGEN, UP, DOWN]  # the buttons stay
    assert len(fake.in_channel(DM)) == 2  # edited in place, nothing new sent

    stored = await running.service.feedback.store.turn(turn.id)
    assert stored is not None and stored.reply == SECOND
    assert [r.text for r in stored.reply_history] == [DECLINING]
    [again] = await running.repo.turns(MINSU["id"])  # the same single turn
    assert again.id == turn.id
    # The turn's ethics decision stands: one decision, and ethics was asked once.
    decisions = {
        s.decision_id
        for s in await running.repo.sanction_history(MINSU["id"])
        if s.turn_id == turn.id
    }
    assert len(decisions) == 1 and len(judged) == 1
    # Memory extraction ran once, for the turn's input (the regenerate did not change it).
    assert len(extracted) == 1


async def test_only_the_latest_reply_has_the_buttons(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    stub_replies(running, FIRST, SECOND)
    first = await her_reply(running, "안녕!")
    assert labels(first) == [REGEN, UP, DOWN]
    second = await her_reply(running, "뭐 해?")
    assert labels(fake.messages[first.id]) == []  # taken off the older reply
    assert labels(second) == [REGEN, UP, DOWN]
    # Recorded as the turns' messages (what the buttons and the context menu look up).
    newer, older = await running.repo.turns(MINSU["id"])
    feedback = running.service.feedback
    assert await feedback.turn_of_message(first.id) == older.id
    assert await feedback.turn_of_message(second.id) == newer.id


async def test_regenerate_refusals_are_private_and_change_nothing(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    stub_replies(running, FIRST, SECOND, THIRD)
    first = await her_reply(running, "안녕!", channel=CHAT_CHANNEL)
    # Someone else presses her reply to MINSU: told so, privately; nothing changes.
    for label in (REGEN, UP):
        pressed = await fake.click(first, label, user=JIHO, channel=CHAT_CHANNEL)
        refusal = await answer(running, pressed)
        assert refusal.ephemeral
        expected = (
            messages_feedback.REGENERATE_NOT_YOURS
            if label == REGEN
            else messages_feedback.RATE_NOT_YOURS
        )
        assert refusal.content == expected
    [turn] = await running.repo.turns(MINSU["id"])
    assert await running.service.feedback.store.ratings(turn.id) == []
    assert fake.messages[first.id].content == FIRST
    # A reply that is no longer the latest (its buttons kept, as after a restart): refused.
    old_buttons = list(fake.messages[first.id].components)
    await her_reply(running, "또 왔어", channel=CHAT_CHANNEL)
    fake.messages[first.id].components = old_buttons
    pressed = await fake.click(first, REGEN, channel=CHAT_CHANNEL)
    refusal = await fake.wait_for(lambda: [m for m in fake.responses(pressed) if m.ephemeral])
    assert refusal[0].content == messages_feedback.regenerate_refused("not_latest")
    await settle(running)
    assert fake.messages[first.id].content == FIRST


# ---- ratings -------------------------------------------------------------------------------
async def test_ratings_are_stored_for_the_reply_that_stands(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    stub_replies(running, FIRST, SECOND)
    reply = await her_reply(running, "오늘 뭐 했어?")
    [turn] = await running.repo.turns(MINSU["id"])

    thanks = await answer(running, await fake.click(reply, UP))
    assert thanks.ephemeral and thanks.content == messages_feedback.RATED_UP
    await fake.click(reply, REGEN)
    await fake.wait_for(lambda: fake.messages[reply.id].content == SECOND)
    await settle(running)
    thanks = await answer(running, await fake.click(fake.messages[reply.id], DOWN))
    assert thanks.ephemeral and thanks.content == messages_feedback.RATED_DOWN

    ratings = await running.service.feedback.store.ratings(turn.id)
    assert [(r.draw, r.rating, r.reply, r.user_id) for r in ratings] == [
        (0, 1, FIRST, MINSU["id"]),
        (1, -1, SECOND, MINSU["id"]),
    ]


# ---- 왜 이렇게 답했어? ------------------------------------------------------------------------
async def test_why_shows_the_memory_used_and_only_to_the_user_she_answered(
    toy_running: Running,
) -> None:
    running, fake = toy_running, toy_running.fake
    menu = fake.registered(WHY, kind=3)
    assert set(menu["integration_types"]) == {0, 1} and set(menu["contexts"]) == {0, 1, 2}
    counting(running, Call.MEMORY, lambda _: MemoryItem("좋아하는 가수", "아이유"))
    await her_reply(running, "나는 아이유 노래가 제일 좋아", channel=CHAT_CHANNEL)
    counting(running, Call.MEMORY, lambda _: None)
    counting(running, Call.RETRIEVE, lambda row: [0] if row.items else None)
    asked = await fake.message("오늘 무슨 노래 들을까?", channel=CHAT_CHANNEL)
    await settle(running)
    reply = fake.in_channel(CHAT_CHANNEL)[-1]
    newest = (await running.repo.turns(MINSU["id"]))[0]
    assert newest.memory_item_used and "아이유" in newest.memory_item_used

    shown = await answer(running, await fake.context_menu(WHY, reply, channel=CHAT_CHANNEL))
    assert shown.ephemeral
    assert newest.memory_item_used in shown.content
    assert "(지금은 수요일 오후)" in shown.content  # the time tag of the turn
    assert "윤리 점수" not in shown.content  # for admins only

    # JIHO sees her reply to MINSU in the channel, but not why.
    other = await answer(
        running, await fake.context_menu(WHY, reply, user=JIHO, channel=CHAT_CHANNEL)
    )
    assert other.ephemeral and other.content == messages_feedback.EXPLAIN_NOT_YOURS
    # A user's own message is not one of her replies.
    mine = await answer(running, await fake.context_menu(WHY, asked, channel=CHAT_CHANNEL))
    assert mine.ephemeral and mine.content == messages_feedback.EXPLAIN_NOT_HERS


async def test_why_shows_admins_the_scores_and_timings_in_dms_and_user_installs(
    toy_running: Running,
) -> None:
    running, fake = toy_running, toy_running.fake
    stub_replies(running, FIRST, SECOND)
    await running.fake.message("안녕!", author=ADMIN)
    await settle(running)
    [reply] = fake.in_channel(DM)
    shown = await answer(
        running, await fake.context_menu(WHY, reply, user=ADMIN, install=Install.USER)
    )
    assert shown.ephemeral
    assert "윤리 점수 (관리자)" in shown.content and "단계별 시간 (관리자)" in shown.content
