"""Slash commands for everyone: /help, /memory, /forget, /reset, /mystatus, /forget-me.

Everything here is about the caller's own data, so every answer is ephemeral.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import send_private
from bot.config import CONFIRM_TIMEOUT_S
from bot.render import NO_SANCTIONS, listing, memory_lines, sanction_line
from engine.rules.sanctions import OHLORA_EMOJI

if TYPE_CHECKING:
    from bot.client import OhLoraBot

FORGET_ALL = "all"
MAX_AUTOCOMPLETE = 25  # Discord's limit on choices
HELP = (
    f"**오로라 {OHLORA_EMOJI} 와 대화하는 법**\n"
    "• DM으로 말을 걸거나, 서버에서는 오로라를 멘션하거나 오로라의 메시지에 답장해 주세요.\n"
    "• 오로라는 대화에서 알게 된 것(일정, 좋아하는 것 등)을 기억해요.\n"
    "**명령어**\n"
    "`/memory` 오로라가 기억하는 나에 대한 것 보기\n"
    "`/forget` 기억 하나 또는 전부(all) 지우기\n"
    "`/reset` 이 채널의 대화 요약 지우기\n"
    "`/mystatus` 내 경고와 차단, 만료 시각\n"
    "`/forget-me` 나에 대한 기억과 대화 기록 모두 지우기 (경고·차단 기록은 남아요)\n"
    "사랑 고백/만남 요구, 정치 발언, 패드립은 경고나 차단을 받을 수 있어요."
)
CANCELLED = "취소했어요. 아무것도 지우지 않았어요."
NOT_YOURS = "이 버튼은 명령어를 쓴 사람만 누를 수 있어요."


class ConfirmView(discord.ui.View):
    """A destructive action runs only after its owner presses 지우기."""

    def __init__(self, owner_id: int, action: Callable[[], Awaitable[str]]) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT_S)
        self.owner_id = owner_id
        self.action = action

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message(NOT_YOURS, ephemeral=True)
            return False
        return True

    @discord.ui.button(label="지우기", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.stop()
        # The action may wait for the user's running turn (its background roles), longer than
        # Discord's 3 s to answer: acknowledge the press first, then edit the question.
        await interaction.response.defer()
        await interaction.edit_original_response(content=await self.action(), view=None)

    @discord.ui.button(label="취소", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content=CANCELLED, view=None)


class UserCog(commands.Cog, name="User"):
    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self.repo = bot.repo

    @app_commands.command(name="help", description="오로라와 대화하는 법과 명령어")
    async def help(self, interaction: discord.Interaction) -> None:
        await send_private(interaction, HELP)

    @app_commands.command(name="memory", description="오로라가 기억하는 나에 대한 것")
    async def memory(self, interaction: discord.Interaction) -> None:
        user_id = str(interaction.user.id)
        items = await self.repo.list_memories(user_id, self.bot.clock())
        engine = self.bot.engine
        await send_private(
            interaction,
            memory_lines(
                items, cap=engine.max_memory_items, evicted=engine.take_evictions(user_id)
            ),
        )

    @app_commands.command(name="forget", description="오로라의 기억 하나 또는 전부(all) 지우기")
    @app_commands.describe(item="지울 기억의 이름 (예: 좋아하는 가수) 또는 all")
    async def forget(self, interaction: discord.Interaction, item: str) -> None:
        user_id = str(interaction.user.id)
        item = item.strip().strip("[]").split(":", 1)[0].strip()
        if item.lower() == FORGET_ALL:
            count = len(await self.repo.list_memories(user_id, self.bot.clock()))
            question = f"기억 {count}개를 모두 지울까요? (경고·차단 기록은 지워지지 않아요)"

            async def action() -> str:
                removed = await self.bot.engine.forget_all_memories(user_id)
                return f"기억 {removed}개를 지웠어요."
        else:
            keys = {m.key for m in await self.repo.list_memories(user_id, self.bot.clock())}
            if item not in keys:
                await send_private(
                    interaction, f"[{item}] 이라는 기억은 없어요. `/memory` 로 확인해 주세요."
                )
                return
            question = f"[{item}] 기억을 지울까요?"

            async def action() -> str:
                removed = await self.bot.engine.forget_memory(user_id, item)
                return f"[{item}] 기억을 지웠어요." if removed else f"[{item}] 기억은 이미 없어요."

        await send_private(interaction, question, view=ConfirmView(interaction.user.id, action))

    @forget.autocomplete("item")
    async def forget_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        items = await self.repo.list_memories(str(interaction.user.id), self.bot.clock())
        names = [FORGET_ALL] + [m.key for m in items]
        return [app_commands.Choice(name=n, value=n) for n in names if current.strip() in n][
            :MAX_AUTOCOMPLETE
        ]

    @app_commands.command(
        name="reset", description="이 채널에서의 대화 요약을 지우고 새로 시작하기"
    )
    async def reset(self, interaction: discord.Interaction) -> None:
        # Through the engine: it waits for a turn still writing this summary. That can take
        # longer than Discord's 3 s to answer, so the answer is deferred first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.bot.engine.reset_conversation(
            str(interaction.user.id), str(interaction.channel_id)
        )
        await send_private(interaction, "이 채널의 대화 요약을 지웠어요. 새로 시작해요! 😊")

    @app_commands.command(name="mystatus", description="내 경고와 차단, 만료 시각")
    async def mystatus(self, interaction: discord.Interaction) -> None:
        now = self.bot.clock()
        history = await self.repo.sanction_history(str(interaction.user.id))
        lines = [sanction_line(r, self.bot.config.tz, now) for r in reversed(history)]
        await send_private(interaction, listing(lines, NO_SANCTIONS))

    @app_commands.command(name="forget-me", description="나에 대한 기억과 대화 기록 모두 지우기")
    async def forget_me(self, interaction: discord.Interaction) -> None:
        user_id = interaction.user.id

        async def action() -> str:
            report = await self.bot.delete_user_data(user_id)
            return (
                f"지웠어요: 기억 {report.memories}개, 대화 {report.turns}개, "
                f"요약 {report.conversations}개. 경고·차단 기록은 남아 있어요."
            )

        await send_private(
            interaction,
            "오로라가 기억하는 것과 대화 기록을 모두 지울까요? (경고·차단 기록은 지워지지 않아요)",
            view=ConfirmView(user_id, action),
        )
