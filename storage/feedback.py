"""Feedback storage: her replies' Discord messages, regenerated replies, ratings, and the
export of one user's data.

A regenerate (🔄) replaces a turn's reply and keeps the replaced text in `turns.reply_history`
(oldest first), so draw `n` of a turn is `reply_history[n]["text"]` and the reply that stands is
draw `len(reply_history)`; a rating (👍 / 👎) is stored per (turn, draw) with that draw's text.
SQL only (portable constructs: the suite runs on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database, upsert
from storage.models import (
    Appeal,
    AuditEntry,
    Case,
    Conversation,
    MemoryEvent,
    MemoryItemRow,
    ReplyRating,
    Sanction,
    Turn,
    User,
)
from storage.moderation import SYSTEM_ACTOR
from storage.records import TurnStatus

# What an export writes instead of the id of another person who acted on the user (a
# moderator lifting a block, deciding an appeal): the user learns that someone did, not who.
SOMEONE_ELSE = "moderator"
# Columns that name the person who acted: exported as the user's own id, "system", or
# `SOMEONE_ELSE` — never another person's id.
ACTOR_COLUMNS: dict[type[Any], tuple[str, ...]] = {
    Sanction: ("lifted_by",),
    Case: ("actor_id",),
    Appeal: ("decided_by",),
    AuditEntry: ("actor_id",),
}
# Columns left out of an export: not about the user (which service process ran a turn).
OMITTED_COLUMNS: dict[type[Any], tuple[str, ...]] = {Turn: ("instance_id",)}
# Keys of one `turns.reply_history` entry.
HISTORY_TEXT = "text"
HISTORY_AT = "at"


@dataclass(frozen=True)
class ReplacedReply:
    """A reply a regenerate replaced, and when."""

    text: str
    at: str  # ISO 8601, as stored


@dataclass(frozen=True)
class FeedbackTurn:
    """What regenerate, rate and explain read of one turn."""

    id: int
    user_id: str
    channel_id: str
    guild_id: str | None
    status: str
    tagged_prompt: str | None
    final_input: str | None
    reply: str | None
    memory_item_used: str | None
    ethics_scores: dict[str, float] | None
    timings: dict[str, float] | None
    reply_message_id: str | None
    created_at: datetime
    reply_history: tuple[ReplacedReply, ...] = ()

    @property
    def draw(self) -> int:
        """The number of the reply that stands (0: never regenerated)."""
        return len(self.reply_history)

    @property
    def answered(self) -> bool:
        """She answered it and the answer is still stored (not a block, a failure, a notice,
        nor a turn whose texts the retention purge blanked)."""
        return (
            self.status == TurnStatus.COMPLETED
            and self.reply is not None
            and self.final_input is not None
        )

    @property
    def draws(self) -> tuple[str, ...]:
        """Every reply drawn for the turn, oldest first (the last one stands)."""
        current = () if self.reply is None else (self.reply,)
        return tuple(r.text for r in self.reply_history) + current


@dataclass(frozen=True)
class RatingRecord:
    turn_id: int
    user_id: str
    draw: int
    rating: int  # +1 👍, -1 👎
    reply: str
    created_at: datetime


@dataclass(frozen=True)
class FeedbackSource:
    """A turn the feedback export learns from: its final input, every draw, and the ratings
    (draw -> (rating, the text rated))."""

    turn_id: int
    final_input: str
    draws: tuple[str, ...]
    ratings: dict[int, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class UserExport:
    """Every row stored about one user, as column -> value (datetimes left as they are)."""

    user: dict[str, Any] | None
    memories: tuple[dict[str, Any], ...]
    memory_history: tuple[dict[str, Any], ...]
    conversations: tuple[dict[str, Any], ...]
    turns: tuple[dict[str, Any], ...]
    ratings: tuple[dict[str, Any], ...]
    sanctions: tuple[dict[str, Any], ...]
    cases: tuple[dict[str, Any], ...]
    appeals: tuple[dict[str, Any], ...]
    admin_actions: tuple[dict[str, Any], ...]


def _history(raw: Sequence[dict[str, str]] | None) -> tuple[ReplacedReply, ...]:
    return tuple(
        ReplacedReply(str(h.get(HISTORY_TEXT, "")), str(h.get(HISTORY_AT, ""))) for h in raw or ()
    )


def _feedback_turn(row: Turn) -> FeedbackTurn:
    return FeedbackTurn(
        id=row.id,
        user_id=row.user_id,
        channel_id=row.channel_id,
        guild_id=row.guild_id,
        status=row.status,
        tagged_prompt=row.tagged_prompt,
        final_input=row.final_input,
        reply=row.reply,
        memory_item_used=row.memory_item_used,
        ethics_scores=row.ethics_scores,
        timings=row.timings,
        reply_message_id=row.reply_message_id,
        created_at=row.created_at,
        reply_history=_history(row.reply_history),
    )


def _rating(row: ReplyRating) -> RatingRecord:
    return RatingRecord(
        turn_id=row.turn_id,
        user_id=row.user_id,
        draw=row.draw,
        rating=row.rating,
        reply=row.reply,
        created_at=row.created_at,
    )


def _actor(value: str | None, user_id: str) -> str | None:
    """The user's own id stays, the service is "system", anyone else is `SOMEONE_ELSE`."""
    if value is None or value in (user_id, SYSTEM_ACTOR):
        return value
    return SOMEONE_ELSE


