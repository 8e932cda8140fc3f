"""Moderation on Discord (issue 19): mod-logs, case buttons, appeals and per-server settings.

The rules are the engine's (`engine.moderation`, reached as `service.moderation`): who may
moderate where, what a lift or an appeal decision does, what gets audited. This cog says who
asks and where, posts the numbered cases it is handed, and renders them.

- Mod-log. Every case (a warning or block Oh-LoRA decided, every admin action) is posted as an
  embed to the mod-log channel of the case's own server and, for cases about a user, of every
  server the bot shares with that user (servers that named a mod-log channel and where the bot
  sees the member). The message excerpt stays in the server it was written in.
- Buttons. Block cases carry 차단 해제 (a modal asks the reason) and 기록 보기; appeals carry
  수락 / 거절. They are `DynamicItem`s: the case or appeal id lives in the `custom_id`, so they
  work after a restart without any stored view. Every press asks the service again whether the
  presser moderates here (the buttons are visible to everyone who reads the channel).
- `/appeal` (in a server or a DM): a modal for the reason; the service allows one open appeal
  per block and a few per day. Decisions reach the user by DM.
- `/config`: the mod-log channel, DM notices, moderator roles, the chat channels (where she
  answers without a mention) and her face picture under replies (writes need Moderate Members
  or a global admin; the service decides). Stored in the database, the environment's values
  the defaults; a change applies at once (`service.moderation.chat_routing`).
- Every moderator and settings command is `server_only` (`bot.admin`): a user install of the
  app never reaches them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.admin import (
    is_configurer_here,
    is_moderator_here,
    moderator,
    send_cases,
    server_contexts,
    server_installs,
    server_only,
)
from bot.interactions import CASE_EVENT, SANCTION_EVENT, send_private
from engine.api import (
    MAX_APPEALS_PER_BLOCK,
    MAX_APPEALS_PER_DAY,
    MAX_REASON_CHARS,
    AppealNotFound,
    AppealOutcome,
    AppealRecord,
    AppealResult,
    CaseKind,
    CaseNotFound,
    CaseRecord,
    ConfigChange,
    DecideOutcome,
    NeedsServer,
    NotAllowed,
    TurnResult,
    case_guilds,
    messages,
)

if TYPE_CHECKING:
    from bot.client import OhLoraBot

log = logging.getLogger(__name__)
T = TypeVar("T")

# custom_ids: "ohlora:<what>:<id>" (Discord allows 100 characters).
LIFT_TEMPLATE = r"ohlora:lift:(?P<case>[0-9]+):(?P<user>[^:]+)"
HISTORY_TEMPLATE = r"ohlora:history:(?P<case>[0-9]+)"
APPEAL_TEMPLATE = r"ohlora:appeal:(?P<appeal>[0-9]+):(?P<verdict>accept|deny)"
# A modal lives in this process only until it is submitted or this runs out.
MODAL_TIMEOUT_S = 15 * 60
CASE_COLOURS = {
    CaseKind.WARNING: discord.Colour.orange(),
    CaseKind.BLOCK: discord.Colour.red(),
    CaseKind.LIFT: discord.Colour.green(),
    CaseKind.APPEAL_ACCEPTED: discord.Colour.green(),
    CaseKind.APPEAL_DENIED: discord.Colour.dark_grey(),
}
APPEAL_COLOUR = discord.Colour.gold()


# Where she may chat: text channels (and their threads) and forums (their posts are threads).
ChatChannelOption = discord.TextChannel | discord.ForumChannel


class Verdict(StrEnum):
    ACCEPT = "accept"
    DENY = "deny"


class Switch(StrEnum):
    """`/config dm-notice on|off`"""

    ON = "on"
    OFF = "off"


def bot_of(interaction: discord.Interaction) -> OhLoraBot:
    return interaction.client  # type: ignore[return-value]


def modlog_of(interaction: discord.Interaction) -> ModLogCog:
    cog = bot_of(interaction).get_cog(ModLogCog.__cog_name__)
    assert isinstance(cog, ModLogCog)
    return cog


async def moderators_only(interaction: discord.Interaction) -> bool:
    """A button's check, asked on every press: the service decides, and a refusal says so."""
    if await is_moderator_here(interaction):
        return True
    await send_private(interaction, messages.REFUSED)
    return False


