"""The `commands.Bot` subclass: the service and config injected, cogs loaded as extensions.

Shaped after discord.py's `examples/advanced_startup.py`. The bot never touches a model or
SQL: chat and every command go through the engine's service (`engine.api.OhLoraService`).
The cogs are discord.py extensions (`bot.chat`, `bot.user_commands`, `bot.admin`,
`bot.modlog`, each with `async def setup(bot)`), loaded in `setup_hook`; they import this
module for types only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import SHUTDOWN_GRACE_S, BotConfig
from bot.interactions import send_private
from engine.api import DeletionReport, OhLoraService, messages

log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.chat",
    "bot.user_commands",
    "bot.memory_panel",
    "bot.feedback",
    "bot.admin",
    "bot.modlog",
)


def default_intents() -> discord.Intents:
    """Guild messages and DMs with their text; no member list (not needed, and privileged)."""
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


def user_installs() -> app_commands.AppInstallationType:
    """The tree's default installs: with a server, and by a user for themselves."""
    return app_commands.AppInstallationType(guild=True, user=True)


def every_context() -> app_commands.AppCommandContext:
    """The tree's default contexts: servers, the bot's DM, and group DMs / other DMs."""
    return app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)


def shard_options(config: BotConfig) -> dict[str, Any]:
    """`AutoShardedBot`'s shard arguments; none: Discord's recommended count, all here."""
    if config.shard_count is None:
        return {}
    options: dict[str, Any] = {"shard_count": config.shard_count}
    if config.shard_ids is not None:
        options["shard_ids"] = list(config.shard_ids)
    return options


@runtime_checkable
class Accepting(Protocol):
    """A cog that takes work (the chat): a shutdown stops it and waits for what runs."""

    def stop_accepting(self) -> None: ...
    async def wait_idle(self) -> None: ...


class OhLoraBot(commands.AutoShardedBot):
    """Hosts Oh-LoRA on Discord; one instance per process.

    Sharded as discord.py's `AutoShardedBot`: without a shard count, Discord's recommended
    number of shards all run here; with `shard_count` and `shard_ids` (OHLORA_SHARD_COUNT,
    OHLORA_SHARD_IDS), several processes on one PostgreSQL database split the guilds. Discord
    sends DMs to shard 0 only, so the process holding shard 0 serves the DMs.
    """

    def __init__(
        self,
        service: OhLoraService,
        config: BotConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        intents: discord.Intents | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,  # unused: every command is a slash command
            intents=intents or default_intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),  # a reply never pings anyone
            # User-installable: by default a command is offered to server and user installs,
            # in servers, her DM and group DMs (so `/memory` works without a shared server);
            # admin, settings and moderator commands narrow this (`bot.admin.server_only`).
            allowed_installs=user_installs(),
            allowed_contexts=every_context(),
            **{**shard_options(config), **options},
        )
        self.service = service
        self.config = config
        self.clock = clock or service.clock
        self.tree.error(self.on_app_command_error)

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.config.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d slash commands", len(synced))

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: chat is the ChatCog's listener, commands are slash commands."""

    async def on_ready(self) -> None:
        log.info(
            "connected as %s (%s) to %d guilds on shards %s of %s",
            self.user,
            getattr(self.user, "id", "?"),
            len(self.guilds),
            sorted(self.shards),
            self.shard_count,
        )

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """A refused check says so; anything else is logged and the user gets a short apology."""
        if isinstance(error, app_commands.CheckFailure):
            message = messages.REFUSED
        else:
            log.error("slash command failed", exc_info=error)
            message = messages.COMMAND_FAILED
        await send_private(interaction, message)

    async def delete_user_data(self, user_id: int) -> DeletionReport:
        """Red-DiscordBot's data-deletion hook: every cog drops what it holds for the user, then
        the service deletes memories, summaries and turns (sanctions and the audit log stay)
        once the user's running turn and its background roles are done."""
        for cog in self.cogs.values():
            hook = getattr(cog, "delete_data_for_user", None)
            if hook is not None:
                await hook(user_id)
        return await self.service.forget_me(str(user_id))

    async def shutdown(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop taking messages, let running turns answer, then close the gateway."""
        for cog in self.cogs.values():
            if isinstance(cog, Accepting):
                cog.stop_accepting()
                try:
                    await asyncio.wait_for(cog.wait_idle(), grace_s)
                except TimeoutError:
                    log.warning("shutdown: turns still running after %.0f s", grace_s)
        await self.service.drain()
        await self.close()
