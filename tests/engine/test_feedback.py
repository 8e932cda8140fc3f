"""Issue 18 items 2-4 in the engine: regenerate (🔄), ratings (👍 / 👎), why-this-reply and the
data export, through `service.feedback` over the toy models.

The roles the tests are about answer through `Scripted` (a `FixedRoles`): replies come from a
script, so "a new reply" is a known text; the ethics scores sanction one message; retrieval
picks the user's first item; every memory-role call is counted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.api import (
    MAX_REGENERATIONS,
    OhLoraService,
    Rating,
    RegenerateOutcome,
    build_engine,
    messages_feedback,
)
from engine.pipeline import MAX_REDRAWS, TurnKind
from engine.rules.ethics_rules import LOVE_NAME, NORMAL_NAME
from engine.rules.memory_items import MemoryItem
from engine.rules.sanctions import SanctionLadder
from engine.serving.backend import RetrievalRow
from engine.settings import Settings
from storage import Repository
from storage.feedback import SOMEONE_ELSE, FeedbackRepository
from storage.models import MemoryEvent
from tests.engine.conftest import FixedRoles

SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=SEOUL)  # a Wednesday afternoon
MINSU, JIWOO, ADMIN = "user-minsu-1111", "user-jiwoo-2222", "admin-9999"
CHANNEL = "c1"
CONFESSION = "로라야 나랑 사귀자"  # scored as love: with a declining answer, a warning
SINGER = "나 아이유 좋아해"  # the memory role remembers this one
ITEM = MemoryItem("좋아하는 가수", "아이유")


@dataclass
class Scripted(FixedRoles):
    """Replies from `script` in order (then numbered fallbacks); ethics sanctions
    `CONFESSION`; retrieval picks item 0 of a user who has any; memory calls counted."""

    script: list[str] = field(default_factory=list)
    memory_calls: list[str] = field(default_factory=list)
    reply_calls: int = 0

    def __post_init__(self) -> None:
        self.reply = self._next_reply
        self.memory = self._remember
        self.summary = lambda final_input, reply: f"요약({reply})"

    def _next_reply(self, final_input: str) -> str:
        self.reply_calls += 1
        return self.script.pop(0) if self.script else f"답변 {self.reply_calls}"

    def _remember(self, final_input: str) -> MemoryItem | None:
        self.memory_calls.append(final_input)
        return ITEM if SINGER in final_input else None

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return [
            {LOVE_NAME: 1.0, NORMAL_NAME: 0.0} if t == CONFESSION else {NORMAL_NAME: 1.0}
            for t in texts
        ]

    def best_memories(self, rows: list[RetrievalRow]) -> list[Any]:
        return [(0, 1.0) if row.items else None for row in rows]


@pytest.fixture
def scripted(toy_backend: Any) -> Iterator[Scripted]:
    yield Scripted(toy_backend)


@pytest.fixture
async def service(repo: Repository, scripted: Scripted) -> AsyncIterator[OhLoraService]:
    settings = Settings(_env_file=None, admin_ids=frozenset({9999}))  # type: ignore[call-arg]
    async with build_engine(
        settings, clock=lambda: NOW, backend=scripted, repo=repo, threads=1, maintenance=None
    ) as built:
        yield built


async def _chat(service: OhLoraService, user: str, text: str, channel: str = CHANNEL) -> int:
    result = await service.chat(user, channel, text)
    assert result.turn_id is not None
    if result.background is not None:
        await result.background
    return result.turn_id


async def _count(repo: Repository, model: type[Any], user: str) -> int:
    from sqlalchemy import func, select

    async with repo.db.reading() as s:
        count = await s.scalar(select(func.count()).select_from(model).where(model.user_id == user))
    return count or 0


async def test_regenerate_gives_a_new_reply_and_decides_and_extracts_once(
    service: OhLoraService, repo: Repository, scripted: Scripted
) -> None:
    scripted.script[:] = ["미안해요, 그건 부담돼요", "미안, 우리 친구로 지내요"]
    result = await service.chat(MINSU, CHANNEL, CONFESSION)
    assert result.kind is TurnKind.WARNING and result.turn_id is not None
    assert result.background is not None and await result.background is not None
    turn_id = result.turn_id
    assert len(scripted.memory_calls) == 1

    done = await service.feedback.regenerate(MINSU, turn_id)
    assert done.outcome is RegenerateOutcome.DONE
    assert (done.reply, done.draw) == ("미안, 우리 친구로 지내요", 1)
    assert done.reply != result.reply
    assert done.background is not None
    background = await done.background
    assert background is not None and background.memory is None
    assert background.summary == "요약(미안, 우리 친구로 지내요)"

    # exactly one sanction decision and one memory extraction for the turn
    history = await repo.sanction_history(MINSU)
    assert len(history) == 1 and history[0].turn_id == turn_id
    assert len(scripted.memory_calls) == 1
    assert await _count(repo, MemoryEvent, MINSU) == 0  # nothing remembered from it
    turns = await repo.turns(MINSU)
    assert [t.id for t in turns] == [turn_id]  # no new turn
    assert turns[0].reply == done.reply and turns[0].expression is not None
    stored = await FeedbackRepository(repo.db).turn(turn_id)
    assert stored is not None and stored.draws == (result.reply, done.reply)
    # the summary the next turn sees is the one of the reply that stands
    assert await repo.get_summary(MINSU, CHANNEL) == "요약(미안, 우리 친구로 지내요)"


async def test_regenerate_does_not_extract_the_memory_again(
    service: OhLoraService, repo: Repository, scripted: Scripted
) -> None:
    from sqlalchemy import func, select

    turn_id = await _chat(service, MINSU, SINGER)
    before = await repo.list_memories(MINSU, NOW)
    assert [(m.key, m.value) for m in before] == [(ITEM.key, ITEM.value)]
    for _ in range(2):
        done = await service.feedback.regenerate(MINSU, turn_id)
        assert done.outcome is RegenerateOutcome.DONE and done.background is not None
        await done.background
    assert scripted.memory_calls == [SINGER]  # one memory-role call for the turn
    assert await repo.list_memories(MINSU, NOW) == before
    async with repo.db.reading() as s:
        events = await s.scalar(
            select(func.count()).select_from(MemoryEvent).where(MemoryEvent.turn_id == turn_id)
        )
    assert events == 1  # the one extraction's "added"


async def test_a_draw_repeating_an_earlier_reply_is_drawn_again(
    service: OhLoraService, scripted: Scripted
) -> None:
    scripted.script[:] = ["안녕!", "안녕!", "반가워!"]
    turn_id = await _chat(service, MINSU, "안녕 로라야")
    done = await service.feedback.regenerate(MINSU, turn_id)
    assert (done.outcome, done.reply) == (RegenerateOutcome.DONE, "반가워!")
    assert done.background is not None
    await done.background
    # every draw repeats one of the two replies so far: nothing changes, no background
    scripted.script[:] = ["안녕!", "반가워!"] * MAX_REDRAWS
    calls = scripted.reply_calls
    same = await service.feedback.regenerate(MINSU, turn_id)
    assert same.outcome is RegenerateOutcome.UNCHANGED and same.background is None
    assert scripted.reply_calls - calls == MAX_REDRAWS
    assert (
        messages_feedback.regenerate_refused(same.outcome) != messages_feedback.REGENERATE_UNKNOWN
    )


async def test_regenerate_refusals(
    service: OhLoraService, repo: Repository, scripted: Scripted
) -> None:
    feedback = service.feedback
    first = await _chat(service, MINSU, "안녕")
    assert (await feedback.regenerate(JIWOO, first)).outcome is RegenerateOutcome.NOT_YOURS
    assert (await feedback.regenerate(MINSU, first + 999)).outcome is RegenerateOutcome.NOT_FOUND
    latest = await _chat(service, MINSU, "뭐 해?")
    assert (await feedback.regenerate(MINSU, first)).outcome is RegenerateOutcome.NOT_LATEST
    empty = await _chat(service, JIWOO, "   ")
    assert (await feedback.regenerate(JIWOO, empty)).outcome is RegenerateOutcome.NOT_ANSWERED
    for _ in range(MAX_REGENERATIONS):
        done = await feedback.regenerate(MINSU, latest)
        assert done.outcome is RegenerateOutcome.DONE and done.background is not None
        await done.background
    assert (await feedback.regenerate(MINSU, latest)).outcome is RegenerateOutcome.LIMIT
    # blocked now: no model call at all
    other = await _chat(service, JIWOO, "안녕 로라야")
    await repo.record_offence(JIWOO, ["paedrip"], SanctionLadder(), NOW)
    calls = scripted.reply_calls
    banned = await feedback.regenerate(JIWOO, other)
    assert banned.outcome is RegenerateOutcome.BANNED and banned.reply is None
    assert scripted.reply_calls == calls
    for outcome in RegenerateOutcome:
        if outcome is not RegenerateOutcome.DONE:
            text = messages_feedback.regenerate_refused(outcome)
            assert text != messages_feedback.REGENERATE_UNKNOWN


async def test_ratings_are_stored_per_draw(service: OhLoraService, repo: Repository) -> None:
    turn_id = await _chat(service, MINSU, "안녕")
    feedback = service.feedback
    assert await feedback.rate(MINSU, turn_id, Rating.UP)
    assert not await feedback.rate(JIWOO, turn_id, Rating.UP)  # not theirs
    assert not await feedback.rate(MINSU, turn_id + 999, Rating.UP)
    done = await feedback.regenerate(MINSU, turn_id)
    assert done.background is not None
    await done.background
    assert await feedback.rate(MINSU, turn_id, Rating.DOWN)
    assert await feedback.rate(MINSU, turn_id, Rating.UP)  # changing one's mind replaces it
    ratings = await FeedbackRepository(repo.db).ratings(turn_id)
    assert [(r.draw, r.rating, r.user_id) for r in ratings] == [(0, 1, MINSU), (1, 1, MINSU)]
    assert ratings[1].reply == done.reply


async def test_the_message_of_her_reply_finds_the_turn(service: OhLoraService) -> None:
    turn_id = await _chat(service, MINSU, "안녕")
    assert await service.feedback.turn_of_message("5555") is None
    await service.feedback.reply_sent(turn_id, "5555")
    assert await service.feedback.turn_of_message("5555") == turn_id
    assert await service.feedback.latest_turn(MINSU, CHANNEL) == turn_id


async def test_explain_shows_the_memory_actually_used_and_refuses_others(
    service: OhLoraService,
) -> None:
    feedback = service.feedback
    told = await _chat(service, MINSU, SINGER)  # remembered, nothing used yet
    used = await _chat(service, MINSU, "오늘 뭐 들을까?")
    assert await feedback.explain(JIWOO, used, admin=False) is None
    assert await feedback.explain(JIWOO, used, admin=True) is None  # admins too: not theirs
    assert await feedback.explain(MINSU, used + 999, admin=False) is None

    plain = await feedback.explain(MINSU, told, admin=False)
    assert plain is not None
    assert (plain.memory_used, plain.summary_used, plain.time_tag) == (None, None, None)
    why = await feedback.explain(MINSU, used, admin=False)
    assert why is not None
    assert why.memory_used == ITEM.render() and why.summary_used is None
    assert why.time_tag == "(지금은 수요일 오후)"
    assert why.created_at == NOW and why.draws == 1
    assert why.ethics_scores is None and why.timings is None
    lines = messages_feedback.explanation_lines(why, SEOUL)
    assert (
        ITEM.render() in lines and "(지금은 수요일 오후)" in lines and "2026.11.25 14:00" in lines
    )
    assert "관리자" not in lines

    admin = await feedback.explain(MINSU, used, admin=True)
    assert admin is not None and admin.ethics_scores == {NORMAL_NAME: 1.0}
    assert admin.timings is not None and set(admin.timings) >= {"retrieve", "reply", "ethics"}
    assert "윤리 점수" in messages_feedback.explanation_lines(admin, SEOUL)


async def test_explain_shows_the_summary_used_without_a_memory(service: OhLoraService) -> None:
    first = await _chat(service, JIWOO, "안녕 로라야")
    second = await _chat(service, JIWOO, "뭐 하고 있었어?")
    why = await service.feedback.explain(JIWOO, second, admin=False)
    assert why is not None and why.memory_used is None
    turns = await service.repo.turns(JIWOO)
    first_reply = next(t.reply for t in turns if t.id == first)
    assert why.summary_used == f"요약({first_reply})"
    assert why.summary_used in messages_feedback.explanation_lines(why, SEOUL)


async def test_the_export_holds_the_users_data_and_nothing_of_another(
    service: OhLoraService, repo: Repository, scripted: Scripted
) -> None:
    scripted.script[:] = ["나도 아이유 좋아해!", "미안해요, 그건 부담돼요"]
    mine = await _chat(service, MINSU, SINGER)
    await _chat(service, MINSU, CONFESSION)
    theirs = await _chat(service, JIWOO, "지우의 비밀 이야기")
    for user, turn_id in ((MINSU, mine), (JIWOO, theirs)):
        done = await service.feedback.regenerate(user, turn_id) if user == JIWOO else None
        if done is not None and done.background is not None:
            await done.background
        assert await service.feedback.rate(user, turn_id, Rating.UP)
    await repo.audit(ADMIN, "view_sanctions", MINSU, "rows=1", NOW)

    data = await service.feedback.export_user_data(MINSU)
    text = json.dumps(data, ensure_ascii=False)  # JSON-ready as it is
    assert data["format"] == "ohlora-user-data" and data["user_id"] == MINSU
    assert [m["value"] for m in data["memories"]] == [ITEM.value]
    assert {t["original_text"] for t in data["turns"]} == {SINGER, CONFESSION}
    assert [r["turn_id"] for r in data["ratings"]] == [mine]
    assert len(data["sanctions"]) == 1 and data["cases"][0]["actor_id"] == "system"
    assert data["conversations"][0]["channel_id"] == CHANNEL
    assert [a["actor_id"] for a in data["admin_actions"]] == [SOMEONE_ELSE]
    assert JIWOO not in text and "지우" not in text and ADMIN not in text
    other = await service.feedback.export_user_data(JIWOO)
    assert other["turns"][0]["reply_history"] and MINSU not in json.dumps(other)
