"""Feedback storage (every backend): reply messages, replaced replies, ratings by (turn, draw),
the feedback sources of the training export, and one user's data export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from engine.rules.sanctions import SanctionLadder
from storage import Database, ModerationRepository, Repository, TurnStatus
from storage.feedback import SOMEONE_ELSE, FeedbackRepository
from storage.models import MemoryEvent
from storage.moderation import AppealLimits
from storage.records import EVERYWHERE

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)
MINSU, JIWOO = "user-minsu-1111", "user-jiwoo-2222"
ADMIN = "admin-9999"
GUILD = "7001"
LIMITS = AppealLimits(per_block=2, per_window=5, window=timedelta(days=1))


@pytest.fixture
def store(db: Database) -> FeedbackRepository:
    return FeedbackRepository(db)


async def _answered(repo: Repository, user: str, channel: str, text: str, reply: str) -> int:
    turn = await repo.start_turn(user, channel, text, NOW, message_id=f"m-{text}")
    await repo.finish_turn(
        turn,
        TurnStatus.COMPLETED,
        NOW,
        tagged_prompt=text,
        final_input=text,
        reply=reply,
        ethics_scores={"일반": 0.9},
        timings={"reply": 0.5},
    )
    return turn


async def test_the_reply_message_finds_its_turn(repo: Repository, store: FeedbackRepository):
    turn = await _answered(repo, MINSU, "c1", "안녕", "안녕하세요!")
    assert await store.turn_of_message("990") is None
    assert await store.set_reply_message(turn, "990")
    assert not await store.set_reply_message(turn + 100, "991")
    assert await store.turn_of_message("990") == turn
    found = await store.turn(turn)
    assert found is not None and found.reply_message_id == "990"


async def test_latest_turn_is_per_user_and_channel(repo: Repository, store: FeedbackRepository):
    first = await _answered(repo, MINSU, "c1", "하나", "1")
    second = await _answered(repo, MINSU, "c1", "둘", "2")
    elsewhere = await _answered(repo, MINSU, "c2", "셋", "3")
    await _answered(repo, JIWOO, "c1", "넷", "4")
    assert first < second
    assert await store.latest_turn(MINSU, "c1") == second
    assert await store.latest_turn(MINSU, "c2") == elsewhere
    assert await store.latest_turn(MINSU, "c3") is None


async def test_a_replaced_reply_goes_to_the_history(repo: Repository, store: FeedbackRepository):
    turn = await _answered(repo, MINSU, "c1", "안녕", "첫 답")
    await repo.set_turn_expression(turn, "(눈 크게)")
    assert await store.replace_reply(turn, "다른 답", "새 답", LATER) is None  # changed meanwhile
    assert await store.replace_reply(turn, "첫 답", "둘째 답", LATER) == 1
    assert await store.replace_reply(turn, "둘째 답", "셋째 답", LATER) == 2
    found = await store.turn(turn)
    assert found is not None
    assert found.reply == "셋째 답" and found.draw == 2
    assert found.draws == ("첫 답", "둘째 답", "셋째 답")
    assert [h.at for h in found.reply_history] == [LATER.isoformat()] * 2
    # the turn's own record of what happened stays (one status, the original scores)
    assert found.status == TurnStatus.COMPLETED and found.ethics_scores == {"일반": 0.9}
    assert (await repo.turns(MINSU))[0].expression is None  # the new reply gets its own


async def test_ratings_are_one_per_turn_and_draw(repo: Repository, store: FeedbackRepository):
    turn = await _answered(repo, MINSU, "c1", "안녕", "첫 답")
    assert await store.rate(turn, JIWOO, 1, NOW) is None  # not theirs
    assert await store.rate(turn + 100, MINSU, 1, NOW) is None
    first = await store.rate(turn, MINSU, 1, NOW)
    assert first is not None and (first.draw, first.rating, first.reply) == (0, 1, "첫 답")
    again = await store.rate(turn, MINSU, -1, LATER)  # rating again replaces it
    assert again is not None and again.rating == -1
    await store.replace_reply(turn, "첫 답", "둘째 답", LATER)
    await store.rate(turn, MINSU, 1, LATER)
    ratings = await store.ratings(turn)
    assert [(r.draw, r.rating, r.reply) for r in ratings] == [(0, -1, "첫 답"), (1, 1, "둘째 답")]


async def test_a_turn_without_her_answer_cannot_be_rated(
    repo: Repository, store: FeedbackRepository
):
    turn = await repo.start_turn(MINSU, "c1", "너 바보", NOW)
    await repo.finish_turn(turn, TurnStatus.BLOCKED, NOW, reply="숨겨진 답")
    assert await store.rate(turn, MINSU, 1, NOW) is None
    found = await store.turn(turn)
    assert found is not None and not found.answered


async def test_feedback_sources_hold_regenerated_and_rated_turns(
    repo: Repository, store: FeedbackRepository
):
    plain = await _answered(repo, MINSU, "c1", "하나", "1")
    swiped = await _answered(repo, MINSU, "c1", "둘", "2a")
    await store.replace_reply(swiped, "2a", "2b", LATER)
    rated = await _answered(repo, JIWOO, "c1", "셋", "3")
    await store.rate(rated, JIWOO, -1, LATER)
    sources = {s.turn_id: s for s in await store.feedback_sources()}
    assert plain not in sources
    assert sources[swiped].draws == ("2a", "2b") and sources[swiped].ratings == {}
    assert sources[rated].draws == ("3",) and sources[rated].ratings == {0: (-1, "3")}
    assert sources[swiped].final_input == "둘"


async def _people(repo: Repository, moderation: ModerationRepository, store: FeedbackRepository):
    """Two users with data in every table; Jiwoo's block lifted by an admin, her appeal."""
    for user, word in ((MINSU, "민수의비밀"), (JIWOO, "지우의비밀")):
        turn = await _answered(repo, user, "c1", f"{word} 말", f"{word} 답")
        await store.replace_reply(turn, f"{word} 답", f"{word} 새답", LATER)
        await store.rate(turn, user, 1, LATER)
        await repo.remember(user, "좋아하는 것", word, NOW, source_turn_id=turn)
        await repo.set_summary(user, "c1", f"{word} 요약", NOW)
        async with repo.db.writing() as s:
            s.add(
                MemoryEvent(  # the history of an item she no longer has
                    user_id=user,
                    key="예전 기억",
                    action="deleted",
                    source="user",
                    old_value=word,
                    at=NOW,
                )
            )
        blocked = await repo.start_turn(user, "c1", f"{word} 욕", NOW, guild_id=GUILD)
        await repo.record_offence(
            user, ["paedrip"], SanctionLadder(), NOW, turn_id=blocked, guild_id=GUILD
        )
    filed = await moderation.file_appeal(MINSU, "민수의 이의", NOW, LIMITS, "appeal")
    assert filed.appeal is not None
    await moderation.decide_appeal(
        filed.appeal.id,
        ADMIN,
        True,
        "풀어 줌",
        LATER,
        guild_id=GUILD,
        action="appeal_decided",
        lift_action="unban",
    )
    await repo.audit(ADMIN, "view_sanctions", MINSU, "rows=1", LATER, guild_id=GUILD)
    await repo.audit(ADMIN, "view_sanctions", JIWOO, "rows=1", LATER, guild_id=GUILD)
    await repo.lift_blocks(JIWOO, ADMIN, "지우 해제", LATER, scope=EVERYWHERE)


