"""The async repository API that the engine and the bot call; the only place that speaks SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import case, delete, func, select, true, update
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database, upsert
from storage.instances import instance_dead
from storage.models import (
    AuditEntry,
    Conversation,
    MaintenanceState,
    MemoryEvent,
    MemoryItemRow,
    Sanction,
    Turn,
    User,
    utcnow,
)
from storage.moderation import (
    add_audit,
    add_decision_case,
    counts_toward_level,
    forget_excerpts,
)
from storage.records import (
    EVERYWHERE,
    ActiveBlock,
    AgingReport,
    AuditRecord,
    DailyRun,
    DeletionReport,
    Everywhere,
    GuildScope,
    Ladder,
    MemoryAction,
    MemoryEventRecord,
    MemoryRecord,
    MemorySource,
    RecordedDecision,
    SanctionRecord,
    TurnRecord,
    TurnStatus,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Fields a caller may set when a turn finishes; anything else is a programming error.
TURN_RESULT_FIELDS = frozenset(
    {
        "tagged_prompt",
        "final_input",
        "reply",
        "memory_item_used",
        "ethics_scores",
        "expression",
        "timings",
        "error",
        "reply_message_id",
    }
)
DEFAULT_LOG_LIMIT = 20
# Day-bound memory keys (reference §4: `오늘 일정`, `내일 일정`, `오늘 날씨` ...).
TODAY_PREFIX = "오늘 "
TOMORROW_PREFIX = "내일 "
SYSTEM_ACTOR = "system"
# The daily maintenance's row in `maintenance_state` (seeded by migration 0005).
DAILY_MAINTENANCE = "daily"


R = TypeVar("R", bound="DataclassInstance")


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched. Its result is a `CursorResult` at run time, which the
    signature of `AsyncSession.execute` does not say."""
    assert isinstance(result, CursorResult)
    return result.rowcount or 0


def _record(cls: type[R], row: object, **overrides: Any) -> R:
    """Copy an ORM row into its frozen record type, field by field (names match by design)."""
    values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name not in overrides}
    return cls(**values, **overrides)


def _memory(row: MemoryItemRow) -> MemoryRecord:
    return _record(MemoryRecord, row)


def _sanction(row: Sanction) -> SanctionRecord:
    return _record(
        SanctionRecord,
        row,
        period=timedelta(seconds=row.period_seconds),
        block=timedelta(seconds=row.block_seconds),
    )


def _audit(row: AuditEntry) -> AuditRecord:
    return _record(AuditRecord, row)


def _turn(row: Turn) -> TurnRecord:
    return _record(TurnRecord, row)


def _event(row: MemoryEvent) -> MemoryEventRecord:
    return _record(
        MemoryEventRecord,
        row,
        action=MemoryAction(row.action),
        source=MemorySource(row.source),
    )


def _own_item(user_id: str, item_id: int) -> Any:
    """The query for one of this user's items (another user's id finds nothing)."""
    return select(MemoryItemRow).where(
        MemoryItemRow.id == item_id, MemoryItemRow.user_id == user_id
    )


def _not_expired(now: datetime) -> Any:
    return (MemoryItemRow.expires_at.is_(None)) | (MemoryItemRow.expires_at > now)


def _active_block_filter(user_id: str, now: datetime) -> Any:
    return (
        (Sanction.user_id == user_id)
        & (Sanction.block_seconds > 0)
        & (Sanction.expires_at > now)
        & (Sanction.lifted_at.is_(None))
    )


def _in_scope(guild_column: Any, scope: GuildScope) -> Any:
    """Rows of one server, of DMs and the console (None), or of everywhere."""
    if isinstance(scope, Everywhere):
        return true()
    return guild_column.is_(None) if scope is None else guild_column == scope


class RememberOutcome(StrEnum):
    """What `Repository.remember` did with an extracted item."""

    STORED = "stored"  # a new item, or a new value for the key (one history entry)
    UNCHANGED = "unchanged"  # the value it already had: no history entry
    PINNED = "pinned"  # the key is pinned by the user: the new value is dropped, no entry
    FULL = "full"  # a new key, the cap reached and every item pinned: nothing stored


