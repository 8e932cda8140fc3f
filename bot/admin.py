"""Admin slash commands: /sanctions, /unban, /sanction-log. Every use is audited.

Authority. A block is global (a blocked user is blocked everywhere), but each decision belongs
to the server it was made in (`sanctions.guild_id`; None for a DM or the console):

- a configured global admin (`OHLORA_ADMIN_IDS`) sees and lifts every decision, from any server;
- a member with Moderate Members in a server sees and lifts only that server's decisions, so a
  blocked user's own server (anyone can make one and invite the bot) lifts nothing earned
  elsewhere, and a decision made in a DM is the global admins' alone;
- nobody lifts their own block, global admins included (another admin can; a rule without an
  exception cannot be talked around);
- lifting one server's decisions leaves the others' blocks in force, and the answer says so.

Like Red-DiscordBot's moderation commands (guild-only, "bot owner or the member's permission"),
the commands are guild-only and hidden by default from members without Moderate Members
(`default_permissions`, which a server's admins may re-assign). Global admins use them in any
server the bot is in: a DM carries no member permissions, so a DM command could not be hidden
from everyone else. The authority check is an `app_commands.check`, run before the body, so a
refusal changes nothing. Nothing asks Discord for members: a decision's server is stored with it.
The commands write the audit log before answering, so each defers first (Discord's 3 s window).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import send_private
from bot.config import PAGE_ROWS, PAGER_TIMEOUT_S
from bot.render import NO_SANCTIONS, audit_line, fitting, sanction_line
from bot.text import DISCORD_MESSAGE_LIMIT
from bot.user_commands import NOT_YOURS
from storage.records import EVERYWHERE, Everywhere, GuildScope

if TYPE_CHECKING:
    from bot.client import OhLoraBot

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 300
NOT_ON_YOURSELF = (
    "자기 자신의 차단은 풀 수 없어요. 다른 관리자에게 부탁해 주세요. 아무것도 바뀌지 않았어요."
)
LIFTED = "{name} 의 차단 {count}건을 해제했어요."
STILL_BLOCKED_ELSEWHERE = "다른 곳에서 받은 차단이 남아 있어요."
NOTHING_DECIDED_HERE = "{name} 은(는) 이 서버에서 받은 차단이 없어요."
ONLY_GLOBAL_ADMINS = "다른 곳에서 받은 차단은 그곳의 관리자나 전역 관리자만 풀 수 있어요."
NOT_BLOCKED = "{name} 은(는) 차단 중이 아니에요."
AUDITED = " (감사 기록에 남겼어요)"
PREVIOUS_PAGE = "◀ 이전"
NEXT_PAGE = "다음 ▶"
NO_MORE = "더 없음"
IN_DM = "DM"
# Room left on a page for the header, the section titles and the page number.
PAGE_FRAME_CHARS = 200


class AdminAction(StrEnum):
    """Audit actions written here (`unban` itself is written by `Repository.lift_blocks`)."""

    VIEW_SANCTIONS = "view_sanctions"
    VIEW_LOG = "view_log"
    UNBAN_REFUSED = "unban_refused"


def is_global_admin(interaction: discord.Interaction) -> bool:
    bot: OhLoraBot = interaction.client  # type: ignore[assignment]
    return interaction.user.id in bot.config.admin_ids


def is_moderator_here(interaction: discord.Interaction) -> bool:
    """A global admin anywhere; else a member with Moderate Members in the command's server
    (Discord resolves `member.permissions` for the channel; a DM carries none)."""
    if is_global_admin(interaction):
        return True
    return interaction.guild_id is not None and interaction.permissions.moderate_members


@dataclass(frozen=True)
class Reach:
    """Whose decisions the caller sees and lifts, and where they act (the audit's server)."""

    scope: GuildScope
    guild_id: str | None

    @property
    def everywhere(self) -> bool:
        return isinstance(self.scope, Everywhere)

    @classmethod
    def of(cls, interaction: discord.Interaction) -> Reach:
        guild_id = None if interaction.guild_id is None else str(interaction.guild_id)
        if is_global_admin(interaction):
            return cls(EVERYWHERE, guild_id)
        if guild_id is None:  # `is_moderator_here` refused this already; never widen to DMs
            raise app_commands.CheckFailure("a moderator outside a server")
        return cls(guild_id, guild_id)


# ---- pages -----------------------------------------------------------------------------
Fetch = Callable[[int, int], Awaitable[Sequence[str]]]  # (offset, limit) -> rendered rows


@dataclass(frozen=True)
class Section:
    title: str
    fetch: Fetch
    empty: str


@dataclass(frozen=True)
class Page:
    text: str
    has_next: bool


class Pages:
    """Sections read page by page: each page shows up to PAGE_ROWS rows of every section, as
    many as fit in one Discord message, so no row is ever cut off between two pages."""

    def __init__(self, header: str, sections: Sequence[Section]) -> None:
        self.header = header
        self.sections = tuple(sections)
        self.starts: list[tuple[int, ...]] = [tuple(0 for _ in sections)]  # per page, per section
        self.budget = (DISCORD_MESSAGE_LIMIT - len(header) - PAGE_FRAME_CHARS) // len(sections)

    async def render(self, index: int) -> Page:
        parts = [self.header + (f" · {index + 1}쪽" if index else "")]
        nexts: list[int] = []
        more = False
        for section, start in zip(self.sections, self.starts[index], strict=True):
            rows = list(await section.fetch(start, PAGE_ROWS + 1))
            shown = fitting(rows[:PAGE_ROWS], self.budget)
            more = more or len(rows) > len(shown)
            nexts.append(start + len(shown))
            body = "\n".join(shown) or (section.empty if start == 0 else NO_MORE)
            parts.append(f"{section.title}\n{body}" if section.title else body)
        if index + 1 == len(self.starts):
            self.starts.append(tuple(nexts))
        return Page("\n".join(parts), more)


class PagerView(discord.ui.View):
    """Previous/next buttons over `Pages`; only the moderator who asked may turn them."""

    def __init__(self, owner_id: int, pages: Pages) -> None:
        super().__init__(timeout=PAGER_TIMEOUT_S)
        self.owner_id = owner_id
        self.pages = pages
        self.index = 0

    async def show(self, index: int) -> Page:
        self.index = index
        page = await self.pages.render(index)
        self.previous_page.disabled = index == 0
        self.next_page.disabled = not page.has_next
        return page

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message(NOT_YOURS, ephemeral=True)
            return False
        return True

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        page = await self.show(max(self.index + step, 0))
        await interaction.response.edit_message(content=page.text, view=self)

    @discord.ui.button(label=PREVIOUS_PAGE, style=discord.ButtonStyle.secondary)
    async def previous_page(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label=NEXT_PAGE, style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._turn(interaction, +1)


async def send_first_page(interaction: discord.Interaction, view: PagerView, first: Page) -> None:
    """The first page, with the buttons only when there is more than one."""
    if first.has_next:
        await send_private(interaction, first.text, view=view)
    else:
        view.stop()
        await send_private(interaction, first.text)


def rows_of(lines: Sequence[str]) -> Fetch:
    async def fetch(offset: int, limit: int) -> Sequence[str]:
        return lines[offset : offset + limit]

    return fetch


# ---- the commands ----------------------------------------------------------------------
class AdminCog(commands.Cog, name="Admin"):
    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self.repo = bot.repo

    def _where(self, reach: Reach, guild_id: str | None) -> str | None:
        """Where a decision was made, for the global admins (a moderator sees only theirs)."""
        if not reach.everywhere:
            return None
        if guild_id is None:
            return IN_DM
        guild = self.bot.get_guild(int(guild_id)) if guild_id.isdigit() else None
        return guild.name if guild is not None else f"서버 {guild_id}"

    @app_commands.command(name="sanctions", description="(관리자) 사용자의 경고·차단 기록")
    @app_commands.describe(user="기록을 볼 사용자")
    @app_commands.guild_only()
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.check(is_moderator_here)
    async def sanctions(self, interaction: discord.Interaction, user: discord.User) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        reach, now, tz = Reach.of(interaction), self.bot.clock(), self.bot.config.tz
        history = await self.repo.sanction_history(str(user.id), scope=reach.scope)
        lines = [
            sanction_line(r, tz, now, where=self._where(reach, r.guild_id))
            for r in reversed(history)
        ]
        pages = Pages(
            f"**{user.display_name}** 의 기록", [Section("", rows_of(lines), NO_SANCTIONS)]
        )
        view = PagerView(interaction.user.id, pages)
        first = await view.show(0)
        await self.repo.audit(
            str(interaction.user.id),
            AdminAction.VIEW_SANCTIONS,
            str(user.id),
            f"rows={len(history)}",
            now,
            guild_id=reach.guild_id,
        )
        await send_first_page(interaction, view, first)

    @app_commands.command(name="unban", description="(관리자) 사용자의 차단 해제")
    @app_commands.describe(user="차단을 풀 사용자", reason="해제 사유 (감사 기록에 남아요)")
    @app_commands.guild_only()
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.check(is_moderator_here)
    async def unban(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        reason: app_commands.Range[str, 1, MAX_REASON_CHARS],
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        reach, now = Reach.of(interaction), self.bot.clock()
        actor, target = str(interaction.user.id), str(user.id)
        if actor == target:
            await self.repo.audit(
                actor,
                AdminAction.UNBAN_REFUSED,
                target,
                f"self reason={reason}",
                now,
                guild_id=reach.guild_id,
            )
            await send_private(interaction, NOT_ON_YOURSELF)
            return
        lifted = await self.repo.lift_blocks(
            target, actor, reason, now, scope=reach.scope, guild_id=reach.guild_id
        )
        still = await self.repo.active_block(target, now) is not None
        log.info("admin %s lifted %d blocks of %s (scope %s)", actor, lifted, target, reach.scope)
        name = user.display_name
        if lifted:
            text = LIFTED.format(name=name, count=lifted)
            text += f" {STILL_BLOCKED_ELSEWHERE}" if still else ""
        elif still:
            text = f"{NOTHING_DECIDED_HERE.format(name=name)} {ONLY_GLOBAL_ADMINS}{AUDITED}"
        else:
            text = NOT_BLOCKED.format(name=name) + AUDITED
        await send_private(interaction, text)

    @app_commands.command(name="sanction-log", description="(관리자) 최근 제재와 관리자 조치")
    @app_commands.guild_only()
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.check(is_moderator_here)
    async def sanction_log(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        reach, tz = Reach.of(interaction), self.bot.config.tz

        async def decisions(offset: int, limit: int) -> list[str]:
            now = self.bot.clock()
            rows = await self.repo.recent_sanctions(scope=reach.scope, limit=limit, offset=offset)
            return [
                sanction_line(s, tz, now, with_user=True, where=self._where(reach, s.guild_id))
                for s in rows
            ]

        async def actions(offset: int, limit: int) -> list[str]:
            rows = await self.repo.recent_audit(scope=reach.scope, limit=limit, offset=offset)
            return [audit_line(a, tz, where=self._where(reach, a.guild_id)) for a in rows]

        pages = Pages(
            "**제재 기록**",
            [
                Section("**최근 제재**", decisions, "없음"),
                Section("**관리자 조치**", actions, "없음"),
            ],
        )
        view = PagerView(interaction.user.id, pages)
        first = await view.show(0)  # read before this view itself is audited
        await self.repo.audit(
            str(interaction.user.id),
            AdminAction.VIEW_LOG,
            None,
            f"guild={reach.guild_id}",
            self.bot.clock(),
            guild_id=reach.guild_id,
        )
        await send_first_page(interaction, view, first)
