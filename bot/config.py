"""What the bot needs from the service settings, as one frozen value injected at construction."""

from __future__ import annotations

from dataclasses import dataclass

from engine.api import Settings

SHUTDOWN_GRACE_S = 60.0  # how long a shutdown waits for turns already running
CONFIRM_TIMEOUT_S = 120.0  # how long a /forget confirmation button stays live
PAGE_ROWS = 10  # rows per section on one page of a moderator listing (/sanctions, /sanction-log)
PAGER_TIMEOUT_S = 600.0  # how long the previous/next buttons of a listing stay live


@dataclass(frozen=True)
class BotConfig:
    """Discord-only choices; who is a global admin and the time zone are the service's, and so
    are where she chats and whether with her face (per server: `Moderation.chat_routing`)."""

    show_expression: bool
    rate_limit_per_minute: int
    sync_commands: bool = True
    # Discord shards this process runs (`AutoShardedBot`): None, Discord's recommended count,
    # every shard here; with a count, `shard_ids` None means all of them.
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BotConfig:
        return cls(
            show_expression=settings.show_expression,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            shard_count=settings.shard_count,
            shard_ids=settings.shard_ids,
        )
