"""Every operation a front end offers, over the turn pipeline and the repository.

The Discord cogs and the console call these methods and render what they return with
`engine.rules.messages`, so both give the same answers for the same data. The authority
rules of the moderator commands live here too (who sees and lifts which decisions); a front
end only says who is asking, where, and whether that place lets them moderate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from engine.pipeline import Engine, TurnResult
from engine.rules.commands import ForgetTarget
from storage import AuditRecord, DeletionReport, MemoryRecord, Repository, SanctionRecord
from storage.records import EVERYWHERE, Everywhere, GuildScope

log = logging.getLogger(__name__)


class Maintenance(Protocol):
    """The daily 04:00 maintenance: `start` catches up on missed runs and schedules the next."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class AdminAction(StrEnum):
    """Audit actions the service writes (`unban` itself is written by `Repository.lift_blocks`)."""

    VIEW_SANCTIONS = "view_sanctions"
    VIEW_LOG = "view_log"
    UNBAN_REFUSED = "unban_refused"


class NotAllowed(Exception):
    """The caller may not use a moderator operation here; nothing was read or changed."""


@dataclass(frozen=True)
class Moderator:
    """Who asks for a moderator operation: their id, the server they ask in (None: a DM or the
    console), and whether that server lets them moderate (Discord's Moderate Members)."""

    user_id: str
    guild_id: str | None
    moderates_here: bool = False


@dataclass(frozen=True)
class Reach:
    """Whose decisions a moderator sees and lifts, and where they act (the audit's server)."""

    scope: GuildScope
    guild_id: str | None

    @property
    def everywhere(self) -> bool:
        return isinstance(self.scope, Everywhere)


@dataclass(frozen=True)
class MemoryView:
    """`/memory`: the user's items, the cap, and how many the cap evicted since last asked."""

    items: tuple[MemoryRecord, ...]
    cap: int
    evicted: int


@dataclass(frozen=True)
class ForgetCheck:
    """What `/forget` would delete: `count` items (every item), or 1/0 for one item."""

    target: ForgetTarget
    count: int

    @property
    def found(self) -> bool:
        return self.target.everything or self.count > 0


class UnbanOutcome(StrEnum):
    SELF_REFUSED = "self_refused"  # nobody lifts their own block; audited, nothing changed
    LIFTED = "lifted"
    NOTHING_IN_REACH = "nothing_in_reach"  # still blocked by decisions outside the reach
    NOT_BLOCKED = "not_blocked"


@dataclass(frozen=True)
class UnbanResult:
    outcome: UnbanOutcome
    lifted: int = 0
    still_blocked: bool = False


T = TypeVar("T")


@dataclass(frozen=True)
class Listed(Generic[T]):
    """Rows read for a moderator, with the reach they were read in (for `where` labels)."""

    rows: tuple[T, ...]
    reach: Reach


