"""Scheduled jobs (APScheduler, server-local time): the daily 04:00 maintenance.

At 04:00 a new day starts for Oh-LoRA: `오늘 …` memories expire and `내일 …` ones become
`오늘 …`; blocks that ran out are closed; turn texts older than the retention are purged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from discord.ext import commands

from storage import AgingReport, Repository

if TYPE_CHECKING:
    from bot.client import OhLoraBot

log = logging.getLogger(__name__)

DAILY_HOUR = 4
DAILY_JOB_ID = "daily-maintenance"
MISFIRE_GRACE_S = 3 * 3600  # a bot that was down at 04:00 still ages memories if back by 07:00


@dataclass(frozen=True)
class MaintenanceReport:
    aging: AgingReport
    closed_blocks: int
    purged_turns: int


class DailyMaintenance:
    """The job itself, with its clock injected so tests can run "04:00" at any time."""

    def __init__(
        self, repo: Repository, clock: Callable[[], datetime], retention: timedelta
    ) -> None:
        self.repo = repo
        self.clock = clock
        self.retention = retention

    async def run(self) -> MaintenanceReport:
        now = self.clock()
        aging = await self.repo.age_day_memories(now)
        closed = await self.repo.close_expired_blocks(now)
        purged = await self.repo.purge_turn_texts(now - self.retention)
        report = MaintenanceReport(aging, len(closed), purged)
        log.info("daily maintenance: %s", report)
        return report


def daily_trigger(tz: tzinfo) -> CronTrigger:
    return CronTrigger(hour=DAILY_HOUR, minute=0, timezone=tz)


class JobsCog(commands.Cog, name="Jobs"):
    """Owns the scheduler: started when the cog loads, shut down when it unloads."""

    def __init__(self, bot: OhLoraBot) -> None:
        self.maintenance = DailyMaintenance(bot.repo, bot.clock, bot.config.turn_retention)
        self.scheduler = AsyncIOScheduler(timezone=bot.config.tz)
        self.scheduler.add_job(
            self.maintenance.run,
            daily_trigger(bot.config.tz),
            id=DAILY_JOB_ID,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=MISFIRE_GRACE_S,
        )

    async def cog_load(self) -> None:
        self.scheduler.start()

    async def cog_unload(self) -> None:
        self.scheduler.shutdown(wait=False)
