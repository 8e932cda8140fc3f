"""`main.serve_discord` end to end: hosts on the fake Discord, and SIGTERM finishes the turn in
flight, closes the database and returns 0."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.bot.fake_discord import DM, MINSU, FakeDiscord

SECRET = "MTAxMDEwMTAxMDEw.FAKE-TOKEN"


@pytest.fixture
def settings(tiny_preset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from engine.settings import Settings

    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("OHLORA_", "DISCORD_", "DATABASE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DISCORD_TOKEN", SECRET)
    monkeypatch.setenv("OHLORA_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OHLORA_MODELS_DIR", str(tiny_preset.artifacts.parent))
    monkeypatch.setenv("OHLORA_TIMEZONE", "Asia/Seoul")
    return Settings()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_finishes_the_turn_in_flight_and_exits_0(
    fake: FakeDiscord, settings, sig: signal.Signals, caplog: pytest.LogCaptureFixture
) -> None:
    from main import prepare_storage, serve_discord
    from storage import Database, Repository, TurnStatus

    await prepare_storage(settings)
    hosting = asyncio.create_task(serve_discord(settings, guild_ready_timeout=0.05))
    await fake.connected()
    await fake.message("안녕 오로라!")
    await fake.wait_for(lambda: DM in fake.typing)  # the turn is running
    os.kill(os.getpid(), sig)
    assert await asyncio.wait_for(hosting, 60) == 0
    [reply] = fake.in_channel(DM)  # the turn in flight was answered before the bot left
    assert reply.content
    db = Database(settings.resolved_database_url)  # closed cleanly: opens again
    try:
        [turn] = await Repository(db).turns(MINSU["id"])
        assert turn.status == TurnStatus.COMPLETED and turn.reply == reply.content
        assert turn.expression  # background roles finished too
    finally:
        await db.close()
    assert SECRET not in caplog.text
    # The handlers are gone again: the test process keeps its own signal handling.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