@dataclass(frozen=True)
class Remembered:
    """A stored item and the keys the item cap evicted to make room for it (oldest first).

    `record` is the item as it stands (the pinned one, unchanged, for PINNED); None only
    for FULL."""

    record: MemoryRecord | None
    evicted: tuple[str, ...] = ()
    outcome: RememberOutcome = RememberOutcome.STORED


class EditOutcome(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"  # the same key and value: no history entry
    NOT_FOUND = "not_found"  # no such item of this user
    KEY_TAKEN = "key_taken"  # another of the user's items has that key


@dataclass(frozen=True)
class MemoryEdit:
    outcome: EditOutcome
    record: MemoryRecord | None  # the item after the edit (None: NOT_FOUND)


def _add_event(
    session: AsyncSession,
    row: MemoryItemRow,
    action: MemoryAction,
    source: MemorySource,
    now: datetime,
    *,
    old_value: str | None = None,
    new_value: str | None = None,
    turn_id: int | None = None,
    key: str | None = None,
) -> None:
    """One history entry, in the caller's transaction (so a change never lands without it)."""
    session.add(
        MemoryEvent(
            user_id=row.user_id,
            key=row.key if key is None else key,
            action=str(action),
            source=str(source),
            old_value=old_value,
            new_value=new_value,
            turn_id=turn_id,
            at=now,
        )
    )


def _rename(
    session: AsyncSession,
    row: MemoryItemRow,
    key: str,
    value: str,
    source: MemorySource,
    now: datetime,
) -> None:
    """Give an item a new key (and value): the history is kept per key, so the old key is
    DELETED and the new one ADDED, in the caller's transaction."""
    _add_event(session, row, MemoryAction.DELETED, source, now, old_value=row.value)
    _add_event(session, row, MemoryAction.ADDED, source, now, new_value=value, key=key)
    row.key = key
    row.value = value


async def _delete_rows(
    session: AsyncSession,
    rows: Sequence[MemoryItemRow],
    source: MemorySource,
    now: datetime,
    turn_id: int | None = None,
) -> None:
    """Record each row's deletion (with its last value), then delete them."""
    for row in rows:
        _add_event(
            session, row, MemoryAction.DELETED, source, now, old_value=row.value, turn_id=turn_id
        )
    await session.execute(delete(MemoryItemRow).where(MemoryItemRow.id.in_([r.id for r in rows])))


async def _evict(
    session: AsyncSession,
    user_id: str,
    max_items: int,
    keep_id: int,
    now: datetime,
    turn_id: int | None = None,
) -> tuple[str, ...]:
    """Delete the user's unpinned items beyond `max_items`, never `keep_id`: expired first,
    then the least recently used or updated (`coalesce(last_used_at, updated_at)`), oldest id
    first. Pinned items are never evicted (so the user may stay above the cap)."""
    count = await session.scalar(
        select(func.count()).select_from(MemoryItemRow).where(MemoryItemRow.user_id == user_id)
    )
    excess = (count or 0) - max_items
    if excess <= 0:
        return ()
    expired_first = case((MemoryItemRow.expires_at <= now, 0), else_=1)
    rows = (
        await session.scalars(
            select(MemoryItemRow)
            .where(
                MemoryItemRow.user_id == user_id,
                MemoryItemRow.id != keep_id,
                MemoryItemRow.pinned.is_(False),
            )
            .order_by(
                expired_first,
                func.coalesce(MemoryItemRow.last_used_at, MemoryItemRow.updated_at),
                MemoryItemRow.id,
            )
            .limit(excess)
        )
    ).all()
    if rows:
        await _delete_rows(session, rows, MemorySource.CAP, now, turn_id)
    return tuple(r.key for r in rows)


async def _unpinned_count(session: AsyncSession, user_id: str) -> tuple[int, int]:
    """(all items, unpinned items) of the user."""
    result = await session.execute(
        select(func.count(), func.count().filter(MemoryItemRow.pinned.is_(False))).where(
            MemoryItemRow.user_id == user_id
        )
    )
    total, unpinned = result.one()
    return int(total or 0), int(unpinned or 0)


async def _ensure_user(session: AsyncSession, user_id: str, now: datetime) -> None:
    """Create or touch the user's row, which then stays locked to the end of the transaction.

    One upsert, so two first offences of a new user never both insert the row. On PostgreSQL
    the locked row serializes every read-then-write of one user (escalation levels, memory
    keys, summaries) across connections and processes, as SQLite's write lock does there.
    """
    await session.execute(
        upsert(
            session,
            User,
            {"id": user_id, "created_at": now, "last_seen_at": now},
            keys=("id",),
            update=("last_seen_at",),
        )
    )


class Repository:
    """Async, typed access to users, conversations, turns, memories, sanctions and audit."""

    def __init__(self, db: Database, instance_id: str | None = None) -> None:
        self.db = db
        # Stamped on every turn this process starts (see `fail_interrupted_turns`).
        self.instance_id = instance_id

    async def ping(self) -> None:
        """Raises unless the database answers a trivial query (the service's health check)."""
        await self.db.ping()

    # ---- sanctions -------------------------------------------------------------------
    async def active_block(self, user_id: str, now: datetime) -> ActiveBlock | None:
        """The block in force for this user anywhere, if any (latest expiry wins)."""
        async with self.db.reading() as s:
            rows = (
                await s.scalars(select(Sanction).where(_active_block_filter(user_id, now)))
            ).all()
        if not rows:
            return None
        expires = max(r.expires_at for r in rows)
        categories = tuple(sorted({r.category for r in rows if r.expires_at == expires}))
        return ActiveBlock(user_id=user_id, expires_at=expires, categories=categories)

    async def record_offence(
        self,
        user_id: str,
        categories: Iterable[str],
        ladder: Ladder,
        now: datetime,
        turn_id: int | None = None,
        guild_id: str | None = None,
        decay: timedelta | None = None,
    ) -> RecordedDecision:
        """Read the user's highest levels and write the new ones in ONE write transaction.

        The write transaction holds SQLite's write lock from its first statement, and on
        PostgreSQL the user's row lock (`_ensure_user`, before the read), so two concurrent
        offences can never read the same previous level. With `decay`, sanctions
        that ended longer ago no longer count (`storage.moderation.counts_toward_level`); the
        decision's numbered case is written in the same transaction.
        """
        wanted = sorted({str(c) for c in categories})
        async with self.db.writing() as s:
            await _ensure_user(s, user_id, now)
            result = await s.execute(
                select(Sanction.category, func.max(Sanction.level))
                .where(
                    Sanction.user_id == user_id,
                    Sanction.category.in_(wanted),
                    counts_toward_level(now, decay),
                )
                .group_by(Sanction.category)
            )
            previous = {category: level for category, level in result.all()}
            decision = ladder.decide(wanted, previous)
            decision_id = str(uuid.uuid4())
            expires = now + decision.total
            rows = [
                Sanction(
                    decision_id=decision_id,
                    user_id=user_id,
                    guild_id=guild_id,
                    category=str(entry.category),
                    level=entry.level,
                    period_seconds=int(entry.period.total_seconds()),
                    block_seconds=int(decision.total.total_seconds()),
                    created_at=now,
                    expires_at=expires,
                    turn_id=turn_id,
                )
                for entry in decision.entries
            ]
            s.add_all(rows)
            await s.flush()
            records = tuple(_sanction(r) for r in rows)
            case = await add_decision_case(s, rows, now)
        return RecordedDecision(decision_id, decision, records, expires, case)

    async def lift_blocks(
        self,
        user_id: str,
        actor_id: str,
        reason: str,
        now: datetime,
        *,
        scope: GuildScope,
        guild_id: str | None = None,
    ) -> int:
        """End the user's active blocks decided in `scope` and audit it (as taken in `guild_id`);
        returns how many rows were lifted. Blocks decided elsewhere stay in force.

        `scope` has no default: who may lift what is the caller's decision, made every time.
        """
        async with self.db.writing() as s:
            result = await s.execute(
                update(Sanction)
                .where(_active_block_filter(user_id, now), _in_scope(Sanction.guild_id, scope))
                .values(lifted_at=now, lifted_by=actor_id, lift_reason=reason)
            )
            lifted = _rowcount(result)
            add_audit(
                s, now, actor_id, "unban", user_id, guild_id, f"lifted={lifted} reason={reason}"
            )
        return lifted

    async def sanction_history(
        self, user_id: str, scope: GuildScope = EVERYWHERE
    ) -> list[SanctionRecord]:
        """The user's sanctions decided in `scope`, oldest first."""
        async with self.db.reading() as s:
            rows = await s.scalars(
                select(Sanction)
                .where(Sanction.user_id == user_id, _in_scope(Sanction.guild_id, scope))
                .order_by(Sanction.id)
            )
            return [_sanction(r) for r in rows]

    async def recent_sanctions(
        self, scope: GuildScope = EVERYWHERE, limit: int = DEFAULT_LOG_LIMIT, offset: int = 0
    ) -> list[SanctionRecord]:
        """Sanctions decided in `scope`, newest first, one page (`offset` rows skipped)."""
        async with self.db.reading() as s:
            rows = await s.scalars(
                select(Sanction)
                .where(_in_scope(Sanction.guild_id, scope))
                .order_by(Sanction.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return [_sanction(r) for r in rows]

    # ---- audit -----------------------------------------------------------------------
    async def audit(
        self,
        actor_id: str,
        action: str,
        target_user_id: str | None,
        detail: str,
        now: datetime,
        guild_id: str | None = None,
    ) -> None:
        async with self.db.writing() as s:
            add_audit(s, now, actor_id, action, target_user_id, guild_id, detail)

    async def recent_audit(
        self, scope: GuildScope = EVERYWHERE, limit: int = DEFAULT_LOG_LIMIT, offset: int = 0
    ) -> list[AuditRecord]:
        """Audit entries of actions taken in `scope`, newest first, one page."""
        async with self.db.reading() as s:
            rows = await s.scalars(
                select(AuditEntry)
                .where(_in_scope(AuditEntry.guild_id, scope))
                .order_by(AuditEntry.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return [_audit(r) for r in rows]

    # ---- memory ----------------------------------------------------------------------
    # Every change writes its `MemoryEvent` in the same transaction (mem0's history), so
    # nothing she remembers changes or vanishes silently.
    async def list_memories(self, user_id: str, now: datetime) -> list[MemoryRecord]:
        """This user's unexpired items, oldest first; never anyone else's."""
        async with self.db.reading() as s:
            rows = await s.scalars(
                select(MemoryItemRow)
                .where(MemoryItemRow.user_id == user_id, _not_expired(now))
                .order_by(MemoryItemRow.id)
            )
            return [_memory(r) for r in rows]

    async def get_memory(self, user_id: str, item_id: int) -> MemoryRecord | None:
        """One of this user's items by id (another user's id finds nothing)."""
        async with self.db.reading() as s:
            row = await s.scalar(_own_item(user_id, item_id))
            return None if row is None else _memory(row)

    async def upsert_memory(
        self,
        user_id: str,
        key: str,
        value: str,
        now: datetime,
        expires_at: datetime | None = None,
        source_turn_id: int | None = None,
    ) -> MemoryRecord:
        """One row per (user, key): a new value for a known key replaces the old one (a
        pinned key keeps its value)."""
        done = await self.remember(
            user_id, key, value, now, expires_at=expires_at, source_turn_id=source_turn_id
        )
        assert done.record is not None  # without a cap something is always stored
        return done.record

    async def remember(
        self,
        user_id: str,
        key: str,
        value: str,
        now: datetime,
        *,
        max_items: int | None = None,
        expires_at: datetime | None = None,
        source_turn_id: int | None = None,
        source: MemorySource = MemorySource.TURN,
    ) -> Remembered:
        """`upsert_memory`, keeping at most `max_items` of the user's items (None: no cap).

        A new key beyond the cap evicts, in the same transaction, the unpinned items used or
        updated longest ago (expired ones first); a known key's new value evicts nothing.
        A pinned key is never replaced (PINNED); a new key when the cap is reached and every
        item is pinned is not stored (FULL): pinned items are what the user chose to keep.
        History: ADDED / CHANGED (`source`, with `source_turn_id`), DELETED for the evicted;
        none for an unchanged value or a dropped one.
        """
        if max_items is not None and max_items < 1:
            raise ValueError("max_items must be at least 1")
        async with self.db.writing() as s:
            await _ensure_user(s, user_id, now)
            row = await s.scalar(
                select(MemoryItemRow).where(
                    MemoryItemRow.user_id == user_id, MemoryItemRow.key == key
                )
            )
            if row is not None and row.pinned:
                return Remembered(_memory(row), outcome=RememberOutcome.PINNED)
            if row is None:
                if max_items is not None:
                    total, unpinned = await _unpinned_count(s, user_id)
                    if total >= max_items and unpinned == 0:
                        return Remembered(None, outcome=RememberOutcome.FULL)
                row = MemoryItemRow(user_id=user_id, key=key, created_at=now, pinned=False)
                s.add(row)
                _add_event(
                    s, row, MemoryAction.ADDED, source, now, new_value=value, turn_id=source_turn_id
                )
                outcome = RememberOutcome.STORED
            elif row.value != value:
                _add_event(
                    s,
                    row,
                    MemoryAction.CHANGED,
                    source,
                    now,
                    old_value=row.value,
                    new_value=value,
                    turn_id=source_turn_id,
                )
                outcome = RememberOutcome.STORED
            else:
                outcome = RememberOutcome.UNCHANGED
            row.value = value
            row.updated_at = now
            row.expires_at = expires_at
            row.source_turn_id = source_turn_id
            await s.flush()
            evicted = (
                ()
                if max_items is None
                else await _evict(s, user_id, max_items, row.id, now, source_turn_id)
            )
            return Remembered(_memory(row), evicted, outcome)

    async def edit_memory(
        self, user_id: str, item_id: int, key: str, value: str, now: datetime
    ) -> MemoryEdit:
        """The user rewrote one item (the caller validated it). A new value is CHANGED; a new
        key is the old key DELETED and the new one ADDED (the history is kept per key). A
        pinned item stays pinned."""
        async with self.db.writing() as s:
            row = await s.scalar(_own_item(user_id, item_id))
            if row is None:
                return MemoryEdit(EditOutcome.NOT_FOUND, None)
            if row.key == key and row.value == value:
                return MemoryEdit(EditOutcome.UNCHANGED, _memory(row))
            if row.key != key:
                taken = await s.scalar(
                    select(MemoryItemRow.id).where(
                        MemoryItemRow.user_id == user_id, MemoryItemRow.key == key
                    )
                )
                if taken is not None:
                    return MemoryEdit(EditOutcome.KEY_TAKEN, _memory(row))
                _rename(s, row, key, value, MemorySource.USER, now)
            else:
                _add_event(
                    s,
                    row,
                    MemoryAction.CHANGED,
                    MemorySource.USER,
                    now,
                    old_value=row.value,
                    new_value=value,
                )
            row.value = value
            row.updated_at = now
            row.source_turn_id = None
            await s.flush()
            return MemoryEdit(EditOutcome.CHANGED, _memory(row))

    async def set_memory_pinned(
        self, user_id: str, item_id: int, pinned: bool, now: datetime
    ) -> MemoryRecord | None:
        """Pin or unpin one item (PINNED / UNPINNED, with its value); None: no such item.
        Asking for the state it already has writes nothing."""
        async with self.db.writing() as s:
            row = await s.scalar(_own_item(user_id, item_id))
            if row is None:
                return None
            if row.pinned != pinned:
                action = MemoryAction.PINNED if pinned else MemoryAction.UNPINNED
                _add_event(s, row, action, MemorySource.USER, now, new_value=row.value)
                row.pinned = pinned
                await s.flush()
            return _memory(row)

    async def delete_memory(self, user_id: str, item_id: int, now: datetime) -> MemoryRecord | None:
        """The user deleted one item (pinned or not); returns it as it was, None if missing."""
        async with self.db.writing() as s:
            row = await s.scalar(_own_item(user_id, item_id))
            if row is None:
                return None
            record = _memory(row)
            await _delete_rows(s, [row], MemorySource.USER, now)
            return record

    async def mark_memory_used(self, user_id: str, item_id: int, now: datetime) -> None:
        """Retrieval picked this item for a reply: it is recent again (the cap evicts by use)."""
        async with self.db.writing() as s:
            await s.execute(
                update(MemoryItemRow)
                .where(MemoryItemRow.id == item_id, MemoryItemRow.user_id == user_id)
                .values(last_used_at=now)
            )

    async def forget_memory(self, user_id: str, key: str, now: datetime | None = None) -> bool:
        """`/forget item` (pinned or not), recorded as the user's deletion."""
        async with self.db.writing() as s:
            rows = (
                await s.scalars(
                    select(MemoryItemRow).where(
                        MemoryItemRow.user_id == user_id, MemoryItemRow.key == key
                    )
                )
            ).all()
            if rows:
                await _delete_rows(s, rows, MemorySource.USER, now or utcnow())
            return bool(rows)

    async def forget_all_memories(self, user_id: str, now: datetime | None = None) -> int:
        """`/forget all`: every item goes, each recorded as the user's deletion."""
        async with self.db.writing() as s:
            rows = (
                await s.scalars(
                    select(MemoryItemRow)
                    .where(MemoryItemRow.user_id == user_id)
                    .order_by(MemoryItemRow.id)
                )
            ).all()
            if rows:
                await _delete_rows(s, rows, MemorySource.USER, now or utcnow())
            return len(rows)

    async def memory_history(
        self, user_id: str, key: str | None = None, limit: int = DEFAULT_LOG_LIMIT
    ) -> list[MemoryEventRecord]:
        """The user's memory history (one key's, or every key's), newest first."""
        query = select(MemoryEvent).where(MemoryEvent.user_id == user_id)
        if key is not None:
            query = query.where(MemoryEvent.key == key)
        async with self.db.reading() as s:
            rows = await s.scalars(query.order_by(MemoryEvent.id.desc()).limit(limit))
            return [_event(r) for r in rows]

    # ---- conversations -------------------------------------------------------------------
    async def get_summary(self, user_id: str, channel_id: str) -> str:
        async with self.db.reading() as s:
            summary = await s.scalar(
                select(Conversation.summary).where(
                    Conversation.user_id == user_id, Conversation.channel_id == channel_id
                )
            )
            return summary or ""

    async def set_summary(self, user_id: str, channel_id: str, summary: str, now: datetime) -> None:
        async with self.db.writing() as s:
            await _ensure_user(s, user_id, now)
            row = await s.scalar(
                select(Conversation).where(
                    Conversation.user_id == user_id, Conversation.channel_id == channel_id
                )
            )
            if row is None:
                row = Conversation(user_id=user_id, channel_id=channel_id)
                s.add(row)
            row.summary = summary
            row.updated_at = now

    # ---- turns -----------------------------------------------------------------------
    async def start_turn(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        now: datetime,
        message_id: str | None = None,
        guild_id: str | None = None,
    ) -> int:
        async with self.db.writing() as s:
            await _ensure_user(s, user_id, now)
            row = Turn(
                user_id=user_id,
                channel_id=channel_id,
                guild_id=guild_id,
                instance_id=self.instance_id,
                message_id=message_id,
                original_text=text,
                status=TurnStatus.PENDING,
                created_at=now,
            )
            s.add(row)
            await s.flush()
            return row.id

    async def finish_turn(
        self, turn_id: int, status: TurnStatus, now: datetime, **fields: Any
    ) -> None:
        """Close a pending turn once; a finished turn is never rewritten."""
        unknown = set(fields) - TURN_RESULT_FIELDS
        if unknown:
            raise TypeError(f"unknown turn fields: {sorted(unknown)}")
        if status is TurnStatus.PENDING:
            raise ValueError("finish_turn needs a final status")
        async with self.db.writing() as s:
            result = await s.execute(
                update(Turn)
                .where(Turn.id == turn_id, Turn.status == TurnStatus.PENDING)
                .values(status=str(status), completed_at=now, **fields)
            )
            if not _rowcount(result):
                raise LookupError(f"turn {turn_id} is not pending")

    async def fail_interrupted_turns(
        self, now: datetime, dead: Callable[[str, str | None], bool] = instance_dead
    ) -> int:
        """At start-up: turns left pending by a process that died are failed, never completed.

        Only a dead owner's turns (`storage.instances.instance_dead`) and turns without an owner
        (from before owners were recorded) go: another process running on the same database
        (a console beside the bot, or a host this one cannot see into) keeps its turns.
        """
        async with self.db.writing() as s:
            owners = (
                await s.scalars(
                    select(Turn.instance_id)
                    .where(Turn.status == TurnStatus.PENDING, Turn.instance_id.is_not(None))
                    .distinct()
                )
            ).all()
            gone = [o for o in owners if o is not None and dead(o, self.instance_id)]
            result = await s.execute(
                update(Turn)
                .where(
                    Turn.status == TurnStatus.PENDING,
                    Turn.instance_id.is_(None) | Turn.instance_id.in_(gone),
                )
                .values(
                    status=str(TurnStatus.FAILED),
                    completed_at=now,
                    error="interrupted: the service stopped during this turn",
                )
            )
            return _rowcount(result)

    async def set_turn_expression(self, turn_id: int, expression: str) -> None:
        """The expression is decided after the reply went out, so it arrives on its own."""
        async with self.db.writing() as s:
            await s.execute(update(Turn).where(Turn.id == turn_id).values(expression=expression))

    async def turns(self, user_id: str, limit: int = DEFAULT_LOG_LIMIT) -> list[TurnRecord]:
        async with self.db.reading() as s:
            rows = await s.scalars(
                select(Turn).where(Turn.user_id == user_id).order_by(Turn.id.desc()).limit(limit)
            )
            return [_turn(r) for r in rows]

    # ---- data deletion -------------------------------------------------------------------
    async def delete_user_data(self, user_id: str) -> DeletionReport:
        """Forget-me: memories (with their history), turns and summaries go; sanctions and the
        audit log stay.

        Like Red-DiscordBot's data deletion keeping the mod log, a ban must survive a user
        asking to be forgotten, or deletion would be a way out of it.
        """
        async with self.db.writing() as s:
            memories = await s.execute(
                delete(MemoryItemRow).where(MemoryItemRow.user_id == user_id)
            )
            events = await s.execute(delete(MemoryEvent).where(MemoryEvent.user_id == user_id))
            conversations = await s.execute(
                delete(Conversation).where(Conversation.user_id == user_id)
            )
            turns = await s.execute(delete(Turn).where(Turn.user_id == user_id))
            await forget_excerpts(s, user_id=user_id)  # the cases stay, the user's words go
            return DeletionReport(
                memories=_rowcount(memories),
                turns=_rowcount(turns),
                conversations=_rowcount(conversations),
                memory_events=_rowcount(events),
            )

    # ---- daily maintenance ---------------------------------------------------------------
    async def age_day_memories(self, now: datetime, boundaries: int = 1) -> AgingReport:
        """`boundaries` new days: after one, every `오늘 …` item is gone and every `내일 …` item
        is `오늘 …`; after two or more, both kinds are gone. One transaction."""
        async with self.db.writing() as s:
            return await _age_day_memories(s, now, boundaries)

    async def close_expired_blocks(self, now: datetime) -> list[str]:
        """Mark blocks that ran out as closed and audit each user once; returns those users."""
        async with self.db.writing() as s:
            return await _close_expired_blocks(s, now)

    async def purge_turn_texts(self, before: datetime) -> int:
        """Blank what users wrote and what Oh-LoRA answered in turns older than `before`.

        The rows stay (sanctions point at them, and counts stay honest); the texts go.
        """
        async with self.db.writing() as s:
            return await _purge_turn_texts(s, before)

    async def run_daily_maintenance(
        self, day: date, now: datetime, purge_before: datetime, name: str = DAILY_MAINTENANCE
    ) -> DailyRun:
        """Bring the maintenance up to `day` (the date of the last 04:00 passed, in the service's
        zone) in ONE transaction with its record: age memories by the boundaries passed since
        the recorded day, close expired blocks, purge old texts, record `day` and `now`.

        The state row is locked first (SQLite: the write lock; PostgreSQL: FOR UPDATE), so
        processes sharing the database never age a boundary twice. The first run ever only
        records the day: nothing says which boundaries its items already went through.
        """
        if isinstance(day, datetime):
            raise TypeError("day is a date (the maintenance day), not a datetime")
        async with self.db.writing() as s:
            state = await s.scalar(
                select(MaintenanceState).where(MaintenanceState.name == name).with_for_update()
            )
            if state is None:  # the seeded row was removed: the next run starts afresh
                state = MaintenanceState(name=name)
                s.add(state)
            first = state.day is None
            boundaries = 0 if state.day is None else max(0, (day - state.day).days)
            if first or boundaries:
                state.day = day
            state.ran_at = now
            aging = await _age_day_memories(s, now, boundaries)
            closed = await _close_expired_blocks(s, now)
            purged = await _purge_turn_texts(s, purge_before)
            return DailyRun(boundaries, first, aging, tuple(closed), purged)


async def _age_day_memories(session: AsyncSession, now: datetime, boundaries: int) -> AgingReport:
    """Today's items go first, so a renamed item never collides with the (user, key) unique
    constraint; from two boundaries on, tomorrow's items are past too. Pinned items are never
    aged; a tomorrow item whose today key a pinned item holds goes (the pinned one is never
    replaced). Each deletion is recorded (EXPIRY), each rename as the old key DELETED and the
    new one ADDED."""
    if boundaries < 0:
        raise ValueError("boundaries must not be negative")
    if boundaries == 0:
        return AgingReport(expired=0, promoted=0)
    unpinned = MemoryItemRow.pinned.is_(False)
    past = MemoryItemRow.key.startswith(TODAY_PREFIX)
    if boundaries > 1:
        past = past | MemoryItemRow.key.startswith(TOMORROW_PREFIX)
    gone = list((await session.scalars(select(MemoryItemRow).where(past, unpinned))).all())
    tomorrow = (
        await session.scalars(
            select(MemoryItemRow)
            .where(MemoryItemRow.key.startswith(TOMORROW_PREFIX), unpinned, ~past)
            .order_by(MemoryItemRow.id)
        )
    ).all()
    held = set(
        (
            await session.execute(
                select(MemoryItemRow.user_id, MemoryItemRow.key).where(
                    MemoryItemRow.key.startswith(TODAY_PREFIX), MemoryItemRow.pinned.is_(True)
                )
            )
        ).all()
    )
    renamed: list[tuple[MemoryItemRow, str]] = []
    for row in tomorrow:
        today = TODAY_PREFIX + row.key.removeprefix(TOMORROW_PREFIX)
        if (row.user_id, today) in held:
            gone.append(row)
        else:
            renamed.append((row, today))
    if gone:
        await _delete_rows(session, gone, MemorySource.EXPIRY, now)
    for row, today in renamed:
        _rename(session, row, today, row.value, MemorySource.EXPIRY, now)
        row.updated_at = now
    await session.flush()
    return AgingReport(expired=len(gone), promoted=len(renamed))


async def _close_expired_blocks(session: AsyncSession, now: datetime) -> list[str]:
    rows = (
        await session.scalars(
            select(Sanction).where(
                Sanction.block_seconds > 0,
                Sanction.expires_at <= now,
                Sanction.lifted_at.is_(None),
                Sanction.closed_at.is_(None),
            )
        )
    ).all()
    users = sorted({r.user_id for r in rows})
    for row in rows:
        row.closed_at = now
    session.add_all(
        AuditEntry(
            at=now,
            actor_id=SYSTEM_ACTOR,
            action="block_expired",
            target_user_id=user,
            detail="closed by the daily job",
        )
        for user in users
    )
    return users


async def _purge_turn_texts(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(
        update(Turn)
        .where(Turn.created_at < before, Turn.original_text != "")
        .values(
            original_text="",
            tagged_prompt=None,
            final_input=None,
            reply=None,
            memory_item_used=None,
        )
    )
    await forget_excerpts(session, before=before)  # the cases' copies of those words too
    return _rowcount(result)
