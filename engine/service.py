"""Every operation a front end offers, over the turn pipeline and the repository.

The Discord cogs and the console call these methods and render what they return with
`engine.rules.messages`, so both give the same answers for the same data. The authority
rules of the moderator commands (who sees and lifts which decisions) and the moderation
workflow (cases, appeals, mod roles, server settings) are `engine.moderation`'s, reached as
`service.moderation`; a front end only says who is asking, where, with which roles, and
whether that place lets them moderate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Protocol

from engine.feedback import Feedback
from engine.memories import MemoryPanel
from engine.metrics import Metrics, MetricsServer
from engine.moderation import (
    AdminAction,
    Listed,
    Moderation,
    Moderator,
    Reach,
    UnbanResult,
)
from engine.pipeline import Engine, TurnResult
from engine.rules.commands import ForgetTarget
from storage import (
    AuditRecord,
    DeletionReport,
    MemoryRecord,
    ModerationRepository,
    Repository,
    SanctionRecord,
)


class Maintenance(Protocol):
    """The daily 04:00 maintenance: `start` catches up on missed runs and schedules the next."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


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
        # Cases, lifts, appeals, mod roles and server settings (`engine.moderation`).
        self.moderation = Moderation(
            repo,
            ModerationRepository(repo.db),
            admin_ids=admin_ids,
            clock=self.clock,
            decay=engine.sanction_decay,
        )
        # Regenerate, ratings, why-this-reply and the data export (`engine.feedback`).
        self.feedback = Feedback(engine, clock=self.clock)
        # The `/memory` panel: items paged, edits, pins, deletions, history (`engine.memories`).
        self.memories = MemoryPanel(engine, repo, clock=self.clock)
        # `/metrics` and `/healthz`, when `OHLORA_METRICS_PORT` is set (`build_engine`)
        self.metrics_server: MetricsServer | None = None

    @property
    def metrics(self) -> Metrics:
        """The engine's instruments (served or not)."""
        return self.engine.metrics

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

    # ---- moderators (the rules: `engine.moderation`) ----------------------------------------
    def is_global_admin(self, user_id: str) -> bool:
        return self.moderation.is_global_admin(user_id)

    async def may_moderate(self, who: Moderator) -> bool:
        """A global admin anywhere; in a server, Moderate Members or one of its mod roles."""
        return await self.moderation.may_moderate(who)

    async def reach(self, who: Moderator) -> Reach:
        """Whose decisions the caller sees and lifts; raises `NotAllowed`."""
        return await self.moderation.reach(who)

    async def sanctions_of(self, who: Moderator, target_id: str) -> Listed[SanctionRecord]:
        """A user's decisions in the caller's reach, oldest first; the view is audited."""
        reach = await self.reach(who)
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
        reach = await self.reach(who)
        rows = await self.repo.recent_sanctions(scope=reach.scope, limit=limit, offset=offset)
        return Listed(tuple(rows), reach)

    async def recent_audit(self, who: Moderator, offset: int, limit: int) -> Listed[AuditRecord]:
        """One page of the audit entries of actions taken in reach, newest first."""
        reach = await self.reach(who)
        rows = await self.repo.recent_audit(scope=reach.scope, limit=limit, offset=offset)
        return Listed(tuple(rows), reach)

    async def log_viewed(self, who: Moderator) -> None:
        """Audit that the caller read the sanction log (after the first page was read, so the
        log does not show its own viewing)."""
        reach = await self.reach(who)
        await self.repo.audit(
            who.user_id,
            AdminAction.VIEW_LOG,
            None,
            f"guild={reach.guild_id}",
            self.clock(),
            guild_id=reach.guild_id,
        )

    async def unban(self, who: Moderator, target_id: str, reason: str) -> UnbanResult:
        """Lift the target's blocks decided in the caller's reach, with a new case; audited
        either way. Nobody lifts their own block, global admins included (another admin can)."""
        return await self.moderation.lift(who, reason=reason, user_id=target_id)