async def test_the_export_holds_every_table_of_the_user_and_nothing_else(
    repo: Repository, db: Database, store: FeedbackRepository
):
    await _people(repo, ModerationRepository(db), store)
    data = await store.user_export(MINSU)
    assert data.user is not None and data.user["id"] == MINSU
    assert [m["value"] for m in data.memories] == ["민수의비밀"]
    events = {(e["key"], e["action"], e["old_value"]) for e in data.memory_history}
    assert ("예전 기억", "deleted", "민수의비밀") in events
    assert [c["summary"] for c in data.conversations] == ["민수의비밀 요약"]
    assert len(data.turns) == 2 and "instance_id" not in data.turns[0]
    assert data.turns[0]["reply"] == "민수의비밀 새답"
    assert data.turns[0]["reply_history"][0]["text"] == "민수의비밀 답"
    assert [(r["draw"], r["rating"]) for r in data.ratings] == [(1, 1)]
    assert len(data.sanctions) == 1 and data.sanctions[0]["lifted_by"] == SOMEONE_ELSE
    assert {c["actor_id"] for c in data.cases} == {"system", SOMEONE_ELSE}
    assert len(data.appeals) == 1 and data.appeals[0]["decided_by"] == SOMEONE_ELSE
    actors = {(a["actor_id"], a["action"]) for a in data.admin_actions}
    assert (MINSU, "appeal") in actors  # her own filing keeps her own id
    assert (SOMEONE_ELSE, "view_sanctions") in actors
    text = json.dumps(
        [data.user, data.memories, data.memory_history, data.conversations, data.turns,
         data.ratings, data.sanctions, data.cases, data.appeals, data.admin_actions],
        default=str,
        ensure_ascii=False,
    )  # fmt: skip
    assert JIWOO not in text and "지우" not in text
    assert ADMIN not in text


async def test_an_unknown_user_exports_empty(store: FeedbackRepository):
    data = await store.user_export("nobody")
    assert data.user is None and data.turns == () and data.admin_actions == ()


async def test_forget_me_takes_the_ratings_and_replaced_replies_too(
    repo: Repository, store: FeedbackRepository
):
    turn = await _answered(repo, MINSU, "c1", "안녕", "첫 답")
    await store.replace_reply(turn, "첫 답", "둘째 답", LATER)
    await store.rate(turn, MINSU, 1, LATER)
    await repo.delete_user_data(MINSU)
    assert await store.ratings(turn) == []
    data = await store.user_export(MINSU)
    assert (data.turns, data.ratings) == ((), ())
