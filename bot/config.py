"""What the bot needs from the service settings, as one frozen value injected at construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from zoneinfo import ZoneInfo

from engine.settings import Settings

SHUTDOWN_GRACE_S = 60.0  # how long a shutdown waits for turns already running
CONFIRM_TIMEOUT_S = 120.0  # how long a /forget confirmation button stays live
MAX_LIST_LINES = 25  # rows per ephemeral listing (history, log, memories)
PAGE_ROWS = 10  # rows per section on one page of a moderator listing (/sanctions, /sanction-log)
PAGER_TIMEOUT_S = 600.0  # how long the previous/next buttons of a listing stay live


@dataclass(frozen=True)
class BotConfig:
    admin_ids: frozenset[int] = frozenset()
    chat_channel_ids: frozenset[int] = frozenset()
    show_expression: bool = True
    turn_retention: timedelta = timedelta(days=30)
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))
    sync_commands: bool = True
    rate_limit_per_minute: int = 12

    @classmethod
    def from_settings(cls, settings: Settings) -> BotConfig:
        return cls(
            admin_ids=settings.admin_ids,
            chat_channel_ids=settings.chat_channel_ids,
            show_expression=settings.show_expression,
            turn_retention=timedelta(days=settings.turn_retention_days),
            tz=settings.tz,
            rate_limit_per_minute=settings.rate_limit_per_minute,
        )
