"""Regenerate and feedback under her replies (🔄 👍 👎), "왜 이렇게 답했어?", /export-my-data.

The buttons are persistent: `discord.ui.DynamicItem`s whose custom_id is their whole state
(the turn, and the user she answered), registered with `bot.add_dynamic_items`, so a press
after a restart reaches them with nothing kept in memory. The chat cog (`bot.chat`) puts them
on her latest reply to a user in a channel and takes them off the one before. What a press
may do is the engine's (`OhLoraService.feedback`): a regenerate draws a new reply for the
same turn without asking ethics again, a rating is stored for the reply that stands.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.admin import moderator
from bot.interactions import clipped, dressing_for, send_private
from engine.api import Rating, RegenerateOutcome, messages_feedback

if TYPE_CHECKING:
    from bot.client import OhLoraBot

log = logging.getLogger(__name__)

REGENERATE_TEMPLATE = r"ohlora:regen:(?P<turn>\d+):(?P<user>\d+)"
RATE_TEMPLATE = r"ohlora:rate:(?P<turn>\d+):(?P<user>\d+):(?P<rating>up|down)"
RATING_NAMES = {Rating.UP: "up", Rating.DOWN: "down"}
EXPORT_INDENT = 2


def _bot(interaction: discord.Interaction) -> OhLoraBot:
    return interaction.client  # type: ignore[return-value]


async def answered_only(interaction: discord.Interaction, user_id: int, refusal: str) -> bool:
    """Her reply's buttons answer only the user she answered; others are told so, privately."""
    if interaction.user.id != user_id:
        await send_private(interaction, refusal)
        return False
    return True


# ---- the buttons under her reply (persistent: their state is their custom_id) --------------
class RegenerateButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=REGENERATE_TEMPLATE
):
    """🔄: a new reply for the same turn, in place of this message's text."""

    def __init__(self, turn_id: int, user_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=messages_feedback.REGENERATE_LABEL,
                style=discord.ButtonStyle.secondary,
                custom_id=f"ohlora:regen:{turn_id}:{user_id}",
            )
        )
        self.turn_id = turn_id
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RegenerateButton:
        return cls(int(match["turn"]), int(match["user"]))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await answered_only(
            interaction, self.user_id, messages_feedback.REGENERATE_NOT_YOURS
        )

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = _bot(interaction)
        # A reply-model call takes longer than Discord's 3 s: acknowledge the press first
        # (the message itself is edited afterwards).
        await interaction.response.defer()
        drawn = await bot.service.feedback.regenerate(str(self.user_id), self.turn_id)
        if drawn.outcome is not RegenerateOutcome.DONE or drawn.reply is None:
            await send_private(interaction, messages_feedback.regenerate_refused(drawn.outcome))
            return
        # The old face was the old reply's: it goes with it until the new one is read.
        await interaction.edit_original_response(
            content=clipped(drawn.reply), embeds=[], attachments=[]
        )
        if drawn.background is None:
            return
        done = await drawn.background
        if done is None:
            return
        guild_id = None if interaction.guild_id is None else str(interaction.guild_id)
        dressed = await dressing_for(bot, guild_id, done.expression.render())
        if dressed is None:
            return
        try:
            await interaction.edit_original_response(embed=dressed.embed, attachments=dressed.files)
        except discord.HTTPException:
            log.warning("could not show the regenerated expression of turn %s", self.turn_id)


class RateButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=RATE_TEMPLATE):
    """👍 / 👎: a rating for the reply this message shows now."""

    def __init__(self, turn_id: int, user_id: int, rating: Rating) -> None:
        super().__init__(
            discord.ui.Button(
                label=(
                    messages_feedback.RATE_UP_LABEL
                    if rating is Rating.UP
                    else messages_feedback.RATE_DOWN_LABEL
                ),
                style=discord.ButtonStyle.secondary,
                custom_id=f"ohlora:rate:{turn_id}:{user_id}:{RATING_NAMES[rating]}",
            )
        )
        self.turn_id = turn_id
        self.user_id = user_id
        self.rating = rating

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RateButton:
        rating = Rating.UP if match["rating"] == RATING_NAMES[Rating.UP] else Rating.DOWN
        return cls(int(match["turn"]), int(match["user"]), rating)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await answered_only(interaction, self.user_id, messages_feedback.RATE_NOT_YOURS)

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        stored = await _bot(interaction).service.feedback.rate(
            str(self.user_id), self.turn_id, self.rating
        )
        await send_private(
            interaction,
            messages_feedback.rated(self.rating is Rating.UP)
            if stored
            else messages_feedback.regenerate_refused(RegenerateOutcome.NOT_FOUND),
        )


def reply_view(turn_id: int, user_id: int) -> discord.ui.View:
    """🔄 👍 👎 for one turn, pressable only by `user_id` (no timeout: they are persistent)."""
    view = discord.ui.View(timeout=None)
    view.add_item(RegenerateButton(turn_id, user_id))
    view.add_item(RateButton(turn_id, user_id, Rating.UP))
    view.add_item(RateButton(turn_id, user_id, Rating.DOWN))
    return view


# ---- the cog: "왜 이렇게 답했어?" and /export-my-data ---------------------------------------
class FeedbackCog(commands.Cog, name="Feedback"):
    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self.service = bot.service
        # A context menu cannot be a cog method (discord.py): built here, added to the tree
        # on load. Offered wherever her replies are: servers, DMs, and a user's own install.
        self.why_menu = app_commands.ContextMenu(
            name=messages_feedback.WHY_MENU_NAME,
            callback=self.why,
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=True, private_channel=True
            ),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
        )

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(RegenerateButton, RateButton)
        self.bot.tree.add_command(self.why_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.why_menu.name, type=self.why_menu.type)
        self.bot.remove_dynamic_items(RegenerateButton, RateButton)

    async def why(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Which memory or summary her reply used and when it was said (admins: the ethics
        scores and timings too); only on her replies, only for the user she answered."""
        me = self.bot.user
        turn_id = None
        if me is not None and message.author.id == me.id:
            turn_id = await self.service.feedback.turn_of_message(str(message.id))
        if turn_id is None:
            await send_private(interaction, messages_feedback.EXPLAIN_NOT_HERS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        user_id = str(interaction.user.id)
        admin = await self.service.may_moderate(moderator(interaction))
        explanation = await self.service.feedback.explain(user_id, turn_id, admin=admin)
        if explanation is None:
            await send_private(interaction, messages_feedback.EXPLAIN_NOT_YOURS)
            return
        await send_private(
            interaction, messages_feedback.explanation_lines(explanation, self.service.tz)
        )

    @app_commands.command(
        name="export-my-data", description="오로라가 저장한 내 데이터 받기 (JSON)"
    )
    async def export_my_data(self, interaction: discord.Interaction) -> None:
        """Everything stored about the caller, as a private JSON attachment."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self.service.feedback.export_user_data(str(interaction.user.id))
        blob = json.dumps(data, ensure_ascii=False, indent=EXPORT_INDENT).encode()
        if len(blob) > interaction.filesize_limit:
            await send_private(interaction, messages_feedback.EXPORT_TOO_LARGE)
            return
        await interaction.followup.send(
            messages_feedback.EXPORT_CAPTION,
            file=discord.File(io.BytesIO(blob), filename=messages_feedback.EXPORT_FILENAME),
            ephemeral=True,
        )


async def setup(bot: OhLoraBot) -> None:
    """discord.py's extension entry point (`bot.load_extension("bot.feedback")`)."""
    await bot.add_cog(FeedbackCog(bot))
