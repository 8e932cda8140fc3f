"""A real OhLoRA bot (tiny models, real engine and storage) connected to the fake Discord."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.client import OhLoraBot
from bot.config import BotConfig
from engine.api import OhLoraService, Settings, build_engine
from engine.pipeline import Engine
from engine.runtime.attempts import Attempt
from storage import Repository
from tests.bot.fake_discord import CHAT_CHANNEL, FakeDiscord

SEOUL = ZoneInfo("Asia/Seoul")
WEDNESDAY_2PM = datetime(2026, 11, 25, 14, 0, tzinfo=SEOUL)
ADMIN = {
    "id": "900000000000002100",
    "username": "admin",
    "discriminator": "0",
    "global_name": "관리자",
    "avatar": None,
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CountingBackend:
    """The real tiny backend, counting the turns that reach the reply model (a blocked user must
    cause none): `replies_made` counts new reply rows, not the `Attempt` rows that go on with a
    turn's reply (the next chunk of a long one, or a retry of one the format check turned down),
    whose number depends on what the small model samples.

    A test may hold the reply model (`gate`) to send messages while a turn runs, or ask for
    a long reply (`repeat_to`: the real reply repeated to that length) to exercise splitting.
    """

    # It wraps `replies`, so reply rows must not ride in the mixed reply+summary batches.
    mixes_roles = False

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.replies_made = 0
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        self.repeat_to: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def replies(self, rows: list[Any]) -> list[str]:
        self.replies_made += sum(not isinstance(row, Attempt) for row in rows)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(60), "the test never released the reply model"
        texts = self.inner.replies(rows)
        if self.repeat_to:
            texts = [
                " ".join([t] * (self.repeat_to // (len(t) + 1) + 1))[: self.repeat_to]
                for t in texts
            ]
        return texts


@dataclass
class Running:
    fake: FakeDiscord
    bot: OhLoraBot
    service: OhLoraService
    repo: Repository
    clock: Clock
    backend: CountingBackend

    @property
    def engine(self) -> Engine:
        return self.service.engine


def bot_settings(**overrides: Any) -> Settings:
    """The service's settings as the tests run it: no `.env`, Seoul time, ADMIN a global
    admin, CHAT_CHANNEL a chat channel; every other value the default."""
    values: dict[str, Any] = {
        "timezone": "Asia/Seoul",
        "admin_ids": frozenset({int(ADMIN["id"])}),
        "chat_channel_ids": frozenset({int(CHAT_CHANNEL)}),
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def running(fake: FakeDiscord, repo: Repository, tiny_backend: Any) -> AsyncIterator[Running]:
    async with bot_on(fake, repo, tiny_backend, bot_settings()) as started:
        yield started


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    """Settings `toy_running` changes (a test parametrizes this name to change them)."""
    return {}


@pytest.fixture
async def toy_running(
    fake: FakeDiscord, repo: Repository, toy_backend: Any, bot_overrides: dict[str, Any]
) -> AsyncIterator[Running]:
    """`running` over the toy models (loaded in seconds): for the Discord plumbing, where what
    the models say does not matter (a test stubs the ethics role when it needs a verdict)."""
    async with bot_on(fake, repo, toy_backend, bot_settings(**bot_overrides)) as started:
        yield started


@asynccontextmanager
async def bot_on(
    fake: FakeDiscord, repo: Repository, inner: Any, settings: Settings
) -> AsyncIterator[Running]:
    """The bot over `inner` (a backend), connected to `fake`, shut down afterwards."""
    clock = Clock(WEDNESDAY_2PM)
    backend = CountingBackend(inner)
    async with build_engine(settings, clock=clock, backend=backend, repo=repo) as service:
        bot = OhLoraBot(service, BotConfig.from_settings(settings), guild_ready_timeout=0.05)
        task = asyncio.create_task(bot.start("fake-token"))
        try:
            await asyncio.wait_for(bot.wait_until_ready(), 30)
            yield Running(fake, bot, service, repo, clock, backend)
        finally:
            await bot.shutdown(grace_s=30)
            await asyncio.gather(task, return_exceptions=True)


BARRIER_EVENT = "OHLORA_TEST_BARRIER"  # an event type Discord never sends; discord.py ignores it


async def settle(running: Running) -> None:
    """Wait until the bot has nothing queued or running (background roles included)."""
    from bot.chat import ChatCog

    chat = running.bot.get_cog("Chat")
    assert isinstance(chat, ChatCog)
    # A barrier down the same websocket: frames are read in order, so once the bot has seen
    # it, every event sent before it has been dispatched.
    barrier = asyncio.ensure_future(
        running.bot.wait_for(
            "socket_event_type", check=lambda kind: kind == BARRIER_EVENT, timeout=30
        )
    )
    await running.fake.dispatch(BARRIER_EVENT, {})
    await barrier
    await asyncio.wait_for(chat.wait_idle(), 60)
    await running.service.drain()
