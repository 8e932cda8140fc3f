"""Answers to interactions that every cog sends: private (ephemeral) text and confirmations;
and what goes under one of her replies (the expression, her face), shared by the chat and a
regenerate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot.config import CONFIRM_TIMEOUT_S
from bot.faces import FACE_FILENAME, face_file
from bot.text import DISCORD_MESSAGE_LIMIT
from engine.api import messages

if TYPE_CHECKING:
    from bot.client import OhLoraBot

CONFIRM_LABEL = "지우기"
CANCEL_LABEL = "취소"
# Custom events (`bot.dispatch`) the moderation cog listens to, so the cogs that create cases
# need not import it: `on_ohlora_case(case)` posts a case to the mod-logs; a chat turn that
# ended in a warning or block sends `on_ohlora_sanction(result, message)`.
CASE_EVENT = "ohlora_case"
SANCTION_EVENT = "ohlora_sanction"


async def send_private(interaction: discord.Interaction, content: str, **kwargs: Any) -> None:
    """An ephemeral answer, whether or not the interaction was already answered."""
    content = clipped(content)
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


# ---- her expression under a reply (the chat, and a regenerate) ------------------------------
EXPRESSION_COLOUR = discord.Colour.from_rgb(255, 214, 102)


@dataclass(frozen=True)
class Dressing:
    """What goes under a reply: the embed (the expression as its footer, for screen readers)
    and her face picture when the server shows it (the embed's image)."""

    embed: discord.Embed
    files: list[discord.File]


def expression_embed(expression: str) -> discord.Embed:
    """The reply's expression, compact, under the reply."""
    return discord.Embed(colour=EXPRESSION_COLOUR).set_footer(text=expression)


def dressing(expression: str, *, picture: bool) -> Dressing:
    """The embed for `expression`, with her face attached as `attachment://face.png` when
    `picture` is on and the expression parses (else the text alone)."""
    embed = expression_embed(expression)
    face = face_file(expression) if picture else None
    if face is None:
        return Dressing(embed, [])
    embed.set_image(url=f"attachment://{FACE_FILENAME}")
    return Dressing(embed, [face])


async def dressing_for(bot: OhLoraBot, guild_id: str | None, expression: str) -> Dressing | None:
    """What goes under a reply in this server now (None: expressions are not shown at all);
    her face when the server's routing says so (a DM: the default)."""
    if not bot.config.show_expression:
        return None
    routing = await bot.service.moderation.chat_routing(guild_id)
    return dressing(expression, picture=routing.expression_picture)


def clipped(content: str) -> str:
    """One Discord message's worth of `content` (an edit cannot split it into several)."""
    if len(content) <= DISCORD_MESSAGE_LIMIT:
        return content
    return content[: DISCORD_MESSAGE_LIMIT - 1] + "…"
