"""The daily 04:00 maintenance (APScheduler, the service's zone), under every front end.

At 04:00 a new day starts for Oh-LoRA: `오늘 …` memories expire and `내일 …` ones become
`오늘 …`; blocks that ran out are closed; turn texts older than the retention are purged.

The database records the last day boundary applied, and every run applies the boundaries
passed since then in one transaction with that record. So a service that was down at 04:00
catches up when it starts (one missed boundary ages as one run does, two or more expire both
kinds), a late or repeated run does nothing twice, and processes sharing the database (the bot
and a console, or several Discord shards' processes on one PostgreSQL database, each with its
04:00 job) never age a day twice: the run that locks the state row first claims the day, and
one that finds the day recorded ages nothing (its block closing and purging find nothing left).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from engine.settings import Settings
from storage import AgingReport, DailyRun, Repository

log = logging.getLogger(__name__)

DAILY_HOUR = 4  # a day of Oh-LoRA's starts at 04:00 local time
DAILY_JOB_ID = "daily-maintenance"


@dataclass(frozen=True)
class MaintenanceReport:
    """What one run did; `boundaries` is how many 04:00s it caught up on (1 at the daily job)."""

    aging: AgingReport
    closed_blocks: int
    purged_turns: int
    boundaries: int
    first_run: bool

    @classmethod
    def of(cls, run: DailyRun) -> MaintenanceReport:
        return cls(run.aging, len(run.closed_blocks), run.purged_turns, run.boundaries, run.first)


def maintenance_day(moment: datetime, zone: tzinfo) -> date:
    """The day `moment` belongs to: the date of the last 04:00 passed, on the zone's wall clock
    (so a daylight saving change moves no boundary)."""
    local = moment.astimezone(zone)
    if local.time() < time(DAILY_HOUR):
        return local.date() - timedelta(days=1)
    return local.date()


def daily_trigger(zone: tzinfo) -> CronTrigger:
    return CronTrigger(hour=DAILY_HOUR, minute=0, timezone=zone)


class DailyMaintenance:
    """The job and its scheduler, with the clock injected so tests can run "04:00" any time."""

    def __init__(
        self,
        repo: Repository,
        clock: Callable[[], datetime],
        retention: timedelta,
        zone: tzinfo,
    ) -> None:
        self.repo = repo
        self.clock = clock
        self.retention = retention
        self.zone = zone
        self.scheduler: AsyncIOScheduler | None = None
        self.last_report: MaintenanceReport | None = None
        self._lock = asyncio.Lock()  # one run at a time; stop() waits for a run in flight
        self._stopped = False

    @classmethod
    def from_settings(
        cls, repo: Repository, settings: Settings, clock: Callable[[], datetime]
    ) -> DailyMaintenance:
        return cls(repo, clock, timedelta(days=settings.turn_retention_days), settings.tz)

    async def start(self) -> None:
        """Catch up on the 04:00s missed while no service ran, then schedule the daily job."""
        self._stopped = False
        await self.run()
        if self.scheduler is not None:
            return
        scheduler = AsyncIOScheduler(timezone=self.zone)  # binds to the running loop
        scheduler.add_job(
            self._scheduled,
            daily_trigger(self.zone),
            id=DAILY_JOB_ID,
            coalesce=True,
            max_instances=1,
            # However late it fires (a suspended host, a blocked loop), a run is still right:
            # it applies exactly the boundaries passed since the recorded day.
            misfire_grace_time=None,
        )
        scheduler.start()
        self.scheduler = scheduler

    async def stop(self) -> None:
        """No further runs; waits for one in flight, so the database can close after this."""
        self._stopped = True
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        async with self._lock:
            pass

    async def _scheduled(self) -> None:
        """The 04:00 job; one the scheduler handed out just before `stop` does nothing."""
        async with self._lock:
            if not self._stopped:
                await self._apply()

    async def run(self) -> MaintenanceReport:
        """One run: the boundaries passed since the last recorded one, then blocks and texts."""
        async with self._lock:
            return await self._apply()

    async def _apply(self) -> MaintenanceReport:
        now = self.clock()
        done = await self.repo.run_daily_maintenance(
            maintenance_day(now, self.zone), now, purge_before=now - self.retention
        )
        report = MaintenanceReport.of(done)
        self.last_report = report
        if report.first_run:
            log.info("daily maintenance: first run on this database, day recorded: %s", report)
        elif report.boundaries > 1:
            log.warning(
                "daily maintenance caught up on %d missed days: %s", report.boundaries, report
            )
        else:
            log.info("daily maintenance: %s", report)
        return report
