"""Admin slash commands: /sanctions, /unban, /sanction-log. Every use is audited.

The authority rules below are the service's (`OhLoraService.reach`, `.unban`); this cog says
who asks, in which server, and whether Discord gives them Moderate Members there.

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
(`default_permissions`, which a server's admins may re-assign). The app is also
user-installable (the tree's defaults, `bot.client`), so every admin, settings and moderator
command is marked `server_only`: installed with a server and used in its channels, never
offered to a user install. Global admins use them in any
server the bot is in: a DM carries no member permissions, so a DM command could not be hidden
from everyone else. The authority check is an `app_commands.check`, run before the body, so a
refusal changes nothing. Nothing asks Discord for members: a decision's server is stored with it.
The commands write the audit log before answering, so each defers first (Discord's 3 s window).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import PAGE_ROWS, PAGER_TIMEOUT_S
from bot.interactions import CASE_EVENT, owner_only, send_private
from bot.text import DISCORD_MESSAGE_LIMIT
from engine.api import Moderator, NotAllowed, Reach, messages

if TYPE_CHECKING:
    from bot.client import OhLoraBot

MAX_REASON_CHARS = 300
T = TypeVar("T")
# Admin, settings and moderator commands: a server's install, in its channels. Both values are
# spelled out in full: discord.py merges a command's values over the tree's defaults (guild and
# user installs, every context), so `guild_only()` / `guild_install()` alone (the rest unset)
# would keep the DMs and the user install.
SERVER_INSTALLS = {"guilds": True, "users": False}
SERVER_CONTEXTS = {"guilds": True, "dms": False, "private_channels": False}


def server_installs() -> app_commands.AppInstallationType:
    """A group's `allowed_installs` (a decorator does nothing on a group's subcommands)."""
    return app_commands.AppInstallationType(guild=True, user=False)


def server_contexts() -> app_commands.AppCommandContext:
    """A group's `allowed_contexts`."""
    return app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False)


def server_only(func: T) -> T:
    """A command only a server's guild install offers, only in that server's channels (what
    Discord enforces: a user install, a DM or a group DM never shows it)."""
    func = app_commands.guild_only()(func)
    func = app_commands.guild_install()(func)
    func = app_commands.allowed_installs(**SERVER_INSTALLS)(func)
    return app_commands.allowed_contexts(**SERVER_CONTEXTS)(func)


PREVIOUS_PAGE = "◀ 이전"
NEXT_PAGE = "다음 ▶"
# Room left on a page for the header, the section titles and the page number.
PAGE_FRAME_CHARS = 200


def moderator(interaction: discord.Interaction) -> Moderator:
    """Who asks, where, and whether Discord lets them moderate there (`member.permissions`
    resolved for the channel; a DM carries none)."""
    guild_id = None if interaction.guild_id is None else str(interaction.guild_id)
    in_server = guild_id is not None
    moderates = in_server and bool(interaction.permissions.moderate_members)
    manages = in_server and bool(interaction.permissions.manage_guild)
    roles = getattr(interaction.user, "roles", ())  # a Member's; a DM's User has none
    role_ids = frozenset(str(r.id) for r in roles)
    return Moderator(str(interaction.user.id), guild_id, moderates, role_ids, manages)


async def is_moderator_here(interaction: discord.Interaction) -> bool:
    """The command's check, run before its body, so a refusal changes nothing."""
    bot: OhLoraBot = interaction.client  # type: ignore[assignment]
    return await bot.service.may_moderate(moderator(interaction))


async def is_configurer_here(interaction: discord.Interaction) -> bool:
    """The `/config` commands' check: whoever may configure (Manage Server included) or
    moderate here; a moderator role that may not configure gets the service's own answer."""
    bot: OhLoraBot = interaction.client  # type: ignore[assignment]
    who = moderator(interaction)
    return bot.service.moderation.may_configure(who) or await bot.service.may_moderate(who)


async def reach_of(bot: OhLoraBot, interaction: discord.Interaction) -> Reach:
    try:
        return await bot.service.reach(moderator(interaction))
    except NotAllowed as exc:  # `is_moderator_here` refused this already
        raise app_commands.CheckFailure("not a moderator here") from exc


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
        parts = [messages.page_title(self.header, index)]
        nexts: list[int] = []
        more = False
        for section, start in zip(self.sections, self.starts[index], strict=True):
            rows = list(await section.fetch(start, PAGE_ROWS + 1))
            shown = messages.fitting(rows[:PAGE_ROWS], self.budget)
            more = more or len(rows) > len(shown)
            nexts.append(start + len(shown))
            body = "\n".join(shown) or (section.empty if start == 0 else messages.NO_MORE)
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
        return await owner_only(interaction, self.owner_id)

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        page = await self.show(max(self.index + step, 0))
        await interaction.response.edit_message(content=page.text, view=self)

    @discord.ui.button(label=PREVIOUS_PAGE, style=discord.ButtonStyle.secondary)
    async def previous_page(
        self, interaction: discord.Interaction, _: discord.ui.Button[Any]
    ) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label=NEXT_PAGE, style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
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


DATE_FORMAT = "%Y-%m-%d"  # `/sanction-log since:` and `until:`
DATE_CHARS = 10


def day_start(text: str | None, tz: tzinfo) -> datetime | None:
    """`2026-11-25`: the start of that day in the service's time zone; ValueError if not."""
    if text is None:
        return None
    return datetime.strptime(text.strip(), DATE_FORMAT).replace(tzinfo=tz)