def case_embed(case: CaseRecord, bot: OhLoraBot, *, in_guild: str | None) -> discord.Embed:
    embed = discord.Embed(
        title=messages.case_title(case),
        colour=CASE_COLOURS.get(case.kind, discord.Colour.blurple()),
        timestamp=case.created_at,
    )
    for name, value in messages.case_fields(case, bot.service.tz, in_guild=in_guild):
        if name == "장소" and case.guild_id is not None:  # the server's name where known
            guild = bot.get_guild(int(case.guild_id)) if case.guild_id.isdigit() else None
            value = guild.name if guild is not None else value
        embed.add_field(name=name, value=value, inline=len(value) < 40)
    return embed


def case_view(case: CaseRecord) -> discord.ui.View | None:
    """A block case's buttons; other cases have none."""
    if not case.is_block:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(LiftButton(case.id, case.user_id or "?"))
    view.add_item(HistoryButton(case.id))
    return view


def appeal_view(appeal_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(AppealButton(appeal_id, Verdict.ACCEPT))
    view.add_item(AppealButton(appeal_id, Verdict.DENY))
    return view


def reason_input(label: str, *, required: bool = True) -> discord.ui.TextInput[Any]:
    return discord.ui.TextInput(
        label=label,
        style=discord.TextStyle.paragraph,
        min_length=1 if required else 0,
        max_length=MAX_REASON_CHARS,
        required=required,
    )


# ---- buttons (persistent: their state is their custom_id) ---------------------------------
class LiftButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=LIFT_TEMPLATE):
    """Lifts one block case (the user id rides along only to name them in the answer)."""

    def __init__(self, case_id: int, user_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=messages.LIFT_BUTTON,
                style=discord.ButtonStyle.danger,
                custom_id=f"ohlora:lift:{case_id}:{user_id}",
            )
        )
        self.case_id = case_id
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> LiftButton:
        return cls(int(match["case"]), match["user"])

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await moderators_only(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(LiftModal(self.case_id, self.user_id, interaction.id))


class HistoryButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=HISTORY_TEMPLATE):
    def __init__(self, case_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=messages.HISTORY_BUTTON,
                style=discord.ButtonStyle.secondary,
                custom_id=f"ohlora:history:{case_id}",
            )
        )
        self.case_id = case_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> HistoryButton:
        return cls(int(match["case"]))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await moderators_only(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        cog = modlog_of(interaction)
        case = await ask(interaction, cog.moderation.case(moderator(interaction), self.case_id))
        if case is None:
            return
        await send_cases(bot_of(interaction), interaction, user_id=case.user_id)


class AppealButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=APPEAL_TEMPLATE):
    def __init__(self, appeal_id: int, verdict: Verdict) -> None:
        accept = verdict is Verdict.ACCEPT
        super().__init__(
            discord.ui.Button(
                label=messages.ACCEPT_BUTTON if accept else messages.DENY_BUTTON,
                style=discord.ButtonStyle.success if accept else discord.ButtonStyle.danger,
                custom_id=f"ohlora:appeal:{appeal_id}:{verdict}",
            )
        )
        self.appeal_id = appeal_id
        self.verdict = verdict

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> AppealButton:
        return cls(int(match["appeal"]), Verdict(match["verdict"]))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await moderators_only(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        # One quick read: an appeal out of this server's reach opens no form.
        moderation = modlog_of(interaction).moderation
        if (
            await ask(interaction, moderation.appeal_record(moderator(interaction), self.appeal_id))
            is None
        ):
            return
        await interaction.response.send_modal(
            DecideModal(self.appeal_id, self.verdict, interaction.id)
        )


def _refused(_exc: NotAllowed) -> str:
    return messages.REFUSED


async def ask(
    interaction: discord.Interaction,
    call: Awaitable[T],
    refused: Callable[[NotAllowed], str] = _refused,
) -> T | None:
    """The service's answer, or None once the presser was told privately why there is none:
    refused, or the case / appeal is missing or outside their reach."""
    try:
        return await call
    except NotAllowed as exc:
        text = refused(exc)
    except CaseNotFound:
        text = messages.CASE_NOT_FOUND
    except AppealNotFound:
        text = messages.APPEAL_NOT_FOUND
    await send_private(interaction, text)
    return None


# ---- modals -------------------------------------------------------------------------------
class LiftModal(discord.ui.Modal):
    """The lift's reason, then the lift (the service checks authority again)."""

    def __init__(self, case_id: int, user_id: str, nonce: int) -> None:
        super().__init__(
            title=messages.LIFT_MODAL_TITLE,
            custom_id=f"ohlora:lift-form:{case_id}:{nonce}",
            timeout=MODAL_TIMEOUT_S,
        )
        self.case_id = case_id
        self.user_id = user_id
        self.reason = reason_input(messages.LIFT_REASON_LABEL)
        self.add_item(self.reason)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        cog = modlog_of(interaction)
        result = await ask(
            interaction,
            cog.moderation.lift(
                moderator(interaction), reason=self.reason.value, case_number=self.case_id
            ),
        )
        if result is None:
            return
        # A mention names them (the bot's messages never ping anyone).
        await send_private(interaction, messages.lift_answer(f"<@{self.user_id}>", result))
        if result.case is not None:
            await cog.post_case(result.case)


class DecideModal(discord.ui.Modal):
    """The decision's note (it reaches the user), then the decision."""

    def __init__(self, appeal_id: int, verdict: Verdict, nonce: int) -> None:
        super().__init__(
            title=messages.DECIDE_MODAL_TITLE,
            custom_id=f"ohlora:decide-form:{appeal_id}:{verdict}:{nonce}",
            timeout=MODAL_TIMEOUT_S,
        )
        self.appeal_id = appeal_id
        self.verdict = verdict
        self.note = reason_input(messages.DECIDE_NOTE_LABEL, required=False)
        self.add_item(self.note)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        cog = modlog_of(interaction)
        decision = await ask(
            interaction,
            cog.moderation.decide_appeal(
                moderator(interaction),
                self.appeal_id,
                accept=self.verdict is Verdict.ACCEPT,
                note=self.note.value,
            ),
        )
        if decision is None:
            return
        await send_private(interaction, messages.decide_answer(decision))
        if (
            decision.outcome
            in (
                DecideOutcome.ACCEPTED,
                DecideOutcome.DENIED,
                DecideOutcome.ALREADY_DECIDED,
            )
            and interaction.message is not None
        ):
            try:  # decided: the buttons go
                await interaction.message.edit(view=None)
            except discord.HTTPException:
                log.warning("could not take the buttons off appeal %s", self.appeal_id)
        if decision.case is not None:
            await cog.post_case(decision.case)
        if decision.dm_text is not None:
            await cog.send_dm(decision.appeal.user_id, decision.dm_text)


class AppealModal(discord.ui.Modal):
    def __init__(self, nonce: int) -> None:
        super().__init__(
            title=messages.APPEAL_MODAL_TITLE,
            custom_id=f"ohlora:appeal-form:{nonce}",
            timeout=MODAL_TIMEOUT_S,
        )
        self.reason = reason_input(messages.APPEAL_REASON_LABEL)
        self.add_item(self.reason)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        cog = modlog_of(interaction)
        result = await cog.moderation.appeal(str(interaction.user.id), self.reason.value)
        await send_private(interaction, appeal_answer(result))
        if result.outcome is AppealOutcome.FILED and result.appeal is not None:
            await cog.post_appeal(result.appeal, result.block_case)


def appeal_answer(result: AppealResult) -> str:
    return messages.appeal_answer(
        result, per_day=MAX_APPEALS_PER_DAY, per_block=MAX_APPEALS_PER_BLOCK
    )


# ---- the cog ------------------------------------------------------------------------------
class ModLogCog(commands.Cog, name="ModLog"):
    config = app_commands.Group(
        name="config",
        description="(관리자) 이 서버의 오로라 관리 설정",
        guild_only=True,
        allowed_contexts=server_contexts(),  # `server_only` for a group
        allowed_installs=server_installs(),
        default_permissions=discord.Permissions(moderate_members=True),
    )
    mod_role = app_commands.Group(
        name="mod-role", description="(관리자) 관리자 역할", parent=config
    )
    chat_channel = app_commands.Group(
        name="chat-channel",
        description="(관리자) 멘션 없이도 오로라가 대답하는 채널",
        parent=config,
    )

    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self.service = bot.service
        self.moderation = bot.service.moderation

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(LiftButton, HistoryButton, AppealButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(LiftButton, HistoryButton, AppealButton)

    # ---- posting ---------------------------------------------------------------------
    async def _sees_member(self, guild: discord.Guild, user_id: int) -> bool:
        if guild.get_member(user_id) is not None:
            return True
        try:
            await guild.fetch_member(user_id)
        except discord.HTTPException:  # not a member (404), or no access (403)
            return False
        return True

    async def _modlogs_for(self, case: CaseRecord) -> dict[str, str]:
        """guild -> mod-log channel for the servers this case goes to (`case_guilds`)."""
        channels = await self.moderation.modlog_channels(str(g.id) for g in self.bot.guilds)
        shared: list[str] = []
        if case.user_id is not None and case.user_id.isdigit():
            for guild_id in channels:
                guild = self.bot.get_guild(int(guild_id))
                if guild is not None and await self._sees_member(guild, int(case.user_id)):
                    shared.append(guild_id)
        return {g: channels[g] for g in case_guilds(case, shared) if g in channels}

    async def _post(self, channel_id: str, **kwargs: Any) -> None:
        # Not cached (another shard's, or the cache lost it): a partial channel posts by id.
        channel = self.bot.get_channel(int(channel_id)) or self.bot.get_partial_messageable(
            int(channel_id)
        )
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("mod-log channel %s is not a text channel", channel_id)
            return
        try:
            await channel.send(**kwargs)
        except discord.HTTPException:
            log.exception("could not post to mod-log channel %s", channel_id)

    async def post_case(self, case: CaseRecord) -> None:
        for guild_id, channel_id in (await self._modlogs_for(case)).items():
            kwargs: dict[str, Any] = {"embed": case_embed(case, self.bot, in_guild=guild_id)}
            view = case_view(case)
            if view is not None:
                kwargs["view"] = view
            await self._post(channel_id, **kwargs)

    async def post_appeal(self, appeal: AppealRecord, block_case: CaseRecord | None) -> None:
        """To the mod-logs the block's case went to, with the accept / deny buttons."""
        if block_case is None:
            return
        embed = discord.Embed(
            title=messages.appeal_title(appeal), colour=APPEAL_COLOUR, timestamp=appeal.created_at
        )
        for name, value in messages.appeal_fields(appeal, block_case, self.service.tz):
            embed.add_field(name=name, value=value, inline=False)
        for _, channel_id in (await self._modlogs_for(block_case)).items():
            await self._post(channel_id, embed=embed, view=appeal_view(appeal.id))

    async def send_dm(self, user_id: str, text: str) -> None:
        try:
            user = self.bot.get_user(int(user_id)) or await self.bot.fetch_user(int(user_id))
            await user.send(text)
        except discord.HTTPException as exc:  # DMs closed, or the user is gone
            log.info("could not DM user %s: %s", user_id, exc)

    @commands.Cog.listener(f"on_{CASE_EVENT}")
    async def on_case(self, case: CaseRecord) -> None:
        await self.post_case(case)

    @commands.Cog.listener(f"on_{SANCTION_EVENT}")
    async def on_sanction(self, result: TurnResult, message: discord.Message) -> None:
        """A chat turn ended in a warning or block: the mod-logs, and the user's DM when the
        server asked for DM notices (their reply in the channel is public)."""
        if result.case is not None:
            await self.post_case(result.case)
        guild = message.guild
        if guild is None or result.notice is None:
            return
        if await self.moderation.dm_notice_enabled(str(guild.id)):
            await self.send_dm(
                str(message.author.id), messages.dm_notice(guild.name, result.notice)
            )

    # ---- commands --------------------------------------------------------------------
    @app_commands.command(name="case", description="(관리자) 사건 하나 보기")
    @app_commands.describe(number="사건 번호")
    @server_only
    @app_commands.default_permissions(moderate_members=True)
    @app_commands.check(is_moderator_here)
    async def case(
        self, interaction: discord.Interaction, number: app_commands.Range[int, 1]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        case = await ask(interaction, self.moderation.case(moderator(interaction), number))
        if case is None:
            return
        guild_id = None if interaction.guild_id is None else str(interaction.guild_id)
        await interaction.followup.send(
            embed=case_embed(case, self.bot, in_guild=guild_id), ephemeral=True
        )

    @app_commands.command(name="appeal", description="차단이 잘못되었다고 생각될 때 이의 신청")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def appeal(self, interaction: discord.Interaction) -> None:
        """Opens the form at once (a modal must be the first answer); the service decides on
        submit whether there is a block to appeal and whether the limits allow it."""
        if not await self._blocked(str(interaction.user.id)):
            await send_private(interaction, appeal_answer(AppealResult(AppealOutcome.NOT_BLOCKED)))
            return
        await interaction.response.send_modal(AppealModal(interaction.id))

    async def _blocked(self, user_id: str) -> bool:
        now = self.bot.clock()
        return any(
            r.is_block and r.lifted_at is None and r.expires_at > now
            for r in await self.service.my_status(user_id)
        )

    # ---- /config ---------------------------------------------------------------------
    async def _configure(
        self, interaction: discord.Interaction, change: ConfigChange | None, text: str
    ) -> None:
        await send_private(interaction, text)
        if change is not None and change.case is not None:
            await self.post_case(change.case)

    @config.command(name="modlog", description="(관리자) 관리 기록(mod-log) 채널 (비우면 끄기)")
    @app_commands.describe(channel="사건을 올릴 채널")
    @app_commands.check(is_configurer_here)
    async def config_modlog(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        channel_id = None if channel is None else str(channel.id)
        change = await ask(
            interaction,
            self.moderation.set_modlog_channel(moderator(interaction), channel_id),
            refusal,
        )
        if change is None:
            return
        await self._configure(interaction, change, messages.config_answer(change))

    @config.command(name="dm-notice", description="(관리자) 경고·차단을 DM으로도 알리기")
    @app_commands.describe(state="on: 알림 켜기, off: 끄기")
    @app_commands.check(is_configurer_here)
    async def config_dm_notice(self, interaction: discord.Interaction, state: Switch) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        change = await ask(
            interaction,
            self.moderation.set_dm_notice(moderator(interaction), state is Switch.ON),
            refusal,
        )
        if change is None:
            return
        await self._configure(interaction, change, messages.config_answer(change))

    @config.command(name="show", description="(관리자) 이 서버의 설정 보기")
    @app_commands.check(is_configurer_here)
    async def config_show(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        who = moderator(interaction)
        settings = await ask(interaction, self.moderation.guild_settings(who), refusal)
        if settings is None:
            return
        channels = await ask(interaction, self.moderation.chat_channels(who), refusal)
        if channels is None:
            return
        picture = self.moderation.expression_picture_of(settings)
        await send_private(
            interaction, messages.server_settings_answer(settings, channels, picture=picture)
        )

    @config.command(name="picture", description="(관리자) 답장에 오로라의 얼굴 그림 붙이기")
    @app_commands.describe(state="on: 그림 붙이기, off: 글로만")
    @app_commands.check(is_configurer_here)
    async def config_picture(self, interaction: discord.Interaction, state: Switch) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        enabled = state is Switch.ON
        change = await ask(
            interaction,
            self.moderation.set_expression_picture(moderator(interaction), enabled),
            refusal,
        )
        if change is None:
            return
        await self._configure(interaction, change, messages.picture_answer(change, enabled=enabled))

    @chat_channel.command(name="add", description="(관리자) 채팅 채널 추가 (멘션 없이도 대답)")
    @app_commands.describe(channel="오로라가 모든 메시지에 대답할 채널 (스레드 포함)")
    @app_commands.check(is_configurer_here)
    async def chat_channel_add(
        self, interaction: discord.Interaction, channel: ChatChannelOption
    ) -> None:
        await self._chat_channel(interaction, str(channel.id), added=True)

    @chat_channel.command(name="remove", description="(관리자) 채팅 채널 빼기")
    @app_commands.describe(channel="멘션하거나 답장할 때만 대답하게 할 채널")
    @app_commands.check(is_configurer_here)
    async def chat_channel_remove(
        self, interaction: discord.Interaction, channel: ChatChannelOption
    ) -> None:
        await self._chat_channel(interaction, str(channel.id), added=False)

    async def _chat_channel(
        self, interaction: discord.Interaction, channel_id: str, *, added: bool
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        who = moderator(interaction)
        write = self.moderation.add_chat_channel if added else self.moderation.remove_chat_channel
        change = await ask(interaction, write(who, channel_id), refusal)
        if change is None:
            return
        await self._configure(
            interaction, change, messages.chat_channel_answer(channel_id, change, added=added)
        )

    @chat_channel.command(name="list", description="(관리자) 채팅 채널 목록")
    @app_commands.check(is_configurer_here)
    async def chat_channel_list(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        channels = await ask(
            interaction, self.moderation.chat_channels(moderator(interaction)), refusal
        )
        if channels is None:
            return
        await send_private(interaction, messages.chat_channels_answer(channels))

    @mod_role.command(name="add", description="(관리자) 관리자 역할 추가")
    @app_commands.describe(role="오로라 관리 명령어를 쓸 수 있게 할 역할")
    @app_commands.check(is_configurer_here)
    async def mod_role_add(self, interaction: discord.Interaction, role: discord.Role) -> None:
        await self._mod_role(interaction, role, added=True)

    @mod_role.command(name="remove", description="(관리자) 관리자 역할 빼기")
    @app_commands.describe(role="뺄 역할")
    @app_commands.check(is_configurer_here)
    async def mod_role_remove(self, interaction: discord.Interaction, role: discord.Role) -> None:
        await self._mod_role(interaction, role, added=False)

    async def _mod_role(
        self, interaction: discord.Interaction, role: discord.Role, *, added: bool
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        who, role_id = moderator(interaction), str(role.id)
        write = self.moderation.add_mod_role if added else self.moderation.remove_mod_role
        change = await ask(interaction, write(who, role_id), refusal)
        if change is None:
            return
        await self._configure(
            interaction, change, messages.mod_role_answer(role_id, change, added=added)
        )

    @mod_role.command(name="list", description="(관리자) 관리자 역할 목록")
    @app_commands.check(is_configurer_here)
    async def mod_role_list(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        roles = await ask(interaction, self.moderation.mod_roles(moderator(interaction)), refusal)
        if roles is None:
            return
        await send_private(interaction, messages.mod_roles_answer(roles))


def refusal(exc: NotAllowed) -> str:
    """A configuration write a moderator role may not make, or one asked outside a server."""
    return messages.NEEDS_SERVER if isinstance(exc, NeedsServer) else messages.CONFIG_REFUSED


async def setup(bot: OhLoraBot) -> None:
    """discord.py's extension entry point (`bot.load_extension("bot.modlog")`)."""
    await bot.add_cog(ModLogCog(bot))
