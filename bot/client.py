"""The `commands.Bot` subclass: engine and config injected, cogs loaded in `setup_hook`.

Shaped after discord.py's `examples/advanced_startup.py`. The bot never touches a model or
SQL: chat goes through `Engine.handle`, data through the engine's repository API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import SHUTDOWN_GRACE_S, BotConfig
from bot.text import DISCORD_MESSAGE_LIMIT
from engine.pipeline import Engine
from storage import DeletionReport

log = logging.getLogger(__name__)

REFUSED = "이 명령어는 관리자만 쓸 수 있어요. 아무것도 바뀌지 않았어요."
COMMAND_FAILED = "명령어를 처리하지 못했어요. 잠시 후에 다시 해 주세요. 🙏"


def default_intents() -> discord.Intents:
    """Guild messages and DMs with their text; no member list (not needed, and privileged)."""
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


class OhLoraBot(commands.Bot):
    """Hosts Oh-LoRA on Discord; one instance per process."""

    def __init__(
        self,
        engine: Engine,
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
            **options,
        )
        self.engine = engine
        self.repo = engine.repo
        self.config = config
        self.clock = clock or engine.clock
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        from bot.admin import AdminCog
        from bot.chat import ChatCog
        from bot.jobs import JobsCog
        from bot.user_commands import UserCog

        for cog in (ChatCog(self), UserCog(self), AdminCog(self), JobsCog(self)):
            await self.add_cog(cog)
        if self.config.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d slash commands", len(synced))

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: chat is the ChatCog's listener, commands are slash commands."""

    async def on_ready(self) -> None:
        log.info(
            "connected as %s (%s) to %d guilds",
            self.user,
            getattr(self.user, "id", "?"),
            len(self.guilds),
        )

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """A refused check says so; anything else is logged and the user gets a short apology."""
        if isinstance(error, app_commands.CheckFailure):
            message = REFUSED
        else:
            log.error("slash command failed", exc_info=error)
            message = COMMAND_FAILED
        await send_private(interaction, message)

    async def delete_user_data(self, user_id: int) -> DeletionReport:
        """Red-DiscordBot's data-deletion hook: every cog drops what it holds for the user, then
        the engine deletes memories, summaries and turns (sanctions and the audit log stay)
        once the user's running turn and its background roles are done."""
        for cog in self.cogs.values():
            hook = getattr(cog, "delete_data_for_user", None)
            if hook is not None:
                await hook(user_id)
        return await self.engine.forget_user(str(user_id))

    async def shutdown(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop taking messages, let running turns answer, then close the gateway."""
        from bot.chat import ChatCog

        chat = self.get_cog(ChatCog.__cog_name__)
        if isinstance(chat, ChatCog):
            chat.stop_accepting()
            try:
                await asyncio.wait_for(chat.wait_idle(), grace_s)
            except TimeoutError:
                log.warning("shutdown: turns still running after %.0f s", grace_s)
        await self.engine.drain()
        await self.close()


async def send_private(interaction: discord.Interaction, content: str, **kwargs) -> None:
    """An ephemeral answer, whether or not the interaction was already answered."""
    if len(content) > DISCORD_MESSAGE_LIMIT:
        content = content[: DISCORD_MESSAGE_LIMIT - 1] + "…"
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)