async def send_cases(
    bot: OhLoraBot,
    interaction: discord.Interaction,
    *,
    user_id: str | None = None,
    category: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> None:
    """The numbered cases in the caller's reach, newest first, page by page (`/sanction-log`
    with filters, and a mod-log case's 기록 보기 button)."""
    who, tz = moderator(interaction), bot.service.tz

    async def cases(offset: int, limit: int) -> list[str]:
        listed = await bot.service.moderation.sanction_log(
            who,
            user_id=user_id,
            category=category,
            since=since,
            until=until,
            offset=offset,
            limit=limit,
        )
        return [messages.case_line(c, tz) for c in listed.rows]

    pages = Pages(messages.CASES_TITLE, [Section("", cases, messages.NO_CASES)])
    view = PagerView(interaction.user.id, pages)
    await send_first_page(interaction, view, await view.show(0))


# ---- the commands ----------------------------------------------------------------------
class AdminCog(commands.Cog, name="Admin"):
    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self.service = bot.service

    def _where(self, reach: Reach, guild_id: str | None) -> str | None:
        """Where a decision was made, for the global admins (a moderator sees only theirs)."""
        if not reach.everywhere:
            return None
        if guild_id is None:
            return messages.IN_DM
        guild = self.bot.get_guild(int(guild_id)) if guild_id.isdigit() else None
        return guild.name if guild is not None else messages.unknown_server(guild_id)

    @app_commands.command(name="sanctions", description="(관리자) 사용자의 경고·차단 기록")
    @app_commands.describe(user="기록을 볼 사용자")
    @server_only
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.check(is_moderator_here)
    async def sanctions(self, interaction: discord.Interaction, user: discord.User) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await reach_of(self.bot, interaction)
        who = moderator(interaction)
        listed = await self.service.sanctions_of(who, str(user.id))
        numbers = await self.service.moderation.case_numbers(
            who, {r.decision_id for r in listed.rows}
        )
        now, tz = self.bot.clock(), self.service.tz
        lines = [
            messages.sanction_line(
                r,
                tz,
                now,
                where=self._where(listed.reach, r.guild_id),
                case=numbers.get(r.decision_id),
            )
            for r in reversed(listed.rows)
        ]
        pages = Pages(
            messages.HISTORY_TITLE.format(name=user.display_name),
            [Section("", rows_of(lines), messages.NO_SANCTIONS)],
        )
        view = PagerView(interaction.user.id, pages)
        await send_first_page(interaction, view, await view.show(0))

    @app_commands.command(name="unban", description="(관리자) 사용자의 차단 해제")
    @app_commands.describe(user="차단을 풀 사용자", reason="해제 사유 (감사 기록에 남아요)")
    @server_only
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.check(is_moderator_here)
    async def unban(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        reason: app_commands.Range[str, 1, MAX_REASON_CHARS],
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await reach_of(self.bot, interaction)
        result = await self.service.unban(moderator(interaction), str(user.id), reason)
        await send_private(interaction, messages.lift_answer(user.display_name, result))
        if result.case is not None:  # to the mod-logs (bot.modlog)
            self.bot.dispatch(CASE_EVENT, result.case)

    @app_commands.command(name="sanction-log", description="(관리자) 최근 제재와 관리자 조치")
    @app_commands.describe(
        user="이 사용자의 사건만",
        category="이 분류의 사건만",
        since="이 날짜부터 (예: 2026-11-25)",
        until="이 날짜까지 (예: 2026-11-30)",
    )
    @app_commands.choices(
        category=[
            app_commands.Choice(name=messages.category_label(c), value=c)
            for c in messages.CATEGORY_CHOICES
        ]
    )
    @server_only
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.check(is_moderator_here)
    async def sanction_log(
        self,
        interaction: discord.Interaction,
        user: discord.User | None = None,
        category: str | None = None,
        since: app_commands.Range[str, DATE_CHARS, DATE_CHARS] | None = None,
        until: app_commands.Range[str, DATE_CHARS, DATE_CHARS] | None = None,
    ) -> None:
        """Without a filter: the recent decisions and admin actions; with one: the numbered
        cases that match (newest first)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await reach_of(self.bot, interaction)
        who, tz = moderator(interaction), self.service.tz
        if user is not None or category is not None or since is not None or until is not None:
            try:
                start, end = day_start(since, tz), day_start(until, tz)
            except ValueError:
                await send_private(interaction, messages.BAD_DATE)
                return
            await send_cases(
                self.bot,
                interaction,
                user_id=None if user is None else str(user.id),
                category=category,
                since=start,
                until=None if end is None else end + timedelta(days=1),  # `until` is exclusive
            )
            return

        async def decisions(offset: int, limit: int) -> list[str]:
            now = self.bot.clock()
            listed = await self.service.recent_sanctions(who, offset, limit)
            numbers = await self.service.moderation.case_numbers(
                who, {s.decision_id for s in listed.rows}
            )
            return [
                messages.sanction_line(
                    s,
                    tz,
                    now,
                    with_user=True,
                    where=self._where(listed.reach, s.guild_id),
                    case=numbers.get(s.decision_id),
                )
                for s in listed.rows
            ]

        async def actions(offset: int, limit: int) -> list[str]:
            listed = await self.service.recent_audit(who, offset, limit)
            return [
                messages.audit_line(a, tz, where=self._where(listed.reach, a.guild_id))
                for a in listed.rows
            ]

        pages = Pages(
            messages.LOG_TITLE,
            [
                Section(messages.LOG_DECISIONS, decisions, messages.NONE_YET),
                Section(messages.LOG_ACTIONS, actions, messages.NONE_YET),
            ],
        )
        view = PagerView(interaction.user.id, pages)
        first = await view.show(0)  # read before this view itself is audited
        await self.service.log_viewed(who)
        await send_first_page(interaction, view, first)


async def setup(bot: OhLoraBot) -> None:
    """discord.py's extension entry point (`bot.load_extension("bot.admin")`)."""
    await bot.add_cog(AdminCog(bot))
