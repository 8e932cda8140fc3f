"""Slash commands for everyone: /help, /forget, /reset, /mystatus, /forget-me (`/memory`, the
memory panel, is `bot.memory_panel`'s).

Everything here is about the caller's own data, so every answer is ephemeral. Parsing and
answers are the service's and the catalogue's, shared with the console.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import ConfirmView, send_private
from engine.api import FORGET_ALL, messages, parse_forget_target

if TYPE_CHECKING:
    from bot.client import OhLoraBot

MAX_AUTOCOMPLETE = 25  # Discord's limit on choices


class UserCog(commands.Cog, name="User"):
    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self.service = bot.service

    @app_commands.command(name="help", description="오로라와 대화하는 법과 명령어")
    async def help(self, interaction: discord.Interaction) -> None:
        await send_private(interaction, messages.HELP)

    @app_commands.command(name="forget", description="오로라의 기억 하나 또는 전부(all) 지우기")
    @app_commands.describe(item="지울 기억의 이름 (예: 좋아하는 가수) 또는 all")
    async def forget(self, interaction: discord.Interaction, item: str) -> None:
        user_id = str(interaction.user.id)
        target = parse_forget_target(item)
        if target is None:
            await send_private(interaction, messages.FORGET_USAGE)
            return
        check = await self.service.check_forget(user_id, target)
        if not check.found:
            assert target.key is not None
            await send_private(interaction, messages.forget_missing(target.key))
            return

        async def action() -> str:
            return messages.forget_done(target, await self.service.forget(user_id, target))

        await send_private(
            interaction,
            messages.forget_question(target, check.count),
            view=ConfirmView(interaction.user.id, action),
        )

    @forget.autocomplete("item")
    async def forget_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        names = [FORGET_ALL] + await self.service.memory_keys(str(interaction.user.id))
        return [app_commands.Choice(name=n, value=n) for n in names if current.strip() in n][
            :MAX_AUTOCOMPLETE
        ]

    @app_commands.command(
        name="reset", description="이 채널에서의 대화 요약을 지우고 새로 시작하기"
    )
    async def reset(self, interaction: discord.Interaction) -> None:
        # The service waits for a turn still writing this summary. That can take longer than
        # Discord's 3 s to answer, so the answer is deferred first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.service.reset(str(interaction.user.id), str(interaction.channel_id))
        await send_private(interaction, messages.RESET_DONE)

    @app_commands.command(name="mystatus", description="내 경고와 차단, 만료 시각")
    async def mystatus(self, interaction: discord.Interaction) -> None:
        user_id = str(interaction.user.id)
        history = await self.service.my_status(user_id)
        decay = await self.service.moderation.decay_info(user_id)  # empty unless decay is on
        await send_private(
            interaction,
            messages.status_lines(history, self.service.tz, self.bot.clock(), decay=decay),
        )

    @app_commands.command(name="forget-me", description="나에 대한 기억과 대화 기록 모두 지우기")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        user_id = interaction.user.id

        async def action() -> str:
            return messages.forget_me_done(await self.bot.delete_user_data(user_id))

        await send_private(
            interaction, messages.FORGET_ME_QUESTION, view=ConfirmView(user_id, action)
        )


async def setup(bot: OhLoraBot) -> None:
    """discord.py's extension entry point (`bot.load_extension("bot.user_commands")`)."""
    await bot.add_cog(UserCog(bot))
