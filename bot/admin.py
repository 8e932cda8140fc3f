"""Admin slash commands: /sanctions, /unban, /sanction-log. Every use is audited.

Admins are the configured user ids (everywhere) and members with Moderate Members in a guild,
for users of that guild only. Everyone else is refused by an `app_commands.check` before the
command body runs, so a refusal changes nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import send_private
from bot.render import NO_SANCTIONS, audit_line, listing, sanction_line

if TYPE_CHECKING:
    from bot.client import OhLoraBot

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 300
NOT_YOUR_GUILD = "이 서버의 멤버에 대해서만 관리할 수 있어요. 아무것도 바뀌지 않았어요."


def is_global_admin(interaction: discord.Interaction) -> bool:
    bot: OhLoraBot = interaction.client  # type: ignore[assignment]
    return interaction.user.id in bot.config.admin_ids


def is_admin(interaction: discord.Interaction) -> bool:
    """A configured admin, or a guild member allowed to time out members (Moderate Members)."""
    if is_global_admin(interaction):
        return True
    return interaction.guild is not None and interaction.permissions.moderate_members


def may_manage(interaction: discord.Interaction, user: discord.User | discord.Member) -> bool:
    """Guild moderators manage members of their own guild; configured admins anyone."""
    if is_global_admin(interaction):
        return True
    return isinstance(user, discord.Member) and user.guild.id == interaction.guild_id


class AdminCog(commands.Cog, name="Admin"):
    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self.repo = bot.repo

    @app_commands.command(name="sanctions", description="(관리자) 사용자의 경고·차단 기록")
    @app_commands.describe(user="기록을 볼 사용자")
    @app_commands.check(is_admin)
    async def sanctions(self, interaction: discord.Interaction, user: discord.User) -> None:
        if not may_manage(interaction, user):
            await send_private(interaction, NOT_YOUR_GUILD)
            return
        now = self.bot.clock()
        history = await self.repo.sanction_history(str(user.id))
        await self.repo.audit(str(interaction.user.id), "view_sanctions", str(user.id),
                              f"rows={len(history)}", now)
        lines = [sanction_line(r, self.bot.config.tz, now) for r in reversed(history)]
        await send_private(interaction, f"**{user.display_name}** 의 기록\n" + listing(lines, NO_SANCTIONS))

    @app_commands.command(name="unban", description="(관리자) 사용자의 차단 해제")
    @app_commands.describe(user="차단을 풀 사용자", reason="해제 사유 (감사 기록에 남아요)")
    @app_commands.check(is_admin)
    async def unban(self, interaction: discord.Interaction, user: discord.User,
                    reason: app_commands.Range[str, 1, MAX_REASON_CHARS]) -> None:
        if not may_manage(interaction, user):
            await send_private(interaction, NOT_YOUR_GUILD)
            return
        lifted = await self.repo.lift_blocks(str(user.id), str(interaction.user.id), reason,
                                             self.bot.clock())
        log.info("admin %s lifted %d blocks of %s", interaction.user.id, lifted, user.id)
        text = (f"{user.display_name} 의 차단 {lifted}건을 해제했어요." if lifted
                else f"{user.display_name} 은(는) 차단 중이 아니에요. (감사 기록에 남겼어요)")
        await send_private(interaction, text)

    @app_commands.command(name="sanction-log", description="(관리자) 최근 제재와 관리자 조치")
    @app_commands.check(is_admin)
    async def sanction_log(self, interaction: discord.Interaction) -> None:
        now = self.bot.clock()
        await interaction.response.defer(ephemeral=True, thinking=True)
        sanctions = await self.repo.recent_sanctions()
        audit = await self.repo.recent_audit()
        if not is_global_admin(interaction):
            members = await self._guild_members(
                interaction, {s.user_id for s in sanctions} | {a.target_user_id for a in audit
                                                               if a.target_user_id})
            sanctions = [s for s in sanctions if s.user_id in members]
            audit = [a for a in audit if a.target_user_id in members]
        await self.repo.audit(str(interaction.user.id), "view_log", None,
                              f"guild={interaction.guild_id}", now)
        tz = self.bot.config.tz
        text = ("**최근 제재**\n" + listing([sanction_line(s, tz, now, with_user=True)
                                            for s in sanctions], "없음", limit=10)
                + "\n**관리자 조치**\n" + listing([audit_line(a, tz) for a in audit], "없음", limit=10))
        await send_private(interaction, text)

    async def _guild_members(self, interaction: discord.Interaction, user_ids: set[str]) -> set[str]:
        """Which of these users are members of the interaction's guild (asked from Discord)."""
        guild = interaction.guild
        if guild is None:
            return set()
        members = set()
        for uid in user_ids:
            if not uid.isdigit():
                continue
            if guild.get_member(int(uid)) is not None:
                members.add(uid)
                continue
            try:
                await guild.fetch_member(int(uid))
                members.add(uid)
            except discord.NotFound:
                pass
        return members