def _columns(row: Any, user_id: str) -> dict[str, Any]:
    """A row as column -> value, without omitted columns and with other people's ids hidden."""
    model = type(row)
    omitted = OMITTED_COLUMNS.get(model, ())
    actors = ACTOR_COLUMNS.get(model, ())
    values: dict[str, Any] = {}
    for attr in inspect(model).column_attrs:
        if attr.key in omitted:
            continue
        value = getattr(row, attr.key)
        values[attr.key] = _actor(value, user_id) if attr.key in actors else value
    return values


async def _rows(session: AsyncSession, query: Any, user_id: str) -> tuple[dict[str, Any], ...]:
    return tuple(_columns(r, user_id) for r in await session.scalars(query))


class FeedbackRepository:
    """Async access to reply messages, regenerated replies, ratings and data exports."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- her reply's message -------------------------------------------------------------
    async def set_reply_message(self, turn_id: int, message_id: str) -> bool:
        """Record the Discord message that shows the turn's reply; False: no such turn."""
        async with self.db.writing() as s:
            result = await s.execute(
                update(Turn).where(Turn.id == turn_id).values(reply_message_id=message_id)
            )
            return bool(getattr(result, "rowcount", 0))

    async def turn_of_message(self, message_id: str) -> int | None:
        """The turn whose reply a message shows (the newest, should two ever share it)."""
        async with self.db.reading() as s:
            return await s.scalar(
                select(Turn.id)
                .where(Turn.reply_message_id == message_id)
                .order_by(Turn.id.desc())
                .limit(1)
            )

    # ---- turns ---------------------------------------------------------------------------
    async def turn(self, turn_id: int) -> FeedbackTurn | None:
        async with self.db.reading() as s:
            row = await s.get(Turn, turn_id)
            return None if row is None else _feedback_turn(row)

    async def latest_turn(self, user_id: str, channel_id: str) -> int | None:
        """The user's newest turn in the channel, whatever became of it."""
        async with self.db.reading() as s:
            return await s.scalar(
                select(Turn.id)
                .where(Turn.user_id == user_id, Turn.channel_id == channel_id)
                .order_by(Turn.id.desc())
                .limit(1)
            )

    async def replace_reply(
        self, turn_id: int, expected: str, reply: str, now: datetime
    ) -> int | None:
        """Put `reply` in place of the turn's reply if that is still `expected`, keeping the
        old text in the history; the turn's expression is cleared (the new reply gets its own).
        Returns the new reply's draw number; None when the turn or its reply changed."""
        async with self.db.writing() as s:
            row = await s.get(Turn, turn_id)
            if row is None or row.reply != expected:
                return None
            history = list(row.reply_history or ())
            history.append({HISTORY_TEXT: expected, HISTORY_AT: now.isoformat()})
            row.reply_history = history  # a new list: the JSON column sees the change
            row.reply = reply
            row.expression = None
            return len(history)

    # ---- ratings -------------------------------------------------------------------------
    async def rate(
        self, turn_id: int, user_id: str, rating: int, now: datetime
    ) -> RatingRecord | None:
        """Rate the reply that stands on the user's turn (a second rating of the same draw
        replaces the first); None: no such turn of theirs, or no reply to rate."""
        async with self.db.writing() as s:
            row = await s.get(Turn, turn_id)
            if row is None or row.user_id != user_id or row.reply is None:
                return None
            if row.status != TurnStatus.COMPLETED:
                return None
            draw = len(row.reply_history or ())
            values = {
                "turn_id": turn_id,
                "user_id": user_id,
                "draw": draw,
                "rating": rating,
                "reply": row.reply,
                "created_at": now,
            }
            await s.execute(
                upsert(
                    s,
                    ReplyRating,
                    values,
                    keys=("turn_id", "draw"),
                    update=("rating", "reply", "created_at"),
                )
            )
            return RatingRecord(turn_id, user_id, draw, rating, row.reply, now)

    async def ratings(self, turn_id: int) -> list[RatingRecord]:
        """The turn's ratings, by draw."""
        async with self.db.reading() as s:
            rows = await s.scalars(
                select(ReplyRating).where(ReplyRating.turn_id == turn_id).order_by(ReplyRating.draw)
            )
            return [_rating(r) for r in rows]

    # ---- the feedback export (training) ----------------------------------------------------
    async def feedback_sources(self) -> list[FeedbackSource]:
        """Every turn with a regenerated reply or a rating, oldest first, whose final input is
        still stored (the retention purge blanks old texts)."""
        rated = select(ReplyRating.turn_id)
        async with self.db.reading() as s:
            turns = (
                await s.scalars(
                    select(Turn)
                    .where(
                        Turn.final_input.is_not(None),
                        Turn.reply.is_not(None),
                        Turn.reply_history.is_not(None) | Turn.id.in_(rated),
                    )
                    .order_by(Turn.id)
                )
            ).all()
            ratings: dict[int, dict[int, tuple[int, str]]] = {}
            for r in await s.scalars(select(ReplyRating).order_by(ReplyRating.id)):
                ratings.setdefault(r.turn_id, {})[r.draw] = (r.rating, r.reply)
        sources = []
        for row in turns:
            turn = _feedback_turn(row)
            assert turn.final_input is not None
            mine = ratings.get(turn.id, {})
            if turn.reply_history or mine:
                sources.append(FeedbackSource(turn.id, turn.final_input, turn.draws, mine))
        return sources

    # ---- one user's data -------------------------------------------------------------------
    async def user_export(self, user_id: str) -> UserExport:
        """Everything stored about `user_id`, in one read transaction: their rows in every
        table, the cases and admin actions about them; nothing of anyone else (the people who
        acted on them are `SOMEONE_ELSE`, see `ACTOR_COLUMNS`)."""
        async with self.db.reading() as s:
            user = await s.get(User, user_id)

            async def rows(model: Any, column: Any) -> tuple[dict[str, Any], ...]:
                """The model's rows whose `column` is this user, in insertion order."""
                query = select(model).where(column == user_id).order_by(model.id)
                return await _rows(s, query, user_id)

            return UserExport(
                user=None if user is None else _columns(user, user_id),
                memories=await rows(MemoryItemRow, MemoryItemRow.user_id),
                memory_history=await rows(MemoryEvent, MemoryEvent.user_id),
                conversations=await rows(Conversation, Conversation.user_id),
                turns=await rows(Turn, Turn.user_id),
                ratings=await rows(ReplyRating, ReplyRating.user_id),
                sanctions=await rows(Sanction, Sanction.user_id),
                cases=await rows(Case, Case.user_id),
                appeals=await rows(Appeal, Appeal.user_id),
                admin_actions=await rows(AuditEntry, AuditEntry.target_user_id),
            )
