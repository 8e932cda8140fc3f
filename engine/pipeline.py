"""The turn: ban check → time tag → length guard → memory → reply → ethics, then background roles.

`Engine.handle` is the whole async API a front end needs. Model work goes through the
`ModelWorker`; storage through the `Repository`. One turn at a time per user — including
that user's background roles, so the next turn sees a current summary and memory — while
different users interleave freely.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from engine.metrics import Metrics
from engine.rules import messages
from engine.rules.bounded import Held, KeyedLocks, Lru
from engine.rules.ethics_rules import triggered_categories
from engine.rules.expression import Expression
from engine.rules.memory_items import MAX_MEMORY_KEY_CHARS, MemoryItem, item_problem
from engine.rules.prompts import build_final_input
from engine.rules.sanctions import (
    SanctionDecision,
    SanctionLadder,
    block_message,
    block_notice,
    warning_message,
)
from engine.rules.sanitize import user_text
from engine.rules.timetag import add_time_tag
from engine.runtime.presets import Role
from engine.serving.backend import (
    Backend,
    MixedRow,
    ReplyRow,
    RetrievalRow,
    SummaryRow,
)
from engine.serving.batching import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_S, Batcher
from engine.serving.worker import PRIORITY_BACKGROUND, PRIORITY_PREPARE, PRIORITY_REPLY, ModelWorker
from engine.settings import DEFAULT_MAX_MEMORY_ITEMS
from storage import CaseRecord, DeletionReport, MemoryRecord, Repository, TurnStatus
from storage.locks import HeldUserLock, UserLocks
from storage.models import KEY_LEN

log = logging.getLogger(__name__)

# An extracted item is stored only if it keeps the rules of every stored item
# (`engine.rules.memory_items.item_problem`: the length caps, the `[key: value]` form), the
# same the memory panel's edit form applies.
assert MAX_MEMORY_KEY_CHARS <= KEY_LEN
# Per-process bookkeeping kept for at most this many users (the least recently touched go):
# when a block notice was last shown, and how many items the cap evicted since `/memory`.
MAX_BLOCK_NOTICES = 10_000
MAX_EVICTION_COUNTS = 10_000
# A regenerate (🔄) draws the reply again at most this many times until one differs from every
# reply the turn already had; each draw is a reply-model call, so a model that keeps repeating
# itself costs a bounded amount.
MAX_REDRAWS = 3


__all__ = [
    "MAX_REDRAWS",
    "Backend",
    "BackgroundResult",
    "Call",
    "Engine",
    "TurnKind",
    "TurnLock",
    "TurnResult",
]


class Call(StrEnum):
    """The engine's batched model calls, one `Batcher` each (`Engine.batchers`)."""

    TOKENS = "tokens"
    RETRIEVE = "retrieve"
    ETHICS = "ethics"
    MEMORY = "memory"
    EXPRESSION = "expression"
    # Either both roles in one batcher (`Backend.mixes_roles`), or one batcher each.
    KANANA = "kanana"
    REPLY = "reply"
    SUMMARY = "summary"


def _lane(row: MixedRow) -> int:
    """Reply rows are taken into a mixed batch before summary rows."""
    return 0 if row.role is Role.REPLY else 1


class TurnKind(StrEnum):
    REPLY = "reply"
    WARNING = "warning"  # a warning, then the reply
    BLOCKED = "blocked"  # this turn earned a block; the reply is never shown
    BLOCK_NOTICE = "block_notice"  # already blocked: no model call at all
    TOO_LONG = "too_long"
    EMPTY = "empty"
    FAILED = "failed"


# Turns the reply model answered: their time is the reply latency (`Metrics.reply_latency`).
ANSWERED_KINDS = frozenset({TurnKind.REPLY, TurnKind.WARNING, TurnKind.BLOCKED})


@dataclass(frozen=True)
class BackgroundResult:
    summary: str
    memory: MemoryItem | None  # None also when extraction did not run (a regenerate)
    expression: Expression


