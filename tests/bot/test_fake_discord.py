"""The fake Discord's files, selects, context menus and installs, driven by a bare discord.py
client (no engine): what the bot's tests rely on must be what discord.py really sends."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.bot.fake_discord import (
    CHAT,
    DM,
    MINSU,
    OUTSIDE_CHAT,
    PRIVATE,
    FakeDiscord,
    Install,
    NotOffered,
    Sent,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"face" * 10
OTHER = b"\x89PNG\r\n\x1a\n" + b"other" * 10
DESCRIPTION = "눈: 크게 뜸, 입: 살짝 벌림, 고개: 정면"


def png(data: bytes = PNG, name: str = "face.png") -> discord.File:
    return discord.File(io.BytesIO(data), filename=name, description=DESCRIPTION)


class Flavours(discord.ui.View):
    @discord.ui.select(
        custom_id="flavour",
        options=[discord.SelectOption(label=v, value=v) for v in ("딸기", "포도", "귤")],
        max_values=2,
    )
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select[Any]) -> None:
        await interaction.response.edit_message(content=",".join(select.values), view=None)


class Probe(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents(guilds=True))
        self.tree = app_commands.CommandTree(self)
        self.channel_message: discord.Message | None = None

        @self.tree.command(name="face")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
        async def face(interaction: discord.Interaction) -> None:
            embed = discord.Embed(description="안녕").set_image(url="attachment://face.png")
            await interaction.response.send_message(embed=embed, file=png(), ephemeral=True)
            await interaction.followup.send(file=png(OTHER, "other.png"), ephemeral=True)
            owners = ",".join(str(k) for k in sorted(interaction._integration_owners))
            await interaction.edit_original_response(content=owners, attachments=[])

        @self.tree.command(name="admin")
        @app_commands.guild_only()
        @app_commands.guild_install()
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("관리", ephemeral=True)

        @self.tree.command(name="pick")
        async def pick(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("골라", view=Flavours())

        @self.tree.context_menu(name="왜?")
        @app_commands.allowed_installs(guilds=True, users=True)
        async def why(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(
                f"{message.author.id}:{message.content}", ephemeral=True
            )

    async def setup_hook(self) -> None:
        await self.tree.sync()


@pytest.fixture
async def probe(fake: FakeDiscord) -> AsyncIterator[Probe]:
    client = Probe()
    task = asyncio.create_task(client.start("fake-token"))
    await asyncio.wait_for(client.wait_until_ready(), 30)
    yield client
    await client.close()
    await asyncio.gather(task, return_exceptions=True)


async def answers(fake: FakeDiscord, iid: str, count: int = 1) -> list[Sent]:
    return await fake.wait_for(lambda: len(fake.responses(iid)) >= count and fake.responses(iid))


async def edited(fake: FakeDiscord, sent: Sent) -> str:
    return str(await fake.wait_for(lambda: sent.content))


async def test_files_ride_multipart_and_a_patch_keeps_only_the_listed_attachments(
    fake: FakeDiscord, probe: Probe
) -> None:
    iid = await fake.slash("face", channel=CHAT)
    first, followup = await answers(fake, iid, 2)
    await fake.wait_for(lambda: first.content)  # edited: content set, attachments dropped
    assert first.channel_id == CHAT and first.ephemeral
    assert first.embeds[0]["image"]["url"] == "attachment://face.png"
    assert first.attachments == [] and first.content == "0"  # the guild's install
    [other] = followup.attachments
    assert (other.filename, other.data, other.content_type) == ("other.png", OTHER, "image/png")
    assert other.description == DESCRIPTION


async def test_a_channel_message_keeps_its_file_until_an_edit_replaces_it(
    fake: FakeDiscord, probe: Probe
) -> None:
    channel = probe.get_partial_messageable(int(CHAT))
    sent = await channel.send("사진", file=png())
    stored = fake.messages[str(sent.id)]
    face = stored.attachment("face.png")
    assert face is not None and face.data == PNG
    assert sent.attachments[0].filename == "face.png"  # discord.py parsed the answer
    kept = await sent.edit(content="또", attachments=[*sent.attachments, png(OTHER, "b.png")])
    assert [f.filename for f in stored.attachments] == ["face.png", "b.png"]
    await kept.edit(attachments=[kept.attachments[1]])
    assert [f.data for f in stored.attachments] == [OTHER]


async def test_a_user_install_reaches_user_commands_everywhere_and_never_guild_ones(
    fake: FakeDiscord, probe: Probe
) -> None:
    for channel in (DM, PRIVATE, OUTSIDE_CHAT, CHAT):
        iid = await fake.slash("face", channel=channel, install=Install.USER)
        [first, _] = await answers(fake, iid, 2)
        assert await edited(fake, first) == "1"
    assert fake.registered("admin")["integration_types"] == [0]
    assert fake.registered("admin")["contexts"] == [0]
    with pytest.raises(NotOffered):
        await fake.slash("admin", channel=CHAT, install=Install.USER)
    with pytest.raises(NotOffered):
        await fake.slash("admin", channel=DM)
    with pytest.raises(NotOffered):  # the bot was never invited there
        await fake.slash("face", channel=OUTSIDE_CHAT)
    [ok] = await answers(fake, await fake.slash("admin", channel=CHAT))
    assert ok.content == "관리"


async def test_a_select_sends_the_picked_values_and_updates_its_message(
    fake: FakeDiscord, probe: Probe
) -> None:
    [menu] = await answers(fake, await fake.slash("pick"))
    component = fake.select_menu(menu)
    assert component is not None
    assert [o["value"] for o in component["options"]] == ["딸기", "포도", "귤"]
    with pytest.raises(AssertionError):
        await fake.select(menu, ["수박"])
    await fake.select(menu, ["포도", "귤"], custom_id="flavour")
    await fake.wait_for(lambda: menu.content == "포도,귤")
    assert menu.components == []


async def test_a_message_context_menu_resolves_her_message_and_a_users(
    fake: FakeDiscord, probe: Probe
) -> None:
    assert fake.registered("왜?", kind=3)["type"] == 3
    channel = probe.get_partial_messageable(int(DM))
    hers = fake.messages[str((await channel.send("안녕 민수야")).id)]
    [said] = await answers(fake, await fake.context_menu("왜?", hers, install=Install.USER))
    assert said.content == f"{probe.user.id}:안녕 민수야" and said.ephemeral  # type: ignore[union-attr]
    mine = await fake.message("그냥 말", channel=CHAT)
    [said] = await answers(fake, await fake.context_menu("왜?", mine, channel=CHAT))
    assert said.content == f"{MINSU['id']}:그냥 말"
