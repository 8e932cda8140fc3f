"""Issue 16's acceptance in console mode: the service built by `build_engine` catches up on the
04:00s it missed while it was down, and the console's `/memory` shows the aged items.

No model runs: `/memory` reads storage only, and the stand-in backend fails any model call.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from bot.console import CONSOLE_USER, Console
from engine.api import build_engine
from engine.maintenance import DailyMaintenance
from engine.settings import Settings
from storage import Repository
from tests.engine.conftest import FixedRoles
from tests.engine.test_maintenance import DAY_D, Clock, _at


class NoModels:
    """A backend whose every model call is a test failure: `/memory` must need none."""

    mixes_roles = False

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        def call(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise AssertionError(f"no model call expected, got {name}")

        return call


async def _console(repo: Repository, clock: Clock, tmp_path: Path, typed: str) -> str:
    """One console session, start to end of input, as `main.py --console` runs it."""
    settings = Settings(_env_file=None, timezone="Asia/Seoul", data_dir=tmp_path)  # type: ignore[call-arg]
    out = io.StringIO()
    async with build_engine(
        settings,
        clock=clock,
        backend=FixedRoles(NoModels()),
        repo=repo,
        maintenance=DailyMaintenance.from_settings,
    ) as service:
        await Console(service, stdin=io.StringIO(typed), stdout=out).run()
    return out.getvalue()


async def test_the_console_shows_yesterdays_tomorrow_as_today_then_nothing(
    repo: Repository, tmp_path: Path
) -> None:
    clock = Clock(DAY_D)
    await _console(repo, clock, tmp_path, "")  # the first start: the day is recorded
    await repo.upsert_memory(CONSOLE_USER, "내일 일정", "시험", clock())
    clock.now = _at(DAY_D, 1, 3, 30)  # the console closes on day D, before 04:00
    shown = await _console(repo, clock, tmp_path, "/memory\n")
    assert "[내일 일정: 시험]" in shown

    clock.now = _at(DAY_D, 1, 10)  # D+1 at 10:00: the 04:00 in between was missed
    shown = await _console(repo, clock, tmp_path, "/memory\n")
    assert "[오늘 일정: 시험]" in shown and "내일" not in shown

    clock.now = _at(DAY_D, 3, 10) + timedelta(minutes=1)  # D+3: two more missed
    shown = await _console(repo, clock, tmp_path, "/memory\n")
    assert "시험" not in shown
    assert (await repo.list_memories(CONSOLE_USER, clock())) == []


async def test_the_console_offers_mystatus_and_forget_me_like_the_bot(
    repo: Repository, tmp_path: Path
) -> None:
    """The console's /mystatus and /forget-me go through the same service and strings as the
    bot's: the warning is listed; forget-me drops memories and keeps the sanction."""
    from engine.api import messages
    from engine.rules.sanctions import SanctionLadder

    clock = Clock(_at(DAY_D, 0, 12))
    await repo.upsert_memory(CONSOLE_USER, "좋아하는 가수", "아이유", clock())
    await repo.record_offence(CONSOLE_USER, ["politics"], SanctionLadder(), clock())
    history = await repo.sanction_history(CONSOLE_USER)

    shown = await _console(repo, clock, tmp_path, "/mystatus\n/forget-me\n/mystatus\n")
    status = messages.status_lines(history, ZoneInfo("Asia/Seoul"), clock())
    assert status != messages.NO_SANCTIONS and shown.count(status) == 2
    assert "지웠어요: 기억 1개" in shown
    assert await repo.list_memories(CONSOLE_USER, clock()) == []
    assert await repo.sanction_history(CONSOLE_USER) == history