@dataclass
class TurnResult:
    """What a front end shows: `notice` (warning/block/system text) and/or Oh-LoRA's `reply`."""

    kind: TurnKind
    turn_id: int | None
    reply: str | None = None
    notice: str | None = None
    memory_used: str | None = None
    # The numbered case a warning or block turn wrote (the bot posts it to the mod-logs).
    case: CaseRecord | None = None
    background: asyncio.Task[BackgroundResult | None] | None = field(default=None, repr=False)

    @property
    def messages(self) -> list[str]:
        return [m for m in (self.notice, self.reply) if m]


@dataclass(frozen=True)
class _Where:
    """Who wrote a message and where: the user, the channel, the message, the server."""

    user_id: str
    channel_id: str
    message_id: str | None
    guild_id: str | None


@dataclass
class _Reply:
    """Intermediate state of the reply path, kept for the background roles."""

    final_input: str
    reply: str


class _Coming:
    """Counts a turn as on its way to the reply batcher until it calls it (or stops early), so
    a reply batch can wait a moment for rows known to be coming."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending = True
        engine._before_reply += 1

    def arrived(self) -> None:
        if self.pending:
            self.pending = False
            self.engine._before_reply -= 1


class Engine:
    """Runs turns for many users over one model worker and one repository."""

    def __init__(
        self,
        repo: Repository,
        backend: Backend,
        worker: ModelWorker,
        *,
        clock: Callable[[], datetime],
        max_prompt_tokens: int,
        max_message_chars: int,
        ladder: SanctionLadder | None = None,
        block_notice_cooldown: timedelta = timedelta(0),
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_window_s: float = DEFAULT_WINDOW_S,
        polyglot_worker: ModelWorker | None = None,
        max_memory_items: int = DEFAULT_MAX_MEMORY_ITEMS,
        metrics: Metrics | None = None,
        sanction_decay: timedelta | None = None,
        user_locks: UserLocks | None = None,
    ) -> None:
        self.repo = repo
        self.metrics = metrics or Metrics()
        self.backend = backend
        self.worker = worker
        self.clock = clock
        self.max_prompt_tokens = max_prompt_tokens
        self.max_message_chars = max_message_chars
        self.ladder = ladder or SanctionLadder()
        # Ended sanctions older than this no longer count toward the next level (None: never).
        self.sanction_decay = sanction_decay
        self.block_notice_cooldown = block_notice_cooldown
        self.max_memory_items = max_memory_items
        # user -> (when the notice was last shown, the block end it named)
        self._notices: Lru[str, tuple[datetime, datetime]] = Lru(MAX_BLOCK_NOTICES)
        self._evictions: Lru[str, int] = Lru(MAX_EVICTION_COUNTS)  # told by `/memory`

        def batcher(
            fn: Callable[[list[Any]], Any],
            priority: int,
            expect: Callable[[], int] | None = None,
            on: ModelWorker = worker,
        ) -> Batcher[Any, Any]:
            return Batcher(
                on,
                fn,
                priority=priority,
                max_batch=max_batch,
                window_s=batch_window_s,
                expect=expect,
            )

        # With a second worker the Polyglot roles and the S-BERT models run on it, beside the
        # Kanana roles: two batches at once (each model is only ever used by one thread).
        second = polyglot_worker or worker

        self._before_reply = 0  # turns between their start and their reply call

        # Reply-path calls outrank the background roles on the one model thread, and the cheap
        # steps before a reply outrank replies, so turns reach the reply batch together.
        self.batchers: dict[Call, Batcher[Any, Any]] = {
            Call.TOKENS: batcher(backend.count_tokens, PRIORITY_PREPARE),
            Call.RETRIEVE: batcher(backend.best_memories, PRIORITY_PREPARE, on=second),
            Call.ETHICS: batcher(backend.ethics_scores, PRIORITY_REPLY, on=second),
            # Background batches start at once: the user's next turn waits for them, and rows
            # gather anyway while the worker is busy. (Waiting up to 0.5 s for the rows of turns
            # still in their reply path made bigger batches but ~6 % fewer turns/s in the bench.)
            Call.MEMORY: batcher(backend.memories, PRIORITY_BACKGROUND, on=second),
            Call.EXPRESSION: batcher(backend.expressions, PRIORITY_BACKGROUND, on=second),
        }
        self._reply: Callable[[ReplyRow], Awaitable[str]]
        self._summary: Callable[[SummaryRow], Awaitable[str]]
        if backend.mixes_roles:
            # Reply and summary rows share their base's batches (each row its own adapter):
            # replies are taken first, summaries fill the rest, so no reply waits on a summary
            # batch and the one base decodes fewer, fuller batches.
            kanana: Batcher[MixedRow, str] = Batcher(
                worker,
                backend.mixed_rows,
                priority=PRIORITY_REPLY,
                max_batch=max_batch,
                window_s=batch_window_s,
                expect=lambda: self._before_reply,
                lane=_lane,
                name="kanana",
            )
            self.batchers[Call.KANANA] = kanana

            async def reply(row: ReplyRow) -> str:
                return await kanana(MixedRow(Role.REPLY, row))

            async def summary(row: SummaryRow) -> str:
                return await kanana(MixedRow(Role.SUMMARY, row))

            self._reply, self._summary = reply, summary
        else:
            self._reply = self.batchers[Call.REPLY] = batcher(
                backend.replies, PRIORITY_REPLY, lambda: self._before_reply
            )
            self._summary = self.batchers[Call.SUMMARY] = batcher(
                backend.summaries, PRIORITY_BACKGROUND
            )
        for call, batcher_of_call in self.batchers.items():  # reported under the call's name
            batcher_of_call.name = str(call)
            batcher_of_call.observer = self.metrics
        self._locks = KeyedLocks()  # one per user with a turn in progress (or waiting)
        # Then the database's user lock, which other processes on the database see (the
        # in-process lock first, so only one coroutine per user waits on the database).
        self.user_locks = user_locks or UserLocks()
        self._background: set[asyncio.Task[Any]] = set()

    async def handle(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        message_id: str | None = None,
        guild_id: str | None = None,
    ) -> TurnResult:
        """Answer one message; background roles keep the user's lock until they finish.

        `guild_id` is the server the message was written in (None: DMs, the console); the
        turn and any decision it earns remember it, so moderators see their own server's."""
        lock = await self.turn_lock(user_id)
        coming = _Coming(self)
        try:
            result, reply = await self._reply_path(
                _Where(user_id, channel_id, message_id, guild_id), text, coming
            )
        except BaseException:
            await lock.release()
            raise
        finally:
            coming.arrived()
        if reply is None or result.turn_id is None:
            await lock.release()
            return result
        result.background = self._start_background(user_id, channel_id, result.turn_id, reply, lock)
        return result

    async def forget_user(self, user_id: str) -> DeletionReport:
        """Forget-me: memories, summaries and turns go (sanctions stay, see the repository).

        It takes the user's turn lock, so it waits for a running turn and its background
        roles: nothing they write can land after the deletion."""
        async with self._holding(user_id):
            self._evictions.pop(user_id)
            return await self.repo.delete_user_data(user_id)

    async def reset_conversation(self, user_id: str, channel_id: str) -> None:
        """`/reset`: an empty summary for this channel, after the user's running turn (which
        would write its summary back otherwise)."""
        async with self._holding(user_id):
            await self.repo.set_summary(user_id, channel_id, "", self.clock())

    async def forget_memory(self, user_id: str, key: str) -> bool:
        """`/forget item`, after the user's running turn (whose memory role could write the
        item back)."""
        async with self._holding(user_id):
            return await self.repo.forget_memory(user_id, key, self.clock())

    async def forget_all_memories(self, user_id: str) -> int:
        """`/forget all`, after the user's running turn, as `forget_memory`."""
        async with self._holding(user_id):
            return await self.repo.forget_all_memories(user_id, self.clock())

    async def turn_lock(self, user_id: str) -> TurnLock:
        """The user's turn lock: this process's first, then the database's. Held by the caller
        until `TurnLock.release` (or handed to `redraw_background`, which releases it): a turn,
        its background roles, a memory change and a regenerate never overlap."""
        local = await self._locks.acquire(user_id)
        try:
            shared = await self.user_locks.acquire(user_id)
        except BaseException:
            local.release()
            raise
        return TurnLock(local, shared)

    async def redraw(
        self, final_input: str, earlier: Collection[str], said_at: datetime
    ) -> str | None:
        """A new reply to a stored turn's final input, unlike every reply in `earlier`: up to
        `MAX_REDRAWS` reply-model calls; None when each repeated an earlier reply.

        `said_at` is when the turn was said: its time tag is in the final input, so the
        weekday check and the reply temperature follow that moment, in the engine's zone.
        The caller holds the user's turn lock; ethics is not asked again (the turn's decision
        stands), nor is the ban checked here (the caller refuses a blocked user first)."""
        local = said_at.astimezone(self.clock().tzinfo)
        seen = set(earlier)
        for _ in range(MAX_REDRAWS):
            reply = await self._reply(ReplyRow(final_input, local))
            if reply not in seen:
                return reply
        return None

    def redraw_background(
        self,
        user_id: str,
        channel_id: str,
        turn_id: int,
        final_input: str,
        reply: str,
        lock: TurnLock,
    ) -> asyncio.Task[BackgroundResult | None]:
        """The summary and the expression of a regenerated reply, in the background under
        `lock` (released when they finish). Memory extraction does not run again: its input
        is the final input alone, which the regenerate did not change, and the turn's
        extraction already ran once."""
        return self._start_background(
            user_id, channel_id, turn_id, _Reply(final_input, reply), lock, extract_memory=False
        )

    def _start_background(
        self,
        user_id: str,
        channel_id: str,
        turn_id: int,
        done: _Reply,
        lock: TurnLock,
        *,
        extract_memory: bool = True,
    ) -> asyncio.Task[BackgroundResult | None]:
        task = asyncio.create_task(
            self._background_roles(
                user_id, channel_id, turn_id, done, lock, extract_memory=extract_memory
            )
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    @asynccontextmanager
    async def _holding(self, user_id: str) -> AsyncIterator[None]:
        lock = await self.turn_lock(user_id)
        try:
            yield
        finally:
            await lock.release()

    def take_evictions(self, user_id: str) -> int:
        """Items the cap evicted for this user since the last call (`/memory` tells them)."""
        return self._evictions.pop(user_id) or 0

    async def drain(self) -> None:
        """Wait for every background role still running (used at shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # ---- the reply path -----------------------------------------------------------
    async def _reply_path(
        self, where: _Where, text: str, coming: _Coming
    ) -> tuple[TurnResult, _Reply | None]:
        """The turn up to its answer, counted by kind and timed (`Metrics.turn`)."""
        started = time.perf_counter()
        try:
            result, reply = await self._turn(where, text, coming)
        except Exception:  # storage failed before the turn could be answered: the caller's
            self.metrics.turn(TurnKind.FAILED, time.perf_counter() - started, answered=False)
            raise
        kind = result.kind
        self.metrics.turn(kind, time.perf_counter() - started, answered=kind in ANSWERED_KINDS)
        return result, reply

    async def _turn(
        self, where: _Where, text: str, coming: _Coming
    ) -> tuple[TurnResult, _Reply | None]:
        user_id = where.user_id
        now = self.clock()
        # Capped before cleaning (still too long if it was); clean Unicode; markers typed by the
        # user cannot shape prompts.
        text = user_text(text, self.max_message_chars)
        timings: dict[str, float] = {}
        block = await self.repo.active_block(user_id, now)
        if block is None:
            self._notices.pop(user_id)  # a block that ended needs no bookkeeping
        else:
            notice = None
            if self._notice_due(user_id, block.expires_at, now):
                notice = block_notice(block.expires_at.astimezone(now.tzinfo), block.categories)
                notice = f"{notice}\n{messages.APPEAL_HINT}"
                self._notices.put(user_id, (now, block.expires_at))
            turn_id = await self._start_turn(where, text, now)
            await self.repo.finish_turn(turn_id, TurnStatus.BLOCKED, now, reply=None)
            return TurnResult(TurnKind.BLOCK_NOTICE, turn_id, notice=notice), None

        turn_id = await self._start_turn(where, text, now)
        if not text.strip():
            await self.repo.finish_turn(turn_id, TurnStatus.REJECTED, now, error="empty")
            return TurnResult(TurnKind.EMPTY, turn_id, notice=messages.EMPTY), None
        try:
            return await self._answer(where, text, now, turn_id, timings, coming)
        except Exception as exc:
            log.exception("turn %s failed", turn_id)
            await self._mark_failed(turn_id, exc, timings)
            return TurnResult(TurnKind.FAILED, turn_id, notice=messages.APOLOGY), None

    async def _start_turn(self, where: _Where, text: str, now: datetime) -> int:
        return await self.repo.start_turn(
            where.user_id, where.channel_id, text, now, where.message_id, guild_id=where.guild_id
        )

    async def _answer(
        self,
        where: _Where,
        text: str,
        now: datetime,
        turn_id: int,
        timings: dict[str, float],
        coming: _Coming,
    ) -> tuple[TurnResult, _Reply | None]:
        user_id, channel_id = where.user_id, where.channel_id
        tagged = add_time_tag(text, now)
        started = time.perf_counter()
        too_long = len(tagged) > self.max_message_chars or (
            await self.batchers[Call.TOKENS](tagged) > self.max_prompt_tokens
        )
        if too_long:
            await self.repo.finish_turn(
                turn_id, TurnStatus.REJECTED, now, tagged_prompt=tagged, error="too long"
            )
            return TurnResult(TurnKind.TOO_LONG, turn_id, notice=messages.TOO_LONG), None

        memory_used = await self._retrieve(user_id, tagged, now)
        summary = None if memory_used else await self.repo.get_summary(user_id, channel_id)
        final_input = build_final_input(tagged, memory_used, summary)
        timings["retrieve"] = time.perf_counter() - started

        started = time.perf_counter()
        coming.arrived()
        reply = await self._reply(ReplyRow(final_input, now))
        timings["reply"] = time.perf_counter() - started

        started = time.perf_counter()
        scores = await self.batchers[Call.ETHICS](text)
        timings["ethics"] = time.perf_counter() - started
        categories = triggered_categories(
            scores, self.backend.ethics_thresholds, reply, self.backend.normal_veto
        )
        fields = dict(
            tagged_prompt=tagged,
            final_input=final_input,
            reply=reply,
            memory_item_used=memory_used,
            ethics_scores=scores,
            timings=timings,
        )
        # Stamped when the turn finished (not `now`, its start), so the stored [created,
        # completed] span is the turn's: one user's spans never overlap (bench.load checks).
        if not categories:
            await self.repo.finish_turn(turn_id, TurnStatus.COMPLETED, self.clock(), **fields)
            return (
                TurnResult(TurnKind.REPLY, turn_id, reply=reply, memory_used=memory_used),
                _Reply(final_input, reply),
            )

        decided = await self.repo.record_offence(
            user_id,
            [str(c) for c in categories],
            self.ladder,
            now,
            turn_id=turn_id,
            guild_id=where.guild_id,
            decay=self.sanction_decay,
        )
        decision = decided.decision
        assert isinstance(decision, SanctionDecision)  # what `self.ladder` decides
        self.metrics.sanctioned(decision.entries)
        if decided.is_block:
            await self.repo.finish_turn(turn_id, TurnStatus.BLOCKED, self.clock(), **fields)
            self._notices.pop(user_id)
            notice = f"{block_message(decision)}\n{messages.APPEAL_HINT}"
            return TurnResult(TurnKind.BLOCKED, turn_id, notice=notice, case=decided.case), None
        await self.repo.finish_turn(turn_id, TurnStatus.COMPLETED, self.clock(), **fields)
        return (
            TurnResult(
                TurnKind.WARNING,
                turn_id,
                reply=reply,
                notice=warning_message(decision),
                memory_used=memory_used,
                case=decided.case,
            ),
            _Reply(final_input, reply),
        )

    def _notice_due(self, user_id: str, expires_at: datetime, now: datetime) -> bool:
        """At most one notice per cooldown for the same block; a new block is told at once."""
        last = self._notices.get(user_id)
        return last is None or last[1] != expires_at or now - last[0] >= self.block_notice_cooldown

    async def _retrieve(self, user_id: str, tagged: str, now: datetime) -> str | None:
        """This user's best memory item above the threshold; never another user's. The item
        picked is marked used (the item cap evicts the least recently used first)."""
        records: list[MemoryRecord] = await self.repo.list_memories(user_id, now)
        if not records:
            return None
        items = [m.render() for m in records]
        best = await self.batchers[Call.RETRIEVE](RetrievalRow(tagged, items))
        if not best:
            return None
        await self.repo.mark_memory_used(user_id, records[best[0]].id, now)
        return items[best[0]]

    async def _mark_failed(self, turn_id: int, exc: Exception, timings: dict[str, float]) -> None:
        try:
            await self.repo.finish_turn(
                turn_id, TurnStatus.FAILED, self.clock(), error=repr(exc)[:500], timings=timings
            )
        except Exception:
            log.exception("could not record failed turn %s", turn_id)

    # ---- after the reply ---------------------------------------------------------------
    async def _background_roles(
        self,
        user_id: str,
        channel_id: str,
        turn_id: int,
        done: _Reply,
        lock: TurnLock,
        *,
        extract_memory: bool = True,
    ) -> BackgroundResult | None:
        """Summary, memory extraction (unless `extract_memory` is off) and expression, at
        background priority."""
        try:
            # The three roles are independent: each joins its own batch at once.
            summary, item, expression = await asyncio.gather(
                self._summary(SummaryRow(done.final_input, done.reply)),
                self._extract(done.final_input) if extract_memory else _nothing(),
                self.batchers[Call.EXPRESSION](done.reply),
            )
            now = self.clock()
            await self.repo.set_summary(user_id, channel_id, summary, now)
            problem = None if item is None else item_problem(item.key, item.value)
            if problem is not None:
                log.info("turn %s: memory item not stored: %s", turn_id, problem)
                item = None
            if item is not None:
                stored = await self.repo.remember(
                    user_id,
                    item.key,
                    item.value,
                    now,
                    max_items=self.max_memory_items,
                    source_turn_id=turn_id,
                )
                self.metrics.remembered(len(stored.evicted))
                if stored.evicted:
                    self._evictions.put(
                        user_id, (self._evictions.get(user_id) or 0) + len(stored.evicted)
                    )
            await self.repo.set_turn_expression(turn_id, expression.render())
            return BackgroundResult(summary, item, expression)
        except Exception:
            log.exception("background roles of turn %s failed", turn_id)
            return None
        finally:
            await lock.release()

    async def _extract(self, final_input: str) -> MemoryItem | None:
        item: MemoryItem | None = await self.batchers[Call.MEMORY](final_input)
        return item


async def _nothing() -> None:
    """An awaitable standing for a role that does not run."""
    return None


@dataclass
class TurnLock:
    """A user's turn lock in both stages; `release` gives back the database's, then this
    process's (so the next coroutine here queues on the database only once it is free)."""

    local: Held
    shared: HeldUserLock

    async def release(self) -> None:
        try:
            await self.shared.release()
        finally:
            self.local.release()
