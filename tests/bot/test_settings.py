"""Issue 18 item 5 on the fake Discord: `/config chat-channel` and `/config picture` change
where she answers and whether with her face, at once and after a restart, refused to anyone
who may not configure the server; and the app's installs: the user commands reach user
installs and DMs, the admin and settings commands only a server's install, in the server."""

from __future__ import annotations

from typing import Any

import pytest

from engine.api import messages
from storage import Repository
from tests.bot.conftest import Running, bot_on, bot_settings, settle
from tests.bot.fake_discord import (
    BOT,
    CHAT,
    CHAT_CHANNEL,
    DM,
    GUILD,
    HELPER_ROLE,
    JIHO,
    MINSU,
    MOD,
    FakeDiscord,
    Install,
    NotOffered,
    Sent,
    channel_option,
    option,
    role_option,
)

AS_MOD: dict[str, Any] = dict(user=MOD, channel=CHAT)  # MOD owns GUILD: every permission
AS_MEMBER: dict[str, Any] = dict(user=MINSU, channel=CHAT)
# Server install only, used in its channels only (Discord's integration_types / contexts).
GUILD_INSTALL, GUILD_CONTEXT = [0], [0]
EVERY_INSTALL, EVERY_CONTEXT = [0, 1], [0, 1, 2]
USER_COMMANDS = ("memory", "mystatus", "export-my-data")
ADMIN_COMMANDS = ("case", "config", "sanctions", "sanction-log", "unban")


async def answer(running: Running, interaction_id: str) -> Sent:
    [sent, *_] = await running.fake.wait_for(lambda: running.fake.responses(interaction_id))
    return sent


async def config(running: Running, path: str, target: str | None = None, **who: Any) -> Sent:
    """Run `/config <path>` (`target`: its channel option) and return the private answer."""
    options: list[dict[str, Any]] = []
    resolved: dict[str, Any] = {}
    if target is not None:
        opt, resolved = channel_option("channel", target)
        options.append(opt)
    iid = await running.fake.command(f"config {path}", options, resolved=resolved, **who)
    sent = await answer(running, iid)
    assert sent.ephemeral
    return sent


async def answered_in(running: Running, channel: str, text: str) -> bool:
    """Whether a plain message (no mention, no reply) in `channel` gets her answer.

    The server's routing is read first, as the bot's own cache holds it (a change dropped
    it; this read is the database's now): the bot then routes the message without waiting
    on the database, so `settle` sees its turn (settle cannot see a routing read in flight)."""
    fake = running.fake
    await running.service.moderation.chat_routing(GUILD)
    before = len(fake.in_channel(channel))
    mid = await fake.message(text, channel=channel, author=JIHO)
    await settle(running)
    return any(m.reference == mid for m in fake.in_channel(channel)[before:])


async def test_chat_channels_change_routing_at_once(toy_running: Running) -> None:
    running = toy_running
    assert not await answered_in(running, CHAT, "안녕 오로라")
    added = await config(running, "chat-channel add", CHAT, **AS_MOD)
    assert f"<#{CHAT}>" in added.content and "사건 #" in added.content
    assert await answered_in(running, CHAT, "이제 여기서도 대답해?")
    # the environment's chat channel, turned off for this server
    assert await answered_in(running, CHAT_CHANNEL, "여기는?")
    removed = await config(running, "chat-channel remove", CHAT_CHANNEL, **AS_MOD)
    assert f"<#{CHAT_CHANNEL}>" in removed.content
    assert not await answered_in(running, CHAT_CHANNEL, "이제는 안 돼?")
    # a mention still reaches her there
    fake = running.fake
    mid = await fake.message(
        f"<@{BOT['id']}> 불러도 돼?", channel=CHAT_CHANNEL, author=JIHO, mentions=(BOT,)
    )
    await fake.wait_for(lambda: any(m.reference == mid for m in fake.in_channel(CHAT_CHANNEL)))

    listed = await config(running, "chat-channel list", **AS_MOD)
    assert f"<#{CHAT}>" in listed.content and messages.CHAT_CHANNELS_TITLE in listed.content
    shown = await config(running, "show", **AS_MOD)
    assert f"<#{CHAT}>" in shown.content and "얼굴 그림: 켜짐" in shown.content
    again = await config(running, "chat-channel add", CHAT, **AS_MOD)
    assert again.content == messages.NOTHING_CHANGED


async def test_the_picture_setting_flips_the_routing(toy_running: Running) -> None:
    running, moderation = toy_running, toy_running.service.moderation
    assert (await moderation.chat_routing(GUILD)).expression_picture
    iid = await running.fake.command("config picture", [option("state", "off")], **AS_MOD)
    sent = await answer(running, iid)
    assert "얼굴 그림을 붙이지 않아요" in sent.content and "사건 #" in sent.content
    assert not (await moderation.chat_routing(GUILD)).expression_picture
    shown = await config(running, "show", **AS_MOD)
    assert "얼굴 그림: 꺼짐" in shown.content


