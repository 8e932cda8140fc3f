"""Moderation: who moderates where, numbered cases, lifts, appeals and per-server settings.

The authority rule (`Moderation.reach`) is the one every moderator operation asks first, and
a refusal (`NotAllowed`) comes before anything is read or changed. Every change is written
with its numbered case and its audit entry in one transaction (`storage.moderation`); front
ends post the cases they are handed to the servers' mod-logs and render them with
`engine.rules.messages`.

Authority. A block is global, but each decision belongs to the server it was made in (None:
a DM or the console):
- a configured global admin sees and acts on every decision, from anywhere;
- in a server, a member with Moderate Members or one of the server's moderator roles sees and
  acts on that server's decisions only (a blocked user's own server lifts nothing earned
  elsewhere); never in a DM;
- the server's configuration (moderator roles, mod-log, DM notices, chat channels, her face
  picture) is for global admins and Moderate Members holders only: a moderator role cannot
  hand itself to others;
- nobody lifts their own block or decides their own appeal.

Routing. Where she answers without a mention and whether her replies carry her face are the
environment's defaults (`OHLORA_CHAT_CHANNEL_IDS`, `OHLORA_EXPRESSION_PICTURE`) merged with
each server's own settings (`chat_routing`). A change applies at once in this process (its
cache entry is dropped) and within `ROUTING_CACHE_S` in the others on the same database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from engine.rules import messages
from storage import (
    AppealRecord,
    CaseKind,
    CaseRecord,
    GuildSettingsRecord,
    ModerationRepository,
    Repository,
    SanctionRecord,
)
from storage.moderation import AppealLimits, AppealOutcome, ConfigWrite, GuildRouting
from storage.records import EVERYWHERE, Everywhere, GuildScope

log = logging.getLogger(__name__)

# Appeals: one open per block (the schema's rule), at most this many per block in all, and at
# most MAX_APPEALS_PER_DAY by one user in any APPEAL_WINDOW, so a blocked user cannot flood
# the mod-logs.
MAX_APPEALS_PER_BLOCK = 3
MAX_APPEALS_PER_DAY = 2
APPEAL_WINDOW = timedelta(days=1)
# What a reason, an appeal or a decision note keeps (a modal's paragraph field allows 4000).
MAX_REASON_CHARS = 500
DEFAULT_LOG_ROWS = 20
MAX_LOG_ROWS = 100
# How long one process trusts its copy of a server's routing: another process's change (several
# bot processes on one database) reaches this one within this; this process's own at once.
ROUTING_CACHE_S = 30.0

__all__ = [
    "APPEAL_WINDOW",
    "MAX_APPEALS_PER_BLOCK",
    "MAX_APPEALS_PER_DAY",
    "MAX_REASON_CHARS",
    "ROUTING_CACHE_S",
    "AdminAction",
    "AppealDecision",
    "AppealNotFound",
    "AppealOutcome",
    "AppealResult",
    "CaseNotFound",
    "ChatChannels",
    "ChatRouting",
    "ConfigChange",
    "DecideOutcome",
    "LevelDecay",
    "LiftResult",
    "Listed",
    "Moderation",
    "Moderator",
    "NeedsServer",
    "NotAllowed",
    "Reach",
    "UnbanOutcome",
    "UnbanResult",
    "level_decays",
]


class AdminAction(StrEnum):
    """Audit actions the service writes (and the lift's, `unban`, as ever)."""

    VIEW_SANCTIONS = "view_sanctions"
    VIEW_LOG = "view_log"
    VIEW_CASE = "view_case"
    VIEW_CASES = "view_cases"
    UNBAN = "unban"
    UNBAN_REFUSED = "unban_refused"
    APPEAL_FILED = "appeal_filed"
    APPEAL_DECIDED = "appeal_decided"
    APPEAL_REFUSED = "appeal_refused"  # someone tried to decide their own appeal
    MOD_ROLE = "mod_role"
    GUILD_SETTINGS = "guild_settings"
    CHAT_CHANNEL = "chat_channel"


class NotAllowed(Exception):
    """The caller may not use a moderator operation here; nothing was read or changed."""


class NeedsServer(NotAllowed):
    """A server's configuration is changed in that server, not in a DM."""


class CaseNotFound(LookupError):
    """No such case, or none the caller may see (the same answer, so numbers leak nothing)."""


class AppealNotFound(LookupError):
    """No such appeal, or none the caller may see."""


@dataclass(frozen=True)
class Moderator:
    """Who asks for a moderator operation: their id, the server they ask in (None: a DM or the
    console), whether that server gives them Moderate Members or Manage Server, and their roles
    there."""

    user_id: str
    guild_id: str | None
    moderates_here: bool = False
    role_ids: frozenset[str] = frozenset()
    # Manage Server configures the bot (Red's `[p]set`) without making its holder a moderator.
    manages_server: bool = False


@dataclass(frozen=True)
class Reach:
    """Whose decisions a moderator sees and lifts, and where they act (the audit's server)."""

    scope: GuildScope
    guild_id: str | None

    @property
    def everywhere(self) -> bool:
        return isinstance(self.scope, Everywhere)

    def covers(self, guild_id: str | None) -> bool:
        """Whether a decision made in `guild_id` (None: a DM) is in this reach."""
        return self.everywhere or self.scope == guild_id


T = TypeVar("T")


@dataclass(frozen=True)
class Listed(Generic[T]):
    """Rows read for a moderator, with the reach they were read in (for `where` labels)."""

    rows: tuple[T, ...]
    reach: Reach


class UnbanOutcome(StrEnum):
    SELF_REFUSED = "self_refused"  # nobody lifts their own block; audited, nothing changed
    LIFTED = "lifted"
    NOTHING_IN_REACH = "nothing_in_reach"  # still blocked by decisions outside the reach
    NOT_BLOCKED = "not_blocked"


@dataclass(frozen=True)
class UnbanResult:
    """What a lift did; `case` is the new LIFT (or LIFT_REFUSED) case to post, if any."""

    outcome: UnbanOutcome
    lifted: int = 0
    still_blocked: bool = False
    case: CaseRecord | None = None


LiftResult = UnbanResult


@dataclass(frozen=True)
class AppealResult:
    """What `/appeal` did: filed (the appeal to post, with the block's case) or why not."""

    outcome: AppealOutcome
    appeal: AppealRecord | None = None
    block_case: CaseRecord | None = None


class DecideOutcome(StrEnum):
    ACCEPTED = "accepted"
    DENIED = "denied"
    ALREADY_DECIDED = "already_decided"  # someone decided first; nothing changed
    SELF_REFUSED = "self_refused"  # nobody decides their own appeal; audited
    NOT_IN_REACH = "not_in_reach"  # the block was decided elsewhere; nothing changed


@dataclass(frozen=True)
class AppealDecision:
    """An appeal decision: the new case to post and, on accept or deny, the user's DM."""

    outcome: DecideOutcome
    appeal: AppealRecord
    case: CaseRecord | None = None
    lifted: int = 0
    still_blocked: bool = False
    dm_text: str | None = None


@dataclass(frozen=True)
class ConfigChange:
    """A configuration write: whether anything changed, the settings now, the case to post."""

    changed: bool
    settings: GuildSettingsRecord
    case: CaseRecord | None = None


@dataclass(frozen=True)
class ChatRouting:
    """Where Oh-LoRA answers in one server without being mentioned or replied to (channel ids;
    a thread follows its parent), and whether her replies carry her face picture."""

    chat_channel_ids: frozenset[str]
    expression_picture: bool


@dataclass(frozen=True)
class ChatChannels:
    """A server's chat channels as `/config chat-channel list` shows them: the effective ones
    (sorted), which of those come from the environment, and the environment ones this server
    turned off."""

    channel_ids: tuple[str, ...]
    env_defaults: frozenset[str]
    turned_off: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Cached:
    routing: ChatRouting
    read_at: float  # monotonic seconds


@dataclass(frozen=True)
class LevelDecay:
    """With decay on: `category`'s `level` stops counting toward the next one at `at`."""

    category: str
    level: int
    at: datetime


def level_decays(
    history: Iterable[SanctionRecord], decay: timedelta | None, now: datetime
) -> tuple[LevelDecay, ...]:
    """When each category's level falls away: `decay` after the last of its sanctions ended
    (a warning when given, a block when it ran out or was lifted), the rule the storage's
    level count applies (`storage.moderation.counts_toward_level`)."""
    if decay is None:
        return ()
    counting: dict[str, list[SanctionRecord]] = {}
    for record in history:
        if _ended(record) + decay > now:
            counting.setdefault(record.category, []).append(record)
    return tuple(
        LevelDecay(category, max(r.level for r in rows), max(_ended(r) for r in rows) + decay)
        for category, rows in sorted(counting.items())
    )


def _ended(record: SanctionRecord) -> datetime:
    return record.lifted_at or record.expires_at


def _capped(text: str) -> str:
    return text.strip()[:MAX_REASON_CHARS]


class Moderation:
    """The moderator operations (one per service; the front ends reach it as
    `service.moderation`)."""

    def __init__(
        self,
        repo: Repository,
        store: ModerationRepository,
        *,
        admin_ids: frozenset[str],
        clock: Callable[[], datetime],
        decay: timedelta | None = None,
        appeal_limits: AppealLimits | None = None,
    ) -> None:
        self.repo = repo
        self.store = store
        self.admin_ids = admin_ids
        self.clock = clock
        self.decay = decay
        self.appeal_limits = appeal_limits or AppealLimits(
            per_block=MAX_APPEALS_PER_BLOCK, per_window=MAX_APPEALS_PER_DAY, window=APPEAL_WINDOW
        )
        # The environment's routing defaults (`use_defaults`, called by `build_engine`).
        self.default_chat_channels: frozenset[str] = frozenset()
        self.default_expression_picture = True
        self.routing_cache_s = ROUTING_CACHE_S
        self.monotonic: Callable[[], float] = time.monotonic  # the cache's time, not the clock
        self._routing: dict[str, _Cached] = {}
        self._routing_epoch = 0  # bumped by every change: a read begun before it is not kept

    def use_defaults(self, *, chat_channel_ids: Iterable[str], expression_picture: bool) -> None:
        """The environment's chat channels and face-picture setting: what a server without
        settings of its own gets, and what a DM gets."""
        self.default_chat_channels = frozenset(str(c) for c in chat_channel_ids)
        self.default_expression_picture = expression_picture
        self._forget_routing(None)

    def _forget_routing(self, guild_id: str | None) -> None:
        """Drop a server's cached routing (None: every server's) after a change."""
        self._routing_epoch += 1
        if guild_id is None:
            self._routing.clear()
        else:
            self._routing.pop(guild_id, None)

    # ---- authority -------------------------------------------------------------------
    def is_global_admin(self, user_id: str) -> bool:
        return user_id in self.admin_ids

    async def may_moderate(self, who: Moderator) -> bool:
        """A global admin anywhere; in a server, Moderate Members or one of its mod roles."""
        if self.is_global_admin(who.user_id):
            return True
        if who.guild_id is None:
            return False
        return who.moderates_here or await self.store.holds_mod_role(who.guild_id, who.role_ids)

    def may_configure(self, who: Moderator) -> bool:
        """A server's configuration: global admins, Moderate Members and Manage Server holders,
        in a server."""
        return who.guild_id is not None and (
            self.is_global_admin(who.user_id) or who.moderates_here or who.manages_server
        )

    async def reach(self, who: Moderator) -> Reach:
        """A global admin sees every decision; a server's moderator only that server's.
        Raises `NotAllowed`."""
        if not await self.may_moderate(who):
            raise NotAllowed(who.user_id)
        if self.is_global_admin(who.user_id):
            return Reach(EVERYWHERE, who.guild_id)
        assert who.guild_id is not None  # may_moderate: a moderator asks in a server
        return Reach(who.guild_id, who.guild_id)

    async def _guild_of(self, who: Moderator, *, configure: bool) -> str:
        if configure and not self.may_configure(who):
            if who.guild_id is None and self.is_global_admin(who.user_id):
                raise NeedsServer(who.user_id)
            raise NotAllowed(who.user_id)
        if not configure and not self.may_configure(who):
            await self.reach(who)  # reading settings: moderators, and whoever may configure
        if who.guild_id is None:
            raise NeedsServer(who.user_id)
        return who.guild_id

    # ---- cases -----------------------------------------------------------------------
    async def case(self, who: Moderator, number: int) -> CaseRecord:
        """One case in the caller's reach (the view is audited); `CaseNotFound` otherwise."""
        reach = await self.reach(who)
        case = await self.store.get_case(number)
        if case is None or not reach.covers(case.guild_id):
            raise CaseNotFound(number)
        await self.repo.audit(
            who.user_id,
            AdminAction.VIEW_CASE,
            case.user_id,
            f"case=#{number}",
            self.clock(),
            guild_id=reach.guild_id,
        )
        return case

    async def sanction_log(
        self,
        who: Moderator,
        *,
        user_id: str | None = None,
        category: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = DEFAULT_LOG_ROWS,
    ) -> Listed[CaseRecord]:
        """One page of the cases in reach, newest first, filtered by user, category and date
        (`since` inclusive, `until` exclusive); the first page's reading is audited."""
        reach = await self.reach(who)
        rows = await self.store.cases(
            reach.scope,
            user_id=user_id,
            category=category,
            since=since,
            until=until,
            limit=max(1, min(limit, MAX_LOG_ROWS)),
            offset=max(0, offset),
        )
        if offset == 0:
            await self.repo.audit(
                who.user_id,
                AdminAction.VIEW_CASES,
                user_id,
                f"category={category} since={since} until={until} rows={len(rows)}",
                self.clock(),
                guild_id=reach.guild_id,
            )
        return Listed(tuple(rows), reach)

    async def case_numbers(self, who: Moderator, decision_ids: Iterable[str]) -> dict[str, int]:
        """decision id -> case number, for decisions listed to a moderator (`/sanctions`)."""
        await self.reach(who)
        return await self.store.decision_cases(decision_ids)

    # ---- lifting ---------------------------------------------------------------------
    async def lift(
        self,
        who: Moderator,
        *,
        reason: str,
        user_id: str | None = None,
        case_number: int | None = None,
    ) -> UnbanResult:
        """Lift one block case (`case_number`) or all of a user's blocks in the caller's
        reach, with a new LIFT case; audited either way. Nobody lifts their own block."""
        if (user_id is None) == (case_number is None):
            raise TypeError("lift takes a user or a case number")
        reach, now = await self.reach(who), self.clock()
        decision_id = None
        if case_number is not None:
            block = await self.store.get_case(case_number)
            if block is None or block.kind is not CaseKind.BLOCK or block.user_id is None:
                raise CaseNotFound(case_number)
            user_id, decision_id = block.user_id, block.decision_id
        assert user_id is not None
        reason = _capped(reason)
        if who.user_id == user_id:
            case = await self.store.add_case(
                CaseKind.LIFT_REFUSED,
                now,
                actor_id=who.user_id,
                user_id=user_id,
                guild_id=reach.guild_id,
                reason=reason,
                detail="self",
                audit=(AdminAction.UNBAN_REFUSED, f"self reason={reason}"),
            )
            return UnbanResult(UnbanOutcome.SELF_REFUSED, case=case)
        done = await self.store.lift(
            user_id,
            who.user_id,
            reason,
            now,
            scope=reach.scope,
            guild_id=reach.guild_id,
            action=AdminAction.UNBAN,
            decision_id=decision_id,
        )
        still = await self.repo.active_block(user_id, now) is not None
        log.info(
            "admin %s lifted %d blocks of %s (scope %s)",
            who.user_id,
            done.rows,
            user_id,
            reach.scope,
        )
        if done.rows:
            return UnbanResult(UnbanOutcome.LIFTED, done.rows, still, done.case)
        if still:
            return UnbanResult(UnbanOutcome.NOTHING_IN_REACH, 0, True)
        return UnbanResult(UnbanOutcome.NOT_BLOCKED)

    # ---- appeals ---------------------------------------------------------------------
    async def appeal(self, user_id: str, reason: str) -> AppealResult:
        """A blocked user appeals the block in force (in a server or a DM alike): one open
        appeal per block, within the limits. The appeal is the user's, not an admin's."""
        filed = await self.store.file_appeal(
            user_id, _capped(reason), self.clock(), self.appeal_limits, AdminAction.APPEAL_FILED
        )
        return AppealResult(filed.outcome, filed.appeal, filed.block_case)

    async def appeal_record(self, who: Moderator, appeal_id: int) -> AppealRecord:
        """An appeal in the caller's reach; `AppealNotFound` otherwise."""
        reach = await self.reach(who)
        appeal = await self.store.get_appeal(appeal_id)
        if appeal is None or not reach.covers(appeal.guild_id):
            raise AppealNotFound(appeal_id)
        return appeal

    async def decide_appeal(
        self, who: Moderator, appeal_id: int, *, accept: bool, note: str
    ) -> AppealDecision:
        """Accept (the block is lifted, its history stays) or deny an open appeal, by someone
        whose reach covers the block's server; the answer carries the user's DM."""
        reach, now = await self.reach(who), self.clock()
        appeal = await self.store.get_appeal(appeal_id)
        if appeal is None:
            raise AppealNotFound(appeal_id)
        if not reach.covers(appeal.guild_id):
            return AppealDecision(DecideOutcome.NOT_IN_REACH, appeal)
        note = _capped(note)
        if who.user_id == appeal.user_id:
            await self.repo.audit(
                who.user_id,
                AdminAction.APPEAL_REFUSED,
                appeal.user_id,
                f"self appeal={appeal_id}",
                now,
                guild_id=reach.guild_id,
            )
            return AppealDecision(DecideOutcome.SELF_REFUSED, appeal)
        done = await self.store.decide_appeal(
            appeal_id,
            who.user_id,
            accept,
            note,
            now,
            guild_id=reach.guild_id,
            action=AdminAction.APPEAL_DECIDED,
            lift_action=AdminAction.UNBAN,
        )
        if done.already_decided:
            return AppealDecision(DecideOutcome.ALREADY_DECIDED, done.appeal)
        still = await self.repo.active_block(appeal.user_id, now) is not None
        outcome = DecideOutcome.ACCEPTED if accept else DecideOutcome.DENIED
        dm = messages.appeal_decided_dm(done.appeal, still_blocked=still)
        return AppealDecision(outcome, done.appeal, done.case, done.lifted, still, dm)

    # ---- server configuration ------------------------------------------------------------
    async def guild_settings(self, who: Moderator) -> GuildSettingsRecord:
        return await self.store.guild_settings(await self._guild_of(who, configure=False))

    async def set_modlog_channel(self, who: Moderator, channel_id: str | None) -> ConfigChange:
        return await self._configure(who, modlog_channel_id=channel_id)

    async def set_dm_notice(self, who: Moderator, enabled: bool) -> ConfigChange:
        return await self._configure(who, dm_notice=enabled)

    async def _configure(self, who: Moderator, **changes: str | bool | None) -> ConfigChange:
        """One settings write of this server, by someone who may configure it (checked first)."""
        guild = await self._guild_of(who, configure=True)
        written = await self.store.update_guild_settings(
            guild, who.user_id, self.clock(), action=AdminAction.GUILD_SETTINGS, **changes
        )
        self._forget_routing(guild)
        return _change(written)

    async def mod_roles(self, who: Moderator) -> tuple[str, ...]:
        return await self.store.mod_roles(await self._guild_of(who, configure=False))

    async def add_mod_role(self, who: Moderator, role_id: str) -> ConfigChange:
        return await self._set_mod_role(who, role_id, present=True)

    async def remove_mod_role(self, who: Moderator, role_id: str) -> ConfigChange:
        return await self._set_mod_role(who, role_id, present=False)

    async def _set_mod_role(self, who: Moderator, role_id: str, *, present: bool) -> ConfigChange:
        guild = await self._guild_of(who, configure=True)
        return _change(
            await self.store.set_mod_role(
                guild,
                role_id,
                who.user_id,
                self.clock(),
                present=present,
                action=AdminAction.MOD_ROLE,
            )
        )

    # ---- routing: chat channels and her face picture --------------------------------------
    def _merged(self, read: GuildRouting) -> ChatRouting:
        rows = read.chat_channels
        channels = {c for c in self.default_chat_channels if rows.get(c, True)}
        channels |= {c for c, enabled in rows.items() if enabled}
        return ChatRouting(frozenset(channels), self.expression_picture_of(read.settings))

    async def chat_routing(self, guild_id: str | None) -> ChatRouting:
        """Where she answers unaddressed in this server, and whether with her face (None: a
        DM or the console, the environment's defaults). Asked for every message, so it is
        cached per server (`ROUTING_CACHE_S`; this process's own changes drop it at once)."""
        if guild_id is None:
            return ChatRouting(self.default_chat_channels, self.default_expression_picture)
        now = self.monotonic()
        cached = self._routing.get(guild_id)
        if cached is not None and now - cached.read_at < self.routing_cache_s:
            return cached.routing
        epoch = self._routing_epoch
        routing = self._merged(await self.store.guild_routing(guild_id))
        if epoch == self._routing_epoch:  # no change of this process's landed meanwhile
            self._routing[guild_id] = _Cached(routing, now)
        return routing

    async def chat_channels(self, who: Moderator) -> ChatChannels:
        """`/config chat-channel list` (moderators of the server): read fresh, not cached."""
        guild = await self._guild_of(who, configure=False)
        read = await self.store.guild_routing(guild)
        routing = self._merged(read)
        off = sorted(c for c in self.default_chat_channels if c not in routing.chat_channel_ids)
        return ChatChannels(
            tuple(sorted(routing.chat_channel_ids, key=_id_order)),
            self.default_chat_channels & routing.chat_channel_ids,
            tuple(sorted(off, key=_id_order)),
        )

    async def add_chat_channel(self, who: Moderator, channel_id: str) -> ConfigChange:
        """She answers every message in this channel (and its threads) of this server."""
        return await self._set_chat_channel(who, channel_id, enabled=True)

    async def remove_chat_channel(self, who: Moderator, channel_id: str) -> ConfigChange:
        """She answers there only when mentioned or replied to (an environment chat channel
        is turned off for this server alone)."""
        return await self._set_chat_channel(who, channel_id, enabled=False)

    async def _set_chat_channel(
        self, who: Moderator, channel_id: str, *, enabled: bool
    ) -> ConfigChange:
        guild = await self._guild_of(who, configure=True)
        read = await self.store.guild_routing(guild)
        if (channel_id in self._merged(read).chat_channel_ids) == enabled:
            return ConfigChange(False, read.settings)
        # The row that gives the wanted state: none where the environment's default already
        # does, so a later change of the environment is not shadowed by a stale row.
        default = channel_id in self.default_chat_channels
        row: bool | None = None if default == enabled else enabled
        written = await self.store.set_chat_channel(
            guild,
            channel_id,
            who.user_id,
            self.clock(),
            enabled=row,
            action=AdminAction.CHAT_CHANNEL,
        )
        self._forget_routing(guild)
        return _change(written)

    def expression_picture_of(self, settings: GuildSettingsRecord) -> bool:
        """Whether a server's settings show her face (its own choice, else the default)."""
        own = settings.expression_picture
        return self.default_expression_picture if own is None else own

    async def set_expression_picture(self, who: Moderator, enabled: bool) -> ConfigChange:
        """Her face picture under this server's replies, on or off."""
        return await self._configure(who, expression_picture=enabled)

    # ---- for the front ends themselves (nothing a user sees) ------------------------------
    async def modlog_channels(self, guild_ids: Iterable[str]) -> dict[str, str]:
        """guild -> mod-log channel, for the given servers that named one."""
        return await self.store.modlog_channels(guild_ids)

    async def dm_notice_enabled(self, guild_id: str | None) -> bool:
        """Whether a warning or block given in this server is also sent by DM."""
        if guild_id is None:
            return False
        return (await self.store.guild_settings(guild_id)).dm_notice

    async def decay_info(self, user_id: str) -> tuple[LevelDecay, ...]:
        """`/mystatus`: when each of the user's levels stops counting (empty: decay off)."""
        return level_decays(await self.repo.sanction_history(user_id), self.decay, self.clock())


def _id_order(channel_id: str) -> tuple[int, str]:
    """Discord ids in creation order (numerically), anything else after them."""
    return (int(channel_id), "") if channel_id.isdigit() else (1 << 64, channel_id)


def _change(write: ConfigWrite) -> ConfigChange:
    return ConfigChange(write.changed, write.settings, write.case)


def case_guilds(case: CaseRecord, shared: Sequence[str]) -> tuple[str, ...]:
    """The servers whose mod-logs a case goes to: the user's shared servers and the case's
    own; an admin case without a user only to its own server."""
    own = () if case.guild_id is None else (case.guild_id,)
    if case.user_id is None:
        return own
    return tuple(dict.fromkeys([*own, *shared]))
