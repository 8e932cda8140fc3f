"""Regenerate (🔄), ratings (👍 / 👎), "why this reply" and a user's data export.

`service.feedback` serves the Discord buttons, the message context menu, `/export-my-data` and
the console's commands alike. A regenerate draws a new reply for a stored turn's final input
under the user's turn lock: the turn's ethics decision stands (no new sanction, no second
decision), memory extraction does not run again, and the summary and the expression are made
for the reply that stands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from engine.pipeline import MAX_REDRAWS, BackgroundResult, Engine
from engine.rules.prompts import summary_in
from engine.rules.timetag import time_tag_of
from storage.feedback import FeedbackRepository, FeedbackTurn, UserExport

log = logging.getLogger(__name__)

# A turn is regenerated at most this many times (its draws: the first reply and these).
MAX_REGENERATIONS = 5
# What `export_user_data` says the file is (its first key), and the layout's version.
EXPORT_FORMAT = "ohlora-user-data"
EXPORT_VERSION = 1

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "MAX_REDRAWS",
    "MAX_REGENERATIONS",
    "Explanation",
    "Feedback",
    "Rating",
    "RegenerateOutcome",
    "Regenerated",
]


class Rating(IntEnum):
    UP = 1  # 👍
    DOWN = -1  # 👎


class RegenerateOutcome(StrEnum):
    DONE = "done"
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    NOT_LATEST = "not_latest"  # a later turn of the user in that channel exists
    NOT_ANSWERED = "not_answered"  # a blocked, failed or refused turn, or its text purged
    LIMIT = "limit"  # `MAX_REGENERATIONS` reached
    BANNED = "banned"  # the user is blocked now: no model call
    UNCHANGED = "unchanged"  # `MAX_REDRAWS` draws all repeated an earlier reply
    FAILED = "failed"  # the reply model failed; the reply that stood still stands


@dataclass
class Regenerated:
    """What a regenerate did: the new reply and its draw number (DONE), else the refusal.

    `background` makes the summary and the expression of the new reply (memory extraction
    and ethics do not run again); the user's next turn waits for it."""

    outcome: RegenerateOutcome
    turn_id: int | None
    reply: str | None = None
    draw: int = 0
    background: asyncio.Task[BackgroundResult | None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Explanation:
    """Why she said what she said: the memory item or the summary in her input, the time
    tag, when it was said; for admins also the ethics scores and the stage timings."""

    turn_id: int
    created_at: datetime
    time_tag: str | None
    memory_used: str | None
    summary_used: str | None
    ethics_scores: dict[str, float] | None  # admins only, else None
    timings: dict[str, float] | None  # admins only, else None
    draws: int  # replies drawn for the turn (1 + regenerates)


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


class Feedback:
    """Regenerate, rate, explain and export, over the engine and the feedback store."""

    def __init__(
        self,
        engine: Engine,
        store: FeedbackRepository | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.store = store or FeedbackRepository(engine.repo.db)
        self.clock = clock or engine.clock

    # ---- her reply's message ---------------------------------------------------------------
    async def reply_sent(self, turn_id: int, message_id: str) -> None:
        """The bot records the Discord message showing the turn's reply (for the buttons and
        the context menu, which know only the message)."""
        if not await self.store.set_reply_message(turn_id, message_id):
            log.info("reply message %s for unknown turn %s", message_id, turn_id)

    async def turn_of_message(self, message_id: str) -> int | None:
        return await self.store.turn_of_message(message_id)

    async def latest_turn(self, user_id: str, channel_id: str) -> int | None:
        """The user's newest turn in the channel (the console's /regenerate, /rate, /why)."""
        return await self.store.latest_turn(user_id, channel_id)

    # ---- regenerate ------------------------------------------------------------------------
    async def regenerate(self, user_id: str, turn_id: int) -> Regenerated:
        """A new reply for the user's latest turn, unlike each reply it had; the old one goes
        to the turn's history. Runs under the user's turn lock (after their running turn and
        its background roles); the lock is held on by the new reply's background roles."""
        lock = await self.engine.turn_lock(user_id)
        try:
            result, turn = await self._redraw(user_id, turn_id)
        except BaseException:
            await lock.release()
            raise
        if result.outcome is not RegenerateOutcome.DONE:
            await lock.release()
            return result
        assert turn is not None and turn.final_input is not None and result.reply is not None
        result.background = self.engine.redraw_background(
            user_id, turn.channel_id, turn_id, turn.final_input, result.reply, lock
        )
        return result

    async def _redraw(self, user_id: str, turn_id: int) -> tuple[Regenerated, FeedbackTurn | None]:
        """The regenerate under the caller's turn lock, up to the new reply stored."""
        turn = await self.store.turn(turn_id)
        refusal = await self._refusal(user_id, turn_id, turn)
        if refusal is not None:
            return Regenerated(refusal, turn_id if turn is not None else None), turn
        assert turn is not None and turn.final_input is not None and turn.reply is not None
        try:
            reply = await self.engine.redraw(turn.final_input, turn.draws, turn.created_at)
        except Exception:
            log.exception("regenerating turn %s failed", turn_id)
            return Regenerated(RegenerateOutcome.FAILED, turn_id, draw=turn.draw), turn
        if reply is None:
            return Regenerated(RegenerateOutcome.UNCHANGED, turn_id, draw=turn.draw), turn
        draw = await self.store.replace_reply(turn_id, turn.reply, reply, self.clock())
        if draw is None:  # purged or deleted meanwhile (forget-me waits for the lock)
            return Regenerated(RegenerateOutcome.NOT_FOUND, turn_id), turn
        return Regenerated(RegenerateOutcome.DONE, turn_id, reply, draw), turn

    async def _refusal(
        self, user_id: str, turn_id: int, turn: FeedbackTurn | None
    ) -> RegenerateOutcome | None:
        if turn is None:
            return RegenerateOutcome.NOT_FOUND
        if turn.user_id != user_id:
            return RegenerateOutcome.NOT_YOURS
        if await self.engine.repo.active_block(user_id, self.clock()) is not None:
            return RegenerateOutcome.BANNED
        if not turn.answered:
            return RegenerateOutcome.NOT_ANSWERED
        if await self.store.latest_turn(user_id, turn.channel_id) != turn_id:
            return RegenerateOutcome.NOT_LATEST
        if turn.draw >= MAX_REGENERATIONS:
            return RegenerateOutcome.LIMIT
        return None

    # ---- ratings ---------------------------------------------------------------------------
    async def rate(self, user_id: str, turn_id: int, rating: Rating) -> bool:
        """👍 / 👎 on the reply that stands (rating it again replaces the first); False: no
        such turn of theirs, or nothing she said to rate."""
        stored = await self.store.rate(turn_id, user_id, int(rating), self.clock())
        return stored is not None

    # ---- why this reply --------------------------------------------------------------------
    async def explain(self, user_id: str, turn_id: int, *, admin: bool) -> Explanation | None:
        """What went into the turn's reply; None when there is no such turn or it is not the
        user's (the front end says "not yours" either way, telling nothing of others' turns).
        `admin` adds the ethics scores and the stage timings."""
        turn = await self.store.turn(turn_id)
        if turn is None or turn.user_id != user_id:
            return None
        memory = turn.memory_item_used
        return Explanation(
            turn_id=turn.id,
            created_at=turn.created_at,
            time_tag=time_tag_of(turn.tagged_prompt),
            memory_used=memory,
            summary_used=None if memory else summary_in(turn.final_input),
            ethics_scores=dict(turn.ethics_scores or {}) if admin else None,
            timings=dict(turn.timings or {}) if admin else None,
            draws=len(turn.draws),
        )

    # ---- export my data --------------------------------------------------------------------
    async def export_user_data(self, user_id: str) -> dict[str, Any]:
        """Everything stored about the user, JSON-ready (datetimes in ISO 8601, UTC); nothing
        about anyone else: whoever acted on them appears as "moderator" or "system"."""
        data: UserExport = await self.store.user_export(user_id)
        header = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "user_id": user_id,
            "exported_at": self.clock().isoformat(),
        }
        tables = {f.name: _json_ready(getattr(data, f.name)) for f in fields(data)}
        return header | tables