async def test_settings_survive_a_restart(
    fake: FakeDiscord, repo: Repository, toy_backend: Any
) -> None:
    settings = bot_settings()
    async with bot_on(fake, repo, toy_backend, settings) as first:
        await config(first, "chat-channel add", CHAT, **AS_MOD)
        await config(first, "chat-channel remove", CHAT_CHANNEL, **AS_MOD)
        await answer(
            first, await fake.command("config picture", [option("state", "off")], **AS_MOD)
        )
    async with bot_on(fake, repo, toy_backend, settings) as second:
        routing = await second.service.moderation.chat_routing(GUILD)
        assert routing.chat_channel_ids == {CHAT} and not routing.expression_picture
        assert await answered_in(second, CHAT, "다시 켜졌어?")
        assert not await answered_in(second, CHAT_CHANNEL, "여기는 아니지?")


def _writes() -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    chat, chats = channel_option("channel", CHAT)
    listed, listeds = channel_option("channel", CHAT_CHANNEL)
    return [
        ("config chat-channel add", [chat], chats),
        ("config chat-channel remove", [listed], listeds),
        ("config picture", [option("state", "off")], {}),
    ]


@pytest.mark.parametrize(("path", "options", "resolved"), _writes(), ids=lambda v: str(v)[:30])
async def test_a_non_admin_is_refused_and_nothing_changes(
    toy_running: Running, path: str, options: list[dict[str, Any]], resolved: dict[str, Any]
) -> None:
    running, fake = toy_running, toy_running.fake
    role, roles = role_option("role", HELPER_ROLE, GUILD)
    await answer(
        running, await fake.command("config mod-role add", [role], resolved=roles, **AS_MOD)
    )
    audit = await running.repo.recent_audit()
    routing = await running.service.moderation.chat_routing(GUILD)

    member = await answer(
        running, await fake.command(path, options, resolved=resolved, **AS_MEMBER)
    )
    assert member.content == messages.REFUSED and member.ephemeral
    # a moderator role moderates, but does not configure the server
    fake.member_roles[(GUILD, MINSU["id"])] = [HELPER_ROLE]
    helper = await answer(
        running, await fake.command(path, options, resolved=resolved, **AS_MEMBER)
    )
    assert helper.content == messages.CONFIG_REFUSED and helper.ephemeral

    assert await running.repo.recent_audit() == audit
    assert await running.service.moderation.chat_routing(GUILD) == routing
    assert not await answered_in(running, CHAT, "바뀐 거 없지?")
    assert await answered_in(running, CHAT_CHANNEL, "여기는 그대로지?")


# ---- installs ------------------------------------------------------------------------------
async def test_user_commands_reach_user_installs_and_admin_commands_stay_in_the_server(
    toy_running: Running,
) -> None:
    fake = toy_running.fake
    synced = {c["name"]: c for c in fake.commands if c.get("type", 1) == 1}
    users = [name for name in USER_COMMANDS if name in synced]
    assert "memory" in users and "mystatus" in users
    for name in users:
        assert synced[name]["integration_types"] == EVERY_INSTALL, name
        assert synced[name]["contexts"] == EVERY_CONTEXT, name
    for name in ADMIN_COMMANDS:
        assert synced[name]["integration_types"] == GUILD_INSTALL, name
        assert synced[name]["contexts"] == GUILD_CONTEXT, name
    groups = {o["name"]: o for o in synced["config"]["options"]}
    assert {o["name"] for o in groups["chat-channel"]["options"]} == {"add", "remove", "list"}
    assert "picture" in groups


async def test_a_user_install_never_reaches_an_admin_command(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    # her DM through the user install: /mystatus answers
    status = await answer(running, await fake.slash("mystatus", channel=DM, install=Install.USER))
    assert status.ephemeral and status.content
    chat, chats = channel_option("channel", CHAT)
    audit = await running.repo.recent_audit()
    for path, options, resolved in [
        ("config chat-channel add", [chat], chats),
        ("config show", [], {}),
    ]:
        with pytest.raises(NotOffered):
            await fake.command(path, options, resolved=resolved, install=Install.USER, **AS_MOD)
        with pytest.raises(NotOffered):  # nor a DM, whatever the install
            await fake.command(path, options, resolved=resolved, user=MOD, channel=DM)
    for name in ("sanctions", "sanction-log", "unban", "case"):
        with pytest.raises(NotOffered):
            await fake.slash(name, install=Install.USER, **AS_MOD)
    assert await running.repo.recent_audit() == audit


MANAGE_GUILD = 1 << 5  # Discord's Manage Server permission bit


async def test_manage_server_configures_but_does_not_moderate(toy_running: Running) -> None:
    """The issue's "Manage Server, or the configured admins": Manage Server sets the bot up
    (and reads its settings) without seeing anyone's sanctions."""
    running = toy_running
    owner: dict[str, Any] = dict(user=JIHO, channel=CHAT, permissions=MANAGE_GUILD)
    added = await config(running, "chat-channel add", CHAT, **owner)
    assert f"<#{CHAT}>" in added.content and "사건 #" in added.content
    assert CHAT in (await running.service.moderation.chat_routing(GUILD)).chat_channel_ids
    listed = await config(running, "chat-channel list", **owner)
    assert f"<#{CHAT}>" in listed.content
    iid = await running.fake.slash("sanctions", target=MINSU, **owner)
    assert (await answer(running, iid)).content == messages.REFUSED
