"""A real OhLoRA bot (tiny models, real engine and storage) connected to the fake Discord."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.client import OhLoraBot
from bot.config import BotConfig
from engine.pipeline import Engine
from engine.serving.worker import ModelWorker
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
    """The real tiny backend, counting reply-model calls (a blocked user must cause none).

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
        self.replies_made += len(rows)
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
    repo: Repository
    clock: Clock
    backend: CountingBackend


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def running(fake: FakeDiscord, repo: Repository, tiny_backend: Any) -> AsyncIterator[Running]:
    clock = Clock(WEDNESDAY_2PM)
    backend = CountingBackend(tiny_backend)
    worker = ModelWorker()
    worker.start()
    engine = Engine(
        repo,
        backend,
        worker,
        clock=clock,
        max_prompt_tokens=48,
        max_message_chars=2000,
        block_notice_cooldown=timedelta(minutes=10),
    )
    config = BotConfig(
        admin_ids=frozenset({int(ADMIN["id"])}),
        chat_channel_ids=frozenset({int(CHAT_CHANNEL)}),
        tz=SEOUL,
    )
    bot = OhLoraBot(engine, config, guild_ready_timeout=0.05)
    task = asyncio.create_task(bot.start("fake-token"))
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 30)
        yield Running(fake, bot, repo, clock, backend)
    finally:
        await bot.shutdown(grace_s=30)
        await asyncio.gather(task, return_exceptions=True)
        await worker.stop()


async def settle(running: Running) -> None:
    """Wait until the bot has nothing queued or running (background roles included)."""
    from bot.chat import ChatCog

    chat = running.bot.get_cog("Chat")
    assert isinstance(chat, ChatCog)
    await asyncio.sleep(0.3)  # let events already on the wire reach the bot
    await asyncio.wait_for(chat.wait_idle(), 60)
    await running.bot.engine.drain()
