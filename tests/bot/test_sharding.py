"""Discord sharding (issue 17): OHLORA_SHARD_COUNT / OHLORA_SHARD_IDS pick the shards of this
process's `AutoShardedBot`; each shard IDENTIFYs with `shard: [id, count]`, a guild's events
come on its shard, and DMs come on shard 0, which still answers them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from bot.client import OhLoraBot, shard_options
from bot.config import BotConfig
from engine.api import Settings, build_engine
from storage import Repository
from tests.bot.conftest import WEDNESDAY_2PM, Clock, CountingBackend, Running, bot_settings
from tests.bot.fake_discord import BOT, CHAT, DM, GUILD, JIHO_GUILD, FakeDiscord

GATEWAY_BOT = ("GET", "/gateway/bot")


def test_shard_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OHLORA_SHARD_COUNT", "4")
    monkeypatch.setenv("OHLORA_SHARD_IDS", " 3, 2 ")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.shard_count, settings.shard_ids) == (4, (2, 3))
    config = BotConfig.from_settings(settings)
    assert shard_options(config) == {"shard_count": 4, "shard_ids": [2, 3]}
    monkeypatch.delenv("OHLORA_SHARD_IDS")
    assert shard_options(BotConfig.from_settings(Settings(_env_file=None))) == {  # type: ignore[call-arg]
        "shard_count": 4
    }
    monkeypatch.delenv("OHLORA_SHARD_COUNT")
    assert shard_options(BotConfig.from_settings(Settings(_env_file=None))) == {}  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OHLORA_SHARD_IDS": "0"}, "needs OHLORA_SHARD_COUNT"),
        ({"OHLORA_SHARD_COUNT": "2", "OHLORA_SHARD_IDS": "1,2"}, "not below"),
        ({"OHLORA_SHARD_COUNT": "2", "OHLORA_SHARD_IDS": "one"}, "not a shard id"),
        ({"OHLORA_SHARD_COUNT": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_shard_settings_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], says: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=says):
        Settings(_env_file=None)  # type: ignore[call-arg]


async def test_without_a_shard_count_the_bot_runs_discords_recommended_shards(
    running: Running,
) -> None:
    assert GATEWAY_BOT in running.fake.calls  # AutoShardedBot asks Discord for the count
    assert running.fake.identified == [[0, 1]]
    assert running.bot.shard_count == 1 and sorted(running.bot.shards) == [0]


async def test_a_bot_with_shard_ids_identifies_per_shard_and_answers_a_dm_on_shard_0(
    fake: FakeDiscord, repo: Repository, tiny_backend: Any
) -> None:
    settings = bot_settings(shard_count=2, shard_ids=(0, 1))
    async with build_engine(
        settings, clock=Clock(WEDNESDAY_2PM), backend=CountingBackend(tiny_backend), repo=repo
    ) as service:
        bot = OhLoraBot(service, BotConfig.from_settings(settings), guild_ready_timeout=0.05)
        task = asyncio.create_task(bot.start("fake-token"))
        try:
            await asyncio.wait_for(bot.wait_until_ready(), 60)
            assert sorted(fake.identified) == [[0, 2], [1, 2]]  # one IDENTIFY per shard
            assert GATEWAY_BOT not in fake.calls  # the count was given: nothing to ask
            assert sorted(bot.shards) == [0, 1] and bot.shard_count == 2
            # Both guilds hash to shard 1 ((id >> 22) % 2): shard 0 carries only the DMs.
            assert {fake.shard_of(g) for g in (GUILD, JIHO_GUILD)} == {1}
            guild = bot.get_guild(int(GUILD))
            assert guild is not None and guild.shard_id == 1

            await fake.message("안녕 오로라!")  # a DM: Discord sends it on shard 0
            [reply] = await fake.wait_for(lambda: fake.in_channel(DM), timeout=120)
            assert reply.content

            await fake.message(f"<@{BOT['id']}> 안녕!", channel=CHAT, mentions=(BOT,))
            [answer] = await fake.wait_for(lambda: fake.in_channel(CHAT), timeout=120)
            assert answer.content  # the guild's message came on shard 1 and was answered
        finally:
            await bot.shutdown(grace_s=30)
            await asyncio.gather(task, return_exceptions=True)
