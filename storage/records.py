"""Plain typed values the repository hands out, so callers never hold ORM rows or sessions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Protocol


class TurnStatus(StrEnum):
    """Where a turn ended; only PENDING may still change."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    BLOCKED = "blocked"
    REJECTED = "rejected"


class Everywhere(Enum):
    """The global admins' scope: decisions made in every server and in DMs alike."""

    EVERYWHERE = "everywhere"


EVERYWHERE = Everywhere.EVERYWHERE
# Which sanctions or audit entries a query covers: one server's id, None for those made in DMs
# or the console (the global admins' alone), or EVERYWHERE.
GuildScope = str | None | Everywhere


class LadderEntry(Protocol):
    """One triggered category of a decision (engine.rules.sanctions.SanctionEntry fits)."""

    @property
    def category(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def period(self) -> timedelta: ...


class LadderDecision(Protocol):
    @property
    def entries(self) -> Sequence[LadderEntry]: ...
    @property
    def total(self) -> timedelta: ...


class Ladder(Protocol):
    """Decides periods from previous levels; storage calls it inside the write transaction."""

    def decide(
        self, categories: Iterable[str], previous_levels: Mapping[str, int]
    ) -> LadderDecision: ...


@dataclass(frozen=True)
class MemoryRecord:
    id: int
    user_id: str
    key: str
    value: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = None
    pinned: bool = False  # the user pinned it: never replaced by extraction, never aged

    def render(self) -> str:
        return f"[{self.key}: {self.value}]"


class MemoryAction(StrEnum):
    """What one history entry of a remembered item records."""

    ADDED = "added"
    CHANGED = "changed"
    DELETED = "deleted"
    PINNED = "pinned"
    UNPINNED = "unpinned"


class MemorySource(StrEnum):
    """Who made a memory change: extraction from a turn, the user, day aging, the item cap."""

    TURN = "turn"
    USER = "user"
    EXPIRY = "expiry"
    CAP = "cap"


@dataclass(frozen=True)
class MemoryEventRecord:
    """One change of one item, keyed by (user, key): it outlives the item it describes."""

    id: int
    user_id: str
    key: str
    action: MemoryAction
    source: MemorySource
    old_value: str | None
    new_value: str | None
    turn_id: int | None
    at: datetime


@dataclass(frozen=True)
class SanctionRecord:
    id: int
    decision_id: str
    user_id: str
    guild_id: str | None
    category: str
    level: int
    period: timedelta
    block: timedelta
    created_at: datetime
    expires_at: datetime
    turn_id: int | None
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str | None
    closed_at: datetime | None

    @property
    def is_block(self) -> bool:
        return self.block > timedelta(0)


@dataclass(frozen=True)
class RecordedDecision:
    """What record_offence wrote: the ladder's decision plus where and until when."""

    decision_id: str
    decision: LadderDecision
    records: tuple[SanctionRecord, ...]
    expires_at: datetime
    case: CaseRecord | None = None  # its numbered case, written in the same transaction

    @property
    def is_block(self) -> bool:
        return self.decision.total > timedelta(0)


@dataclass(frozen=True)
class ActiveBlock:
    user_id: str
    expires_at: datetime
    categories: tuple[str, ...]


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor_id: str
    action: str
    target_user_id: str | None
    guild_id: str | None
    detail: str


@dataclass(frozen=True)
class TurnRecord:
    id: int
    user_id: str
    channel_id: str
    guild_id: str | None
    instance_id: str | None
    message_id: str | None
    original_text: str
    tagged_prompt: str | None
    final_input: str | None
    reply: str | None
    memory_item_used: str | None
    ethics_scores: dict[str, float] | None
    expression: str | None
    timings: dict[str, float] | None
    status: str
    error: str | None
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class AgingReport:
    """What the daily memory aging did: 오늘 items removed, 내일 items renamed to 오늘."""

    expired: int
    promoted: int


@dataclass(frozen=True)
class DailyRun:
    """What one daily maintenance transaction did.

    `boundaries`: day boundaries (04:00s) passed since the recorded day and applied now; 0 when
    this day was already done (by this or another process) or on the first run ever (`first`),
    which only records the day.
    """

    boundaries: int
    first: bool
    aging: AgingReport
    closed_blocks: tuple[str, ...]
    purged_turns: int


@dataclass(frozen=True)
class DeletionReport:
    memories: int
    turns: int
    conversations: int
    memory_events: int = 0  # the memories' history entries (forget-me takes them too)


# ---- moderation ----------------------------------------------------------------------------
class CaseKind(StrEnum):
    """What a case records: a sanction decision, or what an admin did."""

    WARNING = "warning"
    BLOCK = "block"
    LIFT = "lift"
    LIFT_REFUSED = "lift_refused"  # someone tried to lift their own block
    APPEAL_ACCEPTED = "appeal_accepted"
    APPEAL_DENIED = "appeal_denied"
    MOD_ROLE_ADDED = "mod_role_added"
    MOD_ROLE_REMOVED = "mod_role_removed"
    SETTINGS_CHANGED = "settings_changed"


# Cases that record a sanction decision (the rest record admin actions).
DECISION_KINDS = frozenset({CaseKind.WARNING, CaseKind.BLOCK})


class AppealStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DENIED = "denied"


@dataclass(frozen=True)
class CaseRecord:
    """One numbered case; `id` is the case number."""

    id: int
    kind: CaseKind
    user_id: str | None
    guild_id: str | None
    actor_id: str
    decision_id: str | None
    ref_case_id: int | None
    categories: tuple[str, ...]
    levels: tuple[int, ...]
    period: timedelta | None
    expires_at: datetime | None
    excerpt: str | None
    reason: str | None
    detail: str
    created_at: datetime

    @property
    def is_block(self) -> bool:
        return self.kind is CaseKind.BLOCK

    @property
    def level(self) -> int | None:
        return max(self.levels) if self.levels else None


@dataclass(frozen=True)
class AppealRecord:
    id: int
    case_id: int  # the block's case
    user_id: str
    guild_id: str | None  # the block's server
    reason: str
    status: AppealStatus
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    decision_case_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class GuildSettingsRecord:
    """A server's settings (the defaults when it never set any)."""

    guild_id: str
    modlog_channel_id: str | None = None
    dm_notice: bool = False
    expression_picture: bool | None = None  # None: the environment's default