class OhLoraService:
    """One instance per process, shared by every front end."""

    def __init__(
        self,
        engine: Engine,
        repo: Repository,
        *,
        admin_ids: frozenset[str],
        tz: tzinfo,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.repo = repo
        self.admin_ids = admin_ids
        self.tz = tz
        self.clock = clock or engine.clock
        self.maintenance: Maintenance | None = None  # set by `build_engine` once started

    @property
    def max_message_chars(self) -> int:
        return self.engine.max_message_chars

    # ---- chat --------------------------------------------------------------------------
    async def chat(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        message_id: str | None = None,
        guild_id: str | None = None,
    ) -> TurnResult:
        """One turn (`Engine.handle`): its background roles keep running after the answer."""
        return await self.engine.handle(user_id, channel_id, text, message_id, guild_id=guild_id)

    async def drain(self) -> None:
        """Wait for every background role still running."""
        await self.engine.drain()

    # ---- the user's own data -------------------------------------------------------------
    async def memory(self, user_id: str) -> MemoryView:
        items = await self.repo.list_memories(user_id, self.clock())
        return MemoryView(
            tuple(items), self.engine.max_memory_items, self.engine.take_evictions(user_id)
        )

    async def memory_keys(self, user_id: str) -> list[str]:
        """The keys `/forget` accepts (the bot's autocomplete)."""
        return [m.key for m in await self.repo.list_memories(user_id, self.clock())]

    async def check_forget(self, user_id: str, target: ForgetTarget) -> ForgetCheck:
        keys = await self.memory_keys(user_id)
        if target.everything:
            return ForgetCheck(target, len(keys))
        return ForgetCheck(target, int(target.key in keys))

    async def forget(self, user_id: str, target: ForgetTarget) -> int:
        """How many items went (0 or 1 for one item); waits for the user's running turn."""
        if target.everything:
            return await self.engine.forget_all_memories(user_id)
        assert target.key is not None
        return int(await self.engine.forget_memory(user_id, target.key))

    async def reset(self, user_id: str, channel_id: str) -> None:
        await self.engine.reset_conversation(user_id, channel_id)

    async def my_status(self, user_id: str) -> list[SanctionRecord]:
        """The user's warnings and blocks, oldest first (every server's: they are global)."""
        return await self.repo.sanction_history(user_id)

    async def forget_me(self, user_id: str) -> DeletionReport:
        """Memories, summaries and turns go; sanctions and the audit log stay."""
        return await self.engine.forget_user(user_id)

    # ---- moderators --------------------------------------------------------------------
    def is_global_admin(self, user_id: str) -> bool:
        return user_id in self.admin_ids

    def may_moderate(self, who: Moderator) -> bool:
        """A global admin anywhere; else a moderator of the server they ask in (never a DM)."""
        return self.is_global_admin(who.user_id) or (
            who.guild_id is not None and who.moderates_here
        )

    def reach(self, who: Moderator) -> Reach:
        """A global admin sees every decision; a server's moderator only that server's, so a
        blocked user's own server lifts nothing earned elsewhere. Raises `NotAllowed`."""
        if not self.may_moderate(who):
            raise NotAllowed(who.user_id)
        if self.is_global_admin(who.user_id):
            return Reach(EVERYWHERE, who.guild_id)
        assert who.guild_id is not None  # may_moderate: a moderator asks in a server
        return Reach(who.guild_id, who.guild_id)

    async def sanctions_of(self, who: Moderator, target_id: str) -> Listed[SanctionRecord]:
        """A user's decisions in the caller's reach, oldest first; the view is audited."""
        reach = self.reach(who)
        history = await self.repo.sanction_history(target_id, scope=reach.scope)
        await self.repo.audit(
            who.user_id,
            AdminAction.VIEW_SANCTIONS,
            target_id,
            f"rows={len(history)}",
            self.clock(),
            guild_id=reach.guild_id,
        )
        return Listed(tuple(history), reach)

    async def recent_sanctions(
        self, who: Moderator, offset: int, limit: int
    ) -> Listed[SanctionRecord]:
        """One page of the decisions in reach, newest first."""
        reach = self.reach(who)
        rows = await self.repo.recent_sanctions(scope=reach.scope, limit=limit, offset=offset)
        return Listed(tuple(rows), reach)

    async def recent_audit(self, who: Moderator, offset: int, limit: int) -> Listed[AuditRecord]:
        """One page of the audit entries of actions taken in reach, newest first."""
        reach = self.reach(who)
        rows = await self.repo.recent_audit(scope=reach.scope, limit=limit, offset=offset)
        return Listed(tuple(rows), reach)

    async def log_viewed(self, who: Moderator) -> None:
        """Audit that the caller read the sanction log (after the first page was read, so the
        log does not show its own viewing)."""
        reach = self.reach(who)
        await self.repo.audit(
            who.user_id,
            AdminAction.VIEW_LOG,
            None,
            f"guild={reach.guild_id}",
            self.clock(),
            guild_id=reach.guild_id,
        )

    async def unban(self, who: Moderator, target_id: str, reason: str) -> UnbanResult:
        """Lift the target's blocks decided in the caller's reach; audited either way. Nobody
        lifts their own block, global admins included (another admin can)."""
        reach, now = self.reach(who), self.clock()
        if who.user_id == target_id:
            await self.repo.audit(
                who.user_id,
                AdminAction.UNBAN_REFUSED,
                target_id,
                f"self reason={reason}",
                now,
                guild_id=reach.guild_id,
            )
            return UnbanResult(UnbanOutcome.SELF_REFUSED)
        lifted = await self.repo.lift_blocks(
            target_id, who.user_id, reason, now, scope=reach.scope, guild_id=reach.guild_id
        )
        still = await self.repo.active_block(target_id, now) is not None
        log.info(
            "admin %s lifted %d blocks of %s (scope %s)",
            who.user_id,
            lifted,
            target_id,
            reach.scope,
        )
        if lifted:
            return UnbanResult(UnbanOutcome.LIFTED, lifted, still)
        if still:
            return UnbanResult(UnbanOutcome.NOTHING_IN_REACH, 0, True)
        return UnbanResult(UnbanOutcome.NOT_BLOCKED)
