"""Moderation storage: numbered cases, appeals, per-server settings and moderator roles.

Every change an admin makes is written with its case and its audit entry in ONE transaction,
so the mod-log, the audit log and the sanctions never disagree. The engine decides who may do
what and names the audit actions; this module only speaks SQL (portable constructs only: the
suite runs on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select, true, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database, upsert
from storage.models import (
    MAX_EXCERPT_CHARS,
    Appeal,
    AuditEntry,
    Case,
    GuildChatChannel,
    GuildModRole,
    GuildSettings,
    Sanction,
    Turn,
    User,
)
from storage.records import (
    AppealRecord,
    AppealStatus,
    CaseKind,
    CaseRecord,
    Everywhere,
    GuildScope,
    GuildSettingsRecord,
)

SYSTEM_ACTOR = "system"  # the actor of the cases Oh-LoRA decides herself
DEFAULT_CASE_ROWS = 20
ELLIPSIS = "…"


def excerpt_of(text: str | None) -> str | None:
    """The message behind a decision, capped to `MAX_EXCERPT_CHARS` (with an ellipsis)."""
    if not text:
        return None
    text = " ".join(text.split())
    if len(text) <= MAX_EXCERPT_CHARS:
        return text
    return text[: MAX_EXCERPT_CHARS - len(ELLIPSIS)] + ELLIPSIS


async def forget_excerpts(
    session: AsyncSession, *, user_id: str | None = None, before: datetime | None = None
) -> int:
    """Blank the message excerpts of a user's cases (forget-me) or of cases older than
    `before` (the turn texts' retention), in the caller's transaction: a case outlives the
    words behind it, as the sanction outlives the turn."""
    query = update(Case).where(Case.excerpt.is_not(None))
    if user_id is not None:
        query = query.where(Case.user_id == user_id)
    if before is not None:
        query = query.where(Case.created_at < before)
    result = await session.execute(query.values(excerpt=None))
    assert isinstance(result, CursorResult)
    return result.rowcount or 0


def _case(row: Case) -> CaseRecord:
    return CaseRecord(
        id=row.id,
        kind=CaseKind(row.kind),
        user_id=row.user_id,
        guild_id=row.guild_id,
        actor_id=row.actor_id,
        decision_id=row.decision_id,
        ref_case_id=row.ref_case_id,
        categories=tuple(row.categories or ()),
        levels=tuple(int(v) for v in row.levels or ()),
        period=None if row.period_seconds is None else timedelta(seconds=row.period_seconds),
        expires_at=row.expires_at,
        excerpt=row.excerpt,
        reason=row.reason,
        detail=row.detail or "",
        created_at=row.created_at,
    )


def _appeal(row: Appeal) -> AppealRecord:
    values = {f.name: getattr(row, f.name) for f in fields(AppealRecord)}
    values["status"] = AppealStatus(row.status)
    return AppealRecord(**values)


def _changed(result: Any) -> bool:
    """Whether an insert-or-nothing / delete touched a row."""
    return bool(result.rowcount)


def _settings(guild_id: str, row: GuildSettings | None) -> GuildSettingsRecord:
    if row is None:
        return GuildSettingsRecord(guild_id)
    return GuildSettingsRecord(
        guild_id, row.modlog_channel_id, bool(row.dm_notice), row.expression_picture
    )


def _in_scope(column: Any, scope: GuildScope) -> Any:
    """Rows of one server, of DMs and the console (None), or of everywhere."""
    if isinstance(scope, Everywhere):
        return true()
    return column.is_(None) if scope is None else column == scope


def _active_blocks(user_id: str, now: datetime) -> Any:
    return (
        (Sanction.user_id == user_id)
        & (Sanction.block_seconds > 0)
        & (Sanction.expires_at > now)
        & (Sanction.lifted_at.is_(None))
    )


def counts_toward_level(now: datetime, decay: timedelta | None) -> Any:
    """Which sanctions still count toward the next level: all (no decay), or those that ended
    (a warning when given, a block when it ran out or was lifted) less than `decay` ago, so a
    long block still in force never decays while it runs."""
    if decay is None:
        return true()
    ended = func.coalesce(Sanction.lifted_at, Sanction.expires_at)
    return ended > now - decay


async def add_case(
    session: AsyncSession,
    kind: CaseKind,
    now: datetime,
    *,
    actor_id: str,
    user_id: str | None = None,
    guild_id: str | None = None,
    decision_id: str | None = None,
    ref_case_id: int | None = None,
    categories: Sequence[str] = (),
    levels: Sequence[int] = (),
    period: timedelta | None = None,
    expires_at: datetime | None = None,
    excerpt: str | None = None,
    reason: str | None = None,
    detail: str = "",
) -> CaseRecord:
    """Write one case in the caller's transaction; its number is known on return."""
    row = Case(
        kind=str(kind),
        user_id=user_id,
        guild_id=guild_id,
        actor_id=actor_id,
        decision_id=decision_id,
        ref_case_id=ref_case_id,
        categories=list(categories),
        levels=list(levels),
        period_seconds=None if period is None else int(period.total_seconds()),
        expires_at=expires_at,
        excerpt=excerpt_of(excerpt),
        reason=reason,
        detail=detail,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return _case(row)


async def add_decision_case(
    session: AsyncSession, rows: Sequence[Sanction], now: datetime
) -> CaseRecord:
    """The case of one sanction decision (its rows share decision, user, server and turn), in
    the transaction that wrote the rows; the excerpt is the turn's message."""
    first = rows[0]
    text = None
    if first.turn_id is not None:
        text = await session.scalar(select(Turn.original_text).where(Turn.id == first.turn_id))
    block = timedelta(seconds=first.block_seconds)
    return await add_case(
        session,
        CaseKind.BLOCK if block > timedelta(0) else CaseKind.WARNING,
        now,
        actor_id=SYSTEM_ACTOR,
        user_id=first.user_id,
        guild_id=first.guild_id,
        decision_id=first.decision_id,
        categories=[r.category for r in rows],
        levels=[r.level for r in rows],
        period=block,
        expires_at=first.expires_at,
        excerpt=text,
    )


def add_audit(
    session: AsyncSession,
    now: datetime,
    actor_id: str,
    action: str,
    target: str | None,
    guild_id: str | None,
    detail: str,
) -> None:
    """One audit-log entry in the caller's transaction (with the change it records)."""
    session.add(
        AuditEntry(
            at=now,
            actor_id=actor_id,
            action=action,
            target_user_id=target,
            guild_id=guild_id,
            detail=detail,
        )
    )


def _numbers(cases: Iterable[int]) -> str:
    return ",".join(f"#{n}" for n in cases)


@dataclass(frozen=True)
class Lifted:
    """What one lift wrote: rows lifted, the block cases they belonged to, and the new case
    (None when nothing was lifted: an attempt that changed nothing is audited, not a case)."""

    rows: int
    block_cases: tuple[int, ...]
    case: CaseRecord | None


class AppealOutcome(StrEnum):
    FILED = "filed"
    NOT_BLOCKED = "not_blocked"  # no block in force (or none with a case)
    ALREADY_OPEN = "already_open"  # one open appeal per block
    RATE_LIMITED = "rate_limited"  # too many appeals by this user in the window
    LIMIT_FOR_BLOCK = "limit_for_block"  # this block was appealed as often as allowed


@dataclass(frozen=True)
class AppealLimits:
    per_block: int
    per_window: int
    window: timedelta


@dataclass(frozen=True)
class Filed:
    outcome: AppealOutcome
    appeal: AppealRecord | None = None
    block_case: CaseRecord | None = None


@dataclass(frozen=True)
class Decided:
    """An appeal decision: the appeal after it, the new case, and the rows an accept lifted;
    `appeal.status` is unchanged and `case` None when it had been decided already."""

    appeal: AppealRecord
    case: CaseRecord | None
    lifted: int
    already_decided: bool = False


@dataclass(frozen=True)
class ConfigWrite:
    changed: bool
    settings: GuildSettingsRecord
    case: CaseRecord | None


@dataclass(frozen=True)
class GuildRouting:
    """What routing reads of one server: its settings and its own chat-channel rows
    (channel -> enabled: True adds it, False takes an environment one out)."""

    settings: GuildSettingsRecord
    chat_channels: dict[str, bool]


class ModerationRepository:
    """Async access to cases, appeals, guild settings and mod roles."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- cases -------------------------------------------------------------------------
    async def get_case(self, number: int) -> CaseRecord | None:
        async with self.db.reading() as s:
            row = await s.get(Case, number)
            return None if row is None else _case(row)

    async def cases(
        self,
        scope: GuildScope,
        *,
        user_id: str | None = None,
        category: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_CASE_ROWS,
        offset: int = 0,
    ) -> list[CaseRecord]:
        """Cases taken in `scope`, newest first, filtered; a category matches the decisions
        with that category and the cases acting on them (lifts, appeal decisions)."""
        query = select(Case).where(_in_scope(Case.guild_id, scope))
        if user_id is not None:
            query = query.where(Case.user_id == user_id)
        if category is not None:
            decisions = select(Sanction.decision_id).where(Sanction.category == category)
            deciding = select(Case.id).where(Case.decision_id.in_(decisions))
            query = query.where(Case.decision_id.in_(decisions) | Case.ref_case_id.in_(deciding))
        if since is not None:
            query = query.where(Case.created_at >= since)
        if until is not None:
            query = query.where(Case.created_at < until)
        async with self.db.reading() as s:
            rows = await s.scalars(query.order_by(Case.id.desc()).offset(offset).limit(limit))
            return [_case(r) for r in rows]

    async def decision_cases(self, decision_ids: Iterable[str]) -> dict[str, int]:
        """decision id -> the number of its warning or block case."""
        wanted = sorted(set(decision_ids))
        if not wanted:
            return {}
        async with self.db.reading() as s:
            rows = await s.execute(
                select(Case.decision_id, func.min(Case.id))
                .where(
                    Case.decision_id.in_(wanted),
                    Case.kind.in_([str(CaseKind.WARNING), str(CaseKind.BLOCK)]),
                )
                .group_by(Case.decision_id)
            )
            return {d: n for d, n in rows.all() if d is not None}

    async def add_case(self, kind: CaseKind, now: datetime, **values: Any) -> CaseRecord:
        """One case on its own (with an audit entry when `audit` = (action, detail) is given)."""
        audit: tuple[str, str] | None = values.pop("audit", None)
        async with self.db.writing() as s:
            case = await add_case(s, kind, now, **values)
            if audit is not None:
                add_audit(s, now, case.actor_id, audit[0], case.user_id, case.guild_id, audit[1])
            return case

    # ---- lifting -------------------------------------------------------------------------
    async def lift(
        self,
        user_id: str,
        actor_id: str,
        reason: str,
        now: datetime,
        *,
        scope: GuildScope,
        guild_id: str | None,
        action: str,
        decision_id: str | None = None,
    ) -> Lifted:
        """End the user's active blocks decided in `scope` (only `decision_id`'s, if given),
        with a LIFT case and the audit entry `action`, in one transaction."""
        async with self.db.writing() as s:
            return await _lift(
                s,
                user_id,
                actor_id,
                reason,
                now,
                scope=scope,
                guild_id=guild_id,
                action=action,
                decision_id=decision_id,
                kind=CaseKind.LIFT,
            )

    async def active_block_case(self, user_id: str, now: datetime) -> CaseRecord | None:
        """The case of the block in force longest (the one a user appeals)."""
        async with self.db.reading() as s:
            return await _active_block_case(s, user_id, now)

    # ---- appeals -------------------------------------------------------------------------
    async def file_appeal(
        self, user_id: str, reason: str, now: datetime, limits: AppealLimits, action: str
    ) -> Filed:
        """Appeal the block in force, within the limits; audited (actor: the user)."""
        try:
            async with self.db.writing() as s:
                # PostgreSQL: one filing per user at a time, so the counts below hold.
                await s.scalar(select(User.id).where(User.id == user_id).with_for_update())
                block = await _active_block_case(s, user_id, now)
                if block is None:
                    return Filed(AppealOutcome.NOT_BLOCKED)
                open_one = await s.scalar(
                    select(func.count()).where(Appeal.open_case_id == block.id)
                )
                if open_one:
                    return Filed(AppealOutcome.ALREADY_OPEN, block_case=block)
                for_block = await s.scalar(select(func.count()).where(Appeal.case_id == block.id))
                if (for_block or 0) >= limits.per_block:
                    return Filed(AppealOutcome.LIMIT_FOR_BLOCK, block_case=block)
                recent = await s.scalar(
                    select(func.count()).where(
                        Appeal.user_id == user_id, Appeal.created_at > now - limits.window
                    )
                )
                if (recent or 0) >= limits.per_window:
                    return Filed(AppealOutcome.RATE_LIMITED, block_case=block)
                row = Appeal(
                    case_id=block.id,
                    open_case_id=block.id,
                    user_id=user_id,
                    guild_id=block.guild_id,
                    reason=reason,
                    status=str(AppealStatus.OPEN),
                    created_at=now,
                )
                s.add(row)
                await s.flush()
                add_audit(s, now, user_id, action, user_id, block.guild_id, f"case=#{block.id}")
                return Filed(AppealOutcome.FILED, _appeal(row), block)
        except IntegrityError:  # a concurrent filing won the one open slot
            return Filed(AppealOutcome.ALREADY_OPEN)

    async def get_appeal(self, appeal_id: int) -> AppealRecord | None:
        async with self.db.reading() as s:
            row = await s.get(Appeal, appeal_id)
            return None if row is None else _appeal(row)

    async def decide_appeal(
        self,
        appeal_id: int,
        actor_id: str,
        accept: bool,
        note: str,
        now: datetime,
        *,
        guild_id: str | None,
        action: str,
        lift_action: str,
    ) -> Decided:
        """Accept (lift the appealed block; the history stays) or deny an open appeal, with its
        case and audit entries, in one transaction; a decided appeal stays as it was."""
        async with self.db.writing() as s:
            row = await s.scalar(select(Appeal).where(Appeal.id == appeal_id).with_for_update())
            if row is None:
                raise LookupError(f"appeal {appeal_id}")
            if row.status != AppealStatus.OPEN:
                return Decided(_appeal(row), None, 0, already_decided=True)
            block = await s.get(Case, row.case_id)
            assert block is not None  # appeals.case_id is a foreign key (RESTRICT)
            lifted = 0
            if accept:
                done = await _lift(
                    s,
                    row.user_id,
                    actor_id,
                    note,
                    now,
                    scope=block.guild_id,
                    guild_id=guild_id,
                    action=lift_action,
                    decision_id=block.decision_id,
                    kind=None,
                )
                lifted = done.rows
            case = await add_case(
                s,
                CaseKind.APPEAL_ACCEPTED if accept else CaseKind.APPEAL_DENIED,
                now,
                actor_id=actor_id,
                user_id=row.user_id,
                guild_id=guild_id,
                decision_id=block.decision_id,
                ref_case_id=block.id,
                categories=block.categories or [],
                levels=block.levels or [],
                reason=note,
                detail=f"appeal={row.id} lifted={lifted}",
            )
            row.status = str(AppealStatus.ACCEPTED if accept else AppealStatus.DENIED)
            row.open_case_id = None
            row.decided_by = actor_id
            row.decided_at = now
            row.note = note
            row.decision_case_id = case.id
            await s.flush()
            add_audit(
                s,
                now,
                actor_id,
                action,
                row.user_id,
                guild_id,
                f"appeal={row.id} case=#{case.id} accept={accept} note={note}",
            )
            return Decided(_appeal(row), case, lifted)

    # ---- guild settings and mod roles ---------------------------------------------------
    async def guild_settings(self, guild_id: str) -> GuildSettingsRecord:
        async with self.db.reading() as s:
            return _settings(guild_id, await s.get(GuildSettings, guild_id))

    async def modlog_channels(self, guild_ids: Iterable[str]) -> dict[str, str]:
        """guild -> its mod-log channel, for the given servers that named one."""
        wanted = sorted(set(guild_ids))
        if not wanted:
            return {}
        async with self.db.reading() as s:
            rows = await s.execute(
                select(GuildSettings.guild_id, GuildSettings.modlog_channel_id).where(
                    GuildSettings.guild_id.in_(wanted),
                    GuildSettings.modlog_channel_id.is_not(None),
                )
            )
            return {g: c for g, c in rows.all() if c is not None}

    async def update_guild_settings(
        self,
        guild_id: str,
        actor_id: str,
        now: datetime,
        *,
        action: str,
        **changes: Any,
    ) -> ConfigWrite:
        """Set some of a server's settings; a real change gets a case and an audit entry."""
        allowed = {"modlog_channel_id", "dm_notice", "expression_picture"}
        if not changes or set(changes) - allowed:
            raise TypeError(f"unknown guild settings: {sorted(set(changes) - allowed)}")
        async with self.db.writing() as s:
            # The first write for a server creates its row in one race-free statement (two
            # first writes at once would both insert after a select found nothing), then locks it.
            defaults = {
                "guild_id": guild_id,
                "modlog_channel_id": None,
                "dm_notice": False,
                "expression_picture": None,
            }
            await s.execute(upsert(s, GuildSettings, defaults | {"updated_at": now}, ("guild_id",)))
            row = await s.scalar(
                select(GuildSettings).where(GuildSettings.guild_id == guild_id).with_for_update()
            )
            assert row is not None  # inserted above or already there
            diff = {k: v for k, v in changes.items() if getattr(row, k) != v}
            for key, value in diff.items():
                setattr(row, key, value)
            if not diff:
                return ConfigWrite(False, _settings(guild_id, row), None)
            row.updated_at = now
            await s.flush()
            detail = " ".join(f"{k}={v}" for k, v in sorted(diff.items()))
            case = await add_case(
                s,
                CaseKind.SETTINGS_CHANGED,
                now,
                actor_id=actor_id,
                guild_id=guild_id,
                detail=detail,
            )
            add_audit(s, now, actor_id, action, None, guild_id, f"case=#{case.id} {detail}")
            return ConfigWrite(True, _settings(guild_id, row), case)

    async def guild_routing(self, guild_id: str) -> GuildRouting:
        """A server's settings and chat-channel rows, read together (one snapshot)."""
        async with self.db.reading() as s:
            settings = _settings(guild_id, await s.get(GuildSettings, guild_id))
            rows = await s.execute(
                select(GuildChatChannel.channel_id, GuildChatChannel.enabled).where(
                    GuildChatChannel.guild_id == guild_id
                )
            )
            return GuildRouting(settings, {c: bool(e) for c, e in rows.all()})

    async def set_chat_channel(
        self,
        guild_id: str,
        channel_id: str,
        actor_id: str,
        now: datetime,
        *,
        enabled: bool | None,
        action: str,
    ) -> ConfigWrite:
        """Write a server's own row for one channel (`enabled` None: no row, the environment's
        default applies); a real change gets a SETTINGS_CHANGED case and an audit entry."""
        async with self.db.writing() as s:
            # Insert-or-nothing first, so two first writes at once never both insert; the row
            # (new or old) is then locked and compared.
            if enabled is not None:
                values = {
                    "guild_id": guild_id,
                    "channel_id": channel_id,
                    "enabled": enabled,
                    "changed_by": actor_id,
                    "changed_at": now,
                }
                inserted = await s.execute(
                    upsert(s, GuildChatChannel, values, ("guild_id", "channel_id"))
                )
                changed = _changed(inserted)
                if not changed:
                    row = await s.scalar(
                        select(GuildChatChannel)
                        .where(
                            GuildChatChannel.guild_id == guild_id,
                            GuildChatChannel.channel_id == channel_id,
                        )
                        .with_for_update()
                    )
                    assert row is not None  # the insert found it there
                    changed = bool(row.enabled) != enabled
                    if changed:
                        row.enabled = enabled
                        row.changed_by = actor_id
                        row.changed_at = now
            else:
                deleted = await s.execute(
                    delete(GuildChatChannel).where(
                        GuildChatChannel.guild_id == guild_id,
                        GuildChatChannel.channel_id == channel_id,
                    )
                )
                changed = _changed(deleted)
            settings = _settings(guild_id, await s.get(GuildSettings, guild_id))
            if not changed:
                return ConfigWrite(False, settings, None)
            await s.flush()
            state = "default" if enabled is None else str(enabled)
            detail = f"chat_channel={channel_id} enabled={state}"
            case = await add_case(
                s,
                CaseKind.SETTINGS_CHANGED,
                now,
                actor_id=actor_id,
                guild_id=guild_id,
                detail=detail,
            )
            add_audit(s, now, actor_id, action, None, guild_id, f"case=#{case.id} {detail}")
            return ConfigWrite(True, settings, case)

    async def mod_roles(self, guild_id: str) -> tuple[str, ...]:
        async with self.db.reading() as s:
            rows = await s.scalars(
                select(GuildModRole.role_id)
                .where(GuildModRole.guild_id == guild_id)
                .order_by(GuildModRole.added_at, GuildModRole.role_id)
            )
            return tuple(rows)

    async def holds_mod_role(self, guild_id: str, role_ids: Iterable[str]) -> bool:
        wanted = sorted(set(role_ids))
        if not wanted:
            return False
        async with self.db.reading() as s:
            found = await s.scalar(
                select(func.count()).where(
                    GuildModRole.guild_id == guild_id, GuildModRole.role_id.in_(wanted)
                )
            )
            return bool(found)

    async def set_mod_role(
        self,
        guild_id: str,
        role_id: str,
        actor_id: str,
        now: datetime,
        *,
        present: bool,
        action: str,
    ) -> ConfigWrite:
        """Add (`present`) or remove a mod role; a real change gets a case and an audit entry."""
        async with self.db.writing() as s:
            # One statement decides whether anything changed (a concurrent add of the same role
            # inserts nothing instead of failing on the primary key).
            if present:
                row = {"guild_id": guild_id, "role_id": role_id, "added_by": actor_id}
                written = await s.execute(
                    upsert(s, GuildModRole, row | {"added_at": now}, ("guild_id", "role_id"))
                )
            else:
                written = await s.execute(
                    delete(GuildModRole).where(
                        GuildModRole.guild_id == guild_id, GuildModRole.role_id == role_id
                    )
                )
            settings = _settings(guild_id, await s.get(GuildSettings, guild_id))
            if not _changed(written):
                return ConfigWrite(False, settings, None)
            kind = CaseKind.MOD_ROLE_ADDED if present else CaseKind.MOD_ROLE_REMOVED
            case = await add_case(
                s, kind, now, actor_id=actor_id, guild_id=guild_id, detail=f"role={role_id}"
            )
            add_audit(s, now, actor_id, action, None, guild_id, f"case=#{case.id} role={role_id}")
            return ConfigWrite(True, settings, case)


async def _active_block_case(
    session: AsyncSession, user_id: str, now: datetime
) -> CaseRecord | None:
    decision = await session.scalar(
        select(Sanction.decision_id)
        .where(_active_blocks(user_id, now))
        .order_by(Sanction.expires_at.desc(), Sanction.id.desc())
        .limit(1)
    )
    if decision is None:
        return None
    row = await session.scalar(
        select(Case)
        .where(Case.decision_id == decision, Case.kind == str(CaseKind.BLOCK))
        .order_by(Case.id)
        .limit(1)
    )
    return None if row is None else _case(row)


async def _lift(
    session: AsyncSession,
    user_id: str,
    actor_id: str,
    reason: str,
    now: datetime,
    *,
    scope: GuildScope,
    guild_id: str | None,
    action: str,
    decision_id: str | None,
    kind: CaseKind | None,
) -> Lifted:
    """Lift in the caller's transaction; `kind` None writes no case (an appeal decision writes
    its own)."""
    query = select(Sanction).where(
        _active_blocks(user_id, now), _in_scope(Sanction.guild_id, scope)
    )
    if decision_id is not None:
        query = query.where(Sanction.decision_id == decision_id)
    rows = (await session.scalars(query.with_for_update())).all()
    for row in rows:
        row.lifted_at = now
        row.lifted_by = actor_id
        row.lift_reason = reason
    decisions = sorted({r.decision_id for r in rows})
    blocks: tuple[int, ...] = ()
    if decisions:
        numbers = await session.scalars(
            select(Case.id)
            .where(Case.decision_id.in_(decisions), Case.kind == str(CaseKind.BLOCK))
            .order_by(Case.id)
        )
        blocks = tuple(numbers)
    case = None
    if rows and kind is not None:
        case = await add_case(
            session,
            kind,
            now,
            actor_id=actor_id,
            user_id=user_id,
            guild_id=guild_id,
            decision_id=decisions[0] if len(decisions) == 1 else None,
            ref_case_id=blocks[0] if len(blocks) == 1 else None,
            categories=sorted({r.category for r in rows}),
            reason=reason,
            detail=f"lifted={len(rows)} cases={_numbers(blocks)}",
        )
    await session.flush()
    number = f" case=#{case.id}" if case else ""
    add_audit(
        session,
        now,
        actor_id,
        action,
        user_id,
        guild_id,
        f"lifted={len(rows)} reason={reason}{number}",
    )
    return Lifted(len(rows), blocks, case)
