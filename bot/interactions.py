"""Answers to interactions that every cog sends: private (ephemeral) text and confirmations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.config import CONFIRM_TIMEOUT_S
from bot.text import DISCORD_MESSAGE_LIMIT
from engine.api import messages

CONFIRM_LABEL = "지우기"
CANCEL_LABEL = "취소"
# Custom events (`bot.dispatch`) the moderation cog listens to, so the cogs that create cases
# need not import it: `on_ohlora_case(case)` posts a case to the mod-logs; a chat turn that
# ended in a warning or block sends `on_ohlora_sanction(result, message)`.
CASE_EVENT = "ohlora_case"
SANCTION_EVENT = "ohlora_sanction"


async def send_private(interaction: discord.Interaction, content: str, **kwargs: Any) -> None:
    """An ephemeral answer, whether or not the interaction was already answered."""
    if len(content) > DISCORD_MESSAGE_LIMIT:
        content = content[: DISCORD_MESSAGE_LIMIT - 1] + "…"
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)


async def owner_only(interaction: discord.Interaction, owner_id: int) -> bool:
    """A view's buttons answer only the user who ran the command; others are told so."""
    if interaction.user.id != owner_id:
        await interaction.response.send_message(messages.NOT_YOURS, ephemeral=True)
        return False
    return True


class ConfirmView(discord.ui.View):
    """A destructive action runs only after its owner presses 지우기."""

    def __init__(self, owner_id: int, action: Callable[[], Awaitable[str]]) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT_S)
        self.owner_id = owner_id
        self.action = action

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await owner_only(interaction, self.owner_id)

    @discord.ui.button(label=CONFIRM_LABEL, style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        self.stop()
        # The action may wait for the user's running turn (its background roles), longer than
        # Discord's 3 s to answer: acknowledge the press first, then edit the question.
        await interaction.response.defer()
        await interaction.edit_original_response(content=await self.action(), view=None)

    @discord.ui.button(label=CANCEL_LABEL, style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(content=messages.CANCELLED, view=None)
