"""ORM schema: the only description of the tables; migrations must reach exactly this."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Discord snowflakes fit in 20 digits; "console" and test ids are shorter still.
ID_LEN = 32
KEY_LEN = 100
CATEGORY_LEN = 16
STATUS_LEN = 16
ACTION_LEN = 32
INSTANCE_LEN = 64
STATE_NAME_LEN = 32

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without tzinfo (SQLite keeps none) and hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A person the bot has seen. Kept on data deletion so the sanction log stays attached."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Conversation(Base):
    """One user in one channel; holds the running summary fed to the next turn."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("user_id", "channel_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(ID_LEN))
    summary: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Turn(Base):
    """One user message and everything the pipeline made of it."""

    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(ID_LEN))
    # The server the message was written in; None for DMs and the console.
    guild_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    # The service process that ran the turn, so a start-up fails only a dead process's turns.
    instance_id: Mapped[str | None] = mapped_column(String(INSTANCE_LEN))
    message_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    reply_message_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    original_text: Mapped[str] = mapped_column(Text)
    tagged_prompt: Mapped[str | None] = mapped_column(Text)
    final_input: Mapped[str | None] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)
    memory_item_used: Mapped[str | None] = mapped_column(Text)
    ethics_scores: Mapped[dict[str, float] | None] = mapped_column(JSON)
    expression: Mapped[str | None] = mapped_column(String(64))
    timings: Mapped[dict[str, float] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Replies a regenerate (🔄) replaced, oldest first: [{"text": ..., "at": iso}] (0007).
    reply_history: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)


class MemoryItemRow(Base):
    """One remembered fact; a new value for the same (user, key) replaces the old one."""

    __tablename__ = "memory_items"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_LEN))
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When retrieval last picked this item for a reply (least recently used goes first at the cap).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source_turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="SET NULL"))
    # Pinned by the user (migration 0007): extraction never replaces it, it never expires and
    # the item cap never evicts it.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


class Sanction(Base):
    """One category of one ethics decision; rows of one decision share `decision_id`."""

    __tablename__ = "sanctions"
    __table_args__ = (
        Index("ix_sanctions_user_category", "user_id", "category"),
        Index("ix_sanctions_user_expires", "user_id", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # Where the decision was made: its server's moderators may review and lift it; None (DMs,
    # the console) leaves it to the configured global admins alone.
    guild_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    category: Mapped[str] = mapped_column(String(CATEGORY_LEN))
    level: Mapped[int] = mapped_column(Integer)
    period_seconds: Mapped[int] = mapped_column(Integer)
    block_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="SET NULL"))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lifted_by: Mapped[str | None] = mapped_column(String(ID_LEN))
    lift_reason: Mapped[str | None] = mapped_column(Text)
    # Set by the daily job once a block has run out (not by an admin): "closed", not "lifted".
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """What an admin did, to whom and why; never deleted with user data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[str] = mapped_column(String(ID_LEN))
    action: Mapped[str] = mapped_column(String(ACTION_LEN))
    target_user_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    # The server the action was taken in (None: DMs, the console, the daily job).
    guild_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class MaintenanceState(Base):
    """Where a scheduled job got to, so a service that was down catches up when it starts.

    One row per job (migration 0005 seeds the daily one, so processes sharing the database lock
    an existing row instead of racing to insert it).
    """

    __tablename__ = "maintenance_state"

    name: Mapped[str] = mapped_column(String(STATE_NAME_LEN), primary_key=True)
    # The last day boundary applied (the date its 04:00 began, in the service's zone); None: never.
    day: Mapped[date | None] = mapped_column(Date)
    ran_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# ---- moderation (migration 0006) ---------------------------------------------------------
CASE_KIND_LEN = 24
# A case keeps at most this much of the message behind a decision (mod-logs show it hidden
# behind a spoiler); it goes with the turn texts' retention purge and with forget-me.
MAX_EXCERPT_CHARS = 200


class Case(Base):
    """One numbered mod-log entry: a sanction decision or an admin action.

    One global sequence (`id` is the case number): a block is global and is posted to every
    server the user shares with the bot, so the same decision carries the same number in
    each mod-log (Red numbers per server, which would give one decision many numbers).
    """

    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(CASE_KIND_LEN))
    user_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    guild_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    actor_id: Mapped[str] = mapped_column(String(ID_LEN))
    decision_id: Mapped[str | None] = mapped_column(String(36), index=True)
    ref_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    levels: Mapped[list[int]] = mapped_column(JSON, default=list)
    period_seconds: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    excerpt: Mapped[str | None] = mapped_column(String(MAX_EXCERPT_CHARS))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Appeal(Base):
    """A blocked user's request to lift one block (its case).

    `open_case_id` holds the block's case while the appeal is open and NULL once decided: a
    plain unique constraint (NULLs never collide, in SQLite and PostgreSQL alike) allows one
    open appeal per block without a dialect's partial index.
    """

    __tablename__ = "appeals"
    __table_args__ = (Index("ix_appeals_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    open_case_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    user_id: Mapped[str] = mapped_column(String(ID_LEN))
    # The block's server (None: a DM): who may decide is who may lift it.
    guild_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default="open")
    decided_by: Mapped[str | None] = mapped_column(String(ID_LEN))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)
    decision_case_id: Mapped[int | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GuildSettings(Base):
    """Per-server settings; a server without a row has the defaults (no mod-log, no DM notice,
    the environment's expression-picture setting). Chat channels: `GuildChatChannel`."""

    __tablename__ = "guild_settings"

    guild_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    modlog_channel_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    dm_notice: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Her face picture under replies (0007); None: the environment's default.
    expression_picture: Mapped[bool | None] = mapped_column(Boolean)


class GuildModRole(Base):
    """A role whose members moderate one server, beside Moderate Members holders."""

    __tablename__ = "guild_mod_roles"

    guild_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    role_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    added_by: Mapped[str] = mapped_column(String(ID_LEN))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# ---- the product (migration 0007) -------------------------------------------------------
MEMORY_ACTION_LEN = 16
MEMORY_SOURCE_LEN = 16


class MemoryEvent(Base):
    """One change of one remembered item (mem0's history: ADD / UPDATE / DELETE with the old
    and new values), so nothing she remembers changes or vanishes silently. Keyed by
    (user, key), it outlives the item; it is user data and goes with forget-me."""

    __tablename__ = "memory_history"
    __table_args__ = (Index("ix_memory_history_user_key", "user_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_LEN))
    # storage.records.MemoryAction: added, changed, deleted, pinned, unpinned
    action: Mapped[str] = mapped_column(String(MEMORY_ACTION_LEN))
    # storage.records.MemorySource: turn (extraction), user, expiry, cap (evicted)
    source: Mapped[str] = mapped_column(String(MEMORY_SOURCE_LEN))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReplyRating(Base):
    """👍 (+1) or 👎 (-1) on one drawn reply of a turn (`draw` 0 is the first reply, n the
    n-th regenerate); rating again replaces it. The text is kept for the feedback export."""

    __tablename__ = "reply_ratings"
    __table_args__ = (UniqueConstraint("turn_id", "draw"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    draw: Mapped[int] = mapped_column(Integer)
    rating: Mapped[int] = mapped_column(Integer)
    reply: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GuildChatChannel(Base):
    """A server's own chat-channel setting for one channel: `enabled` adds it to the
    environment's chat channels, False takes an environment one out for this server."""

    __tablename__ = "guild_chat_channels"

    guild_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    changed_by: Mapped[str] = mapped_column(String(ID_LEN))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
