"""The daily maintenance: day-bound memories age, expired blocks close, old texts go; a service
that was down at 04:00 catches up at start-up; the 04:00 job follows the zone's daylight saving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.maintenance import DAILY_JOB_ID, DailyMaintenance, maintenance_day
from engine.rules.sanctions import SanctionLadder
from engine.settings import Settings
from storage import Database, Repository, TurnStatus

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # 04:00 in Seoul


async def test_today_items_expire_and_tomorrow_items_become_today(repo: Repository) -> None:
    await repo.upsert_memory("u1", "오늘 일정", "카페", NOW)
    await repo.upsert_memory("u1", "내일 일정", "시험", NOW)
    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    await repo.upsert_memory("u2", "오늘 날씨", "비", NOW)
    report = await repo.age_day_memories(NOW)
    assert (report.expired, report.promoted) == (2, 1)
    assert {m.render() for m in await repo.list_memories("u1", NOW)} == {
        "[오늘 일정: 시험]",
        "[좋아하는 꽃: 백합]",
    }
    assert await repo.list_memories("u2", NOW) == []
    report = await repo.age_day_memories(NOW + timedelta(days=1))
    assert (report.expired, report.promoted) == (1, 0)
    assert [m.render() for m in await repo.list_memories("u1", NOW)] == ["[좋아하는 꽃: 백합]"]


async def test_expired_blocks_are_closed_once_and_audited(repo: Repository) -> None:
    ladder = SanctionLadder()
    for _ in range(2):  # politics: level 1 warns, level 2 blocks for 3 days
        decided = await repo.record_offence("u1", ["politics"], ladder, NOW)
    assert decided.is_block
    assert await repo.close_expired_blocks(NOW) == []  # still running
    after = decided.expires_at + timedelta(seconds=1)
    assert await repo.close_expired_blocks(after) == ["u1"]
    assert await repo.close_expired_blocks(after) == []
    closed = [r for r in await repo.sanction_history("u1") if r.is_block]
    assert closed and all(r.closed_at == after for r in closed)
    [entry] = await repo.recent_audit()
    assert (entry.action, entry.target_user_id, entry.actor_id) == ("block_expired", "u1", "system")


async def test_old_turn_texts_are_purged_and_sanctions_kept(repo: Repository) -> None:
    old = await repo.start_turn("u1", "c1", "옛날 이야기", NOW - timedelta(days=40))
    await repo.finish_turn(
        old, TurnStatus.COMPLETED, NOW - timedelta(days=40), reply="응!", final_input="옛날 이야기"
    )
    await repo.record_offence(
        "u1", ["politics"], SanctionLadder(), NOW - timedelta(days=40), turn_id=old
    )
    new = await repo.start_turn("u1", "c1", "오늘 이야기", NOW)
    assert await repo.purge_turn_texts(NOW - timedelta(days=30)) == 1
    turns = {t.id: t for t in await repo.turns("u1")}
    assert (turns[old].original_text, turns[old].reply, turns[old].final_input) == ("", None, None)
    assert turns[old].status == TurnStatus.COMPLETED
    assert turns[new].original_text == "오늘 이야기"
    assert [s.turn_id for s in await repo.sanction_history("u1")] == [old]
    assert await repo.purge_turn_texts(NOW - timedelta(days=30)) == 0


async def test_turns_left_pending_by_a_dead_process_are_failed_at_start(repo: Repository) -> None:
    done = await repo.start_turn("u1", "c1", "끝난 턴", NOW)
    await repo.finish_turn(done, TurnStatus.COMPLETED, NOW, reply="응")
    cut = await repo.start_turn("u1", "c1", "끊긴 턴", NOW)
    assert await repo.fail_interrupted_turns(NOW) == 1
    turns = {t.id: t for t in await repo.turns("u1")}
    assert turns[cut].status == TurnStatus.FAILED and "interrupted" in (turns[cut].error or "")
    assert turns[done].status == TurnStatus.COMPLETED and turns[done].reply == "응"


async def test_stored_text_that_is_not_utf8_reads_with_replacement_characters(
    repo: Repository,
) -> None:
    from sqlalchemy import text

    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    async with repo.db.writing() as s:
        await s.execute(text("UPDATE memory_items SET value = CAST(X'EBB0B1FF' AS TEXT)"))
    [item] = await repo.list_memories("u1", NOW)
    assert item.value.startswith("백") and "\ufffd" in item.value


# ---- whose turns a start-up may fail (issue 15, finding 11) ---------------------------------
def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_a_start_up_fails_only_the_turns_of_dead_processes(db) -> None:
    import os
    import subprocess
    import sys

    from storage.instances import SEP, new_instance_id

    host = new_instance_id().split(SEP)[0]
    # A bot still running on this host: a live process (it waits for its stdin to close).
    bot = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        running = Repository(db, instance_id=f"{host}{SEP}{bot.pid}{SEP}c0ffee00")
        dead = Repository(db, instance_id=f"{host}{SEP}{_dead_pid()}{SEP}0badf00d")
        elsewhere = Repository(db, instance_id=f"another-host{SEP}{os.getpid()}{SEP}12345678")
        legacy = Repository(db)  # rows from before owners were recorded
        live_turn = await running.start_turn("u1", "c1", "진행 중인 턴", NOW)
        dead_turn = await dead.start_turn("u2", "c1", "끊긴 턴", NOW)
        other_host_turn = await elsewhere.start_turn("u3", "c1", "다른 서버의 턴", NOW)
        legacy_turn = await legacy.start_turn("u4", "c1", "옛 턴", NOW)

        console = Repository(db, instance_id=new_instance_id())  # started beside the bot
        assert await console.fail_interrupted_turns(NOW) == 2

        status = {
            t.id: t.status for user in ("u1", "u2", "u3", "u4") for t in await console.turns(user)
        }
        assert status[live_turn] == TurnStatus.PENDING
        assert status[other_host_turn] == TurnStatus.PENDING  # unknown: left alone
        assert status[dead_turn] == TurnStatus.FAILED and status[legacy_turn] == TurnStatus.FAILED
        await running.finish_turn(live_turn, TurnStatus.COMPLETED, NOW, reply="응")  # still its own
    finally:
        bot.communicate(b"")


async def test_a_previous_process_with_this_pid_counts_as_dead(db) -> None:
    import os

    from storage.instances import SEP, new_instance_id

    host = new_instance_id().split(SEP)[0]
    before = Repository(db, instance_id=f"{host}{SEP}{os.getpid()}{SEP}00000000")  # pid reused
    turn = await before.start_turn("u1", "c1", "재시작 전", NOW)
    assert await Repository(db, instance_id=new_instance_id()).fail_interrupted_turns(NOW) == 1
    [row] = await before.turns("u1")
    assert row.id == turn and row.status == TurnStatus.FAILED


# ---- the maintenance in the engine: catch-up at start-up, the 04:00 job (issue 16) -----------
SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")
DAY_D = datetime(2026, 11, 24, 22, 0, tzinfo=SEOUL)  # Tuesday evening: maintenance day D


@dataclass
class Clock:
    """The injected clock: tests move `now`; the service reads it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def _settings(zone: str | None = "Asia/Seoul") -> Settings:
    """Settings with this zone; None: no zone set, so the server's."""
    return Settings(_env_file=None, timezone=zone)  # type: ignore[call-arg]


def _at(day: datetime, days: int, hour: int, minute: int = 0) -> datetime:
    return (day + timedelta(days=days)).replace(hour=hour, minute=minute)


async def _started(
    repo: Repository, clock: Clock, zone: str | None = "Asia/Seoul"
) -> DailyMaintenance:
    service = DailyMaintenance.from_settings(repo, _settings(zone), clock)
    await service.start()
    return service


async def _memories(repo: Repository, clock: Clock, user: str = "u1") -> list[str]:
    return [m.render() for m in await repo.list_memories(user, clock())]


async def test_a_service_down_at_0400_catches_up_at_its_next_start(repo: Repository) -> None:
    """Stopped on day D before 04:00 with `내일 …` stored: on D+1 it is `오늘 …`, on D+3 gone."""
    clock = Clock(DAY_D)
    service = await _started(repo, clock)  # the first start ever: records day D
    await repo.upsert_memory("u1", "내일 일정", "시험", clock())
    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", clock())
    clock.now = _at(DAY_D, 1, 3, 30)  # still day D: 04:00 has not come
    await service.stop()

    clock.now = _at(DAY_D, 1, 10)
    service = await _started(repo, clock)
    assert service.last_report is not None and service.last_report.boundaries == 1
    assert await _memories(repo, clock) == ["[오늘 일정: 시험]", "[좋아하는 꽃: 백합]"]
    await service.stop()

    clock.now = _at(DAY_D, 3, 10)
    service = await _started(repo, clock)
    assert service.last_report is not None and service.last_report.boundaries == 2
    assert await _memories(repo, clock) == ["[좋아하는 꽃: 백합]"]
    await service.stop()


async def test_two_missed_boundaries_expire_today_and_tomorrow_items(repo: Repository) -> None:
    clock = Clock(DAY_D)
    await (await _started(repo, clock)).stop()
    await repo.upsert_memory("u1", "오늘 일정", "카페", clock())
    await repo.upsert_memory("u1", "내일 일정", "시험", clock())
    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", clock())
    clock.now = _at(DAY_D, 2, 4)  # D+2 at 04:00: the boundaries of D+1 and D+2 were missed
    service = await _started(repo, clock)
    report = service.last_report
    assert report is not None
    assert (report.boundaries, report.aging.expired, report.aging.promoted) == (2, 2, 0)
    assert await _memories(repo, clock) == ["[좋아하는 꽃: 백합]"]
    await service.stop()


async def test_the_first_start_ever_records_the_day_and_ages_nothing(repo: Repository) -> None:
    clock = Clock(DAY_D)
    await repo.upsert_memory("u1", "내일 일정", "시험", clock())
    service = await _started(repo, clock)
    report = service.last_report
    assert report is not None and report.first_run and report.boundaries == 0
    assert await _memories(repo, clock) == ["[내일 일정: 시험]"]
    await service.stop()
    clock.now = _at(DAY_D, 1, 9)
    service = await _started(repo, clock)  # the day was recorded: this start catches up
    assert await _memories(repo, clock) == ["[오늘 일정: 시험]"]
    await service.stop()


async def test_catch_up_is_idempotent_within_a_day(repo: Repository) -> None:
    """Two starts on the same day (and the 04:00 run already done) age once, not three times."""
    clock = Clock(DAY_D)
    await (await _started(repo, clock)).stop()
    await repo.upsert_memory("u1", "내일 일정", "시험", clock())
    clock.now = _at(DAY_D, 1, 4)
    service = await _started(repo, clock)
    assert service.last_report is not None and service.last_report.boundaries == 1
    clock.now = _at(DAY_D, 1, 11)
    assert (await service.run()).boundaries == 0  # the day's run, already done at start-up
    await service.stop()
    again = await _started(repo, clock)
    assert again.last_report is not None and again.last_report.boundaries == 0
    assert await _memories(repo, clock) == ["[오늘 일정: 시험]"]
    await again.stop()


@asynccontextmanager
async def _two_processes(url: str) -> AsyncIterator[tuple[Repository, Repository]]:
    """Two services' repositories on one database, each with its own engine and pool."""
    first, second = Database(url), Database(url)
    await first.start()
    await second.start()
    try:
        yield Repository(first), Repository(second)
    finally:
        await first.close()
        await second.close()


async def test_two_processes_starting_at_once_age_a_boundary_once(database_url: str) -> None:
    """Two services on one database (the bot and a console, or two shards' processes): the
    catch-up and its record are one transaction, so a boundary is never aged twice."""
    async with _two_processes(database_url) as repos:
        clock = Clock(DAY_D)
        await (await _started(repos[0], clock)).stop()
        await repos[0].upsert_memory("u1", "내일 일정", "시험", clock())
        await repos[0].upsert_memory("u1", "오늘 일정", "카페", clock())
        clock.now = _at(DAY_D, 1, 10)
        services = [DailyMaintenance.from_settings(r, _settings(), clock) for r in repos]
        await asyncio.gather(*(s.start() for s in services))
        applied = sorted(s.last_report.boundaries for s in services if s.last_report)
        assert applied == [0, 1]
        assert await _memories(repos[1], clock) == ["[오늘 일정: 시험]"]
        for service in services:
            await service.stop()


async def test_two_processes_firing_at_0400_run_the_day_once(database_url: str) -> None:
    """Every process schedules the 04:00 job; both fire for the same boundary, and the one that
    claims the day's record (its row locked, the day re-read) does the day's work: memories
    age once, the expired block closes and is audited once, old texts are purged once. The
    other finds the day done and changes nothing."""
    async with _two_processes(database_url) as repos:
        clock = Clock(DAY_D)
        services = [DailyMaintenance.from_settings(r, _settings(), clock) for r in repos]
        for service in services:
            await service.start()  # the first start records day D, the second finds it
        await repos[0].upsert_memory("u1", "내일 일정", "시험", clock())
        await repos[0].upsert_memory("u1", "오늘 일정", "카페", clock())
        five_days_ago = clock() - timedelta(days=5)
        for _ in range(2):  # politics: level 1 warns, level 2 blocks for 3 days (ran out)
            await repos[0].record_offence("u2", ["politics"], SanctionLadder(), five_days_ago)
        await repos[0].start_turn("u1", "c1", "옛날 이야기", clock() - timedelta(days=40))
        clock.now = _at(DAY_D, 1, 4)  # D+1 04:00: one boundary
        jobs = [s.scheduler.get_job(DAILY_JOB_ID) for s in services if s.scheduler]
        assert len(jobs) == 2
        await asyncio.gather(*(job.func() for job in jobs))  # what each scheduler calls
        done = [s.last_report for s in services if s.last_report is not None]
        reports = sorted(
            (r.boundaries, r.aging.expired, r.closed_blocks, r.purged_turns) for r in done
        )
        assert reports == [(0, 0, 0, 0), (1, 1, 1, 1)]
        # aged once: a second aging would have expired the promoted item too
        assert await _memories(repos[1], clock) == ["[오늘 일정: 시험]"]
        assert [e.action for e in await repos[1].recent_audit()] == ["block_expired"]
        for service in services:
            await service.stop()


async def test_the_0400_run_ages_once_and_a_run_before_0400_does_not(repo: Repository) -> None:
    clock = Clock(DAY_D)
    service = await _started(repo, clock)
    await repo.upsert_memory("u1", "내일 일정", "시험", clock())
    clock.now = _at(DAY_D, 1, 3, 59)
    assert (await service.run()).boundaries == 0
    assert await _memories(repo, clock) == ["[내일 일정: 시험]"]
    clock.now = _at(DAY_D, 1, 4)  # what the scheduled job sees when it fires
    report = await service.run()
    assert (report.boundaries, report.aging.promoted) == (1, 1)
    assert await _memories(repo, clock) == ["[오늘 일정: 시험]"]
    await service.stop()


async def test_closing_blocks_and_purging_texts_run_once_in_a_catch_up(repo: Repository) -> None:
    clock = Clock(DAY_D)
    await (await _started(repo, clock)).stop()
    decided = None
    for _ in range(2):  # politics: level 1 warns, level 2 blocks for 3 days
        decided = await repo.record_offence("u1", ["politics"], SanctionLadder(), clock())
    assert decided is not None and decided.is_block
    old = await repo.start_turn("u1", "c1", "옛날 이야기", clock() - timedelta(days=40))
    clock.now = _at(DAY_D, 5, 10)  # five boundaries missed, the block ran out meanwhile
    service = await _started(repo, clock)
    report = service.last_report
    assert report is not None
    assert (report.boundaries, report.closed_blocks, report.purged_turns) == (5, 1, 1)
    assert [e.action for e in await repo.recent_audit()] == ["block_expired"]
    assert {t.id: t.original_text for t in await repo.turns("u1")}[old] == ""
    await service.stop()


async def test_stop_is_safe_before_start_and_twice(repo: Repository) -> None:
    service = DailyMaintenance.from_settings(repo, _settings(), Clock(DAY_D))
    await service.stop()
    await service.start()
    assert service.scheduler is not None and service.scheduler.running
    await service.stop()
    await service.stop()
    assert service.scheduler is None


@pytest.fixture
def server_in_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's own zone (what tzlocal reads: TZ first), reloaded on both sides."""
    import tzlocal

    monkeypatch.delenv("OHLORA_TIMEZONE", raising=False)
    monkeypatch.setenv("TZ", "America/New_York")
    tzlocal.reload_localzone()
    yield
    monkeypatch.undo()
    tzlocal.reload_localzone()


@pytest.mark.parametrize("zone", ["America/New_York", None], ids=["set", "the-servers"])
async def test_the_daily_job_stays_at_0400_local_across_daylight_saving(
    repo: Repository, server_in_new_york: None, zone: str | None
) -> None:
    """America/New_York, set or the server's own: clocks go forward on 2026-03-08 and back on
    2026-11-01; the job fires at 04:00 on the wall clock on both sides of each change."""
    service = await _started(repo, Clock(datetime(2026, 3, 6, 12, tzinfo=NEW_YORK)), zone)
    assert service.scheduler is not None
    trigger = service.scheduler.get_job(DAILY_JOB_ID).trigger
    for start in (
        datetime(2026, 3, 6, 12, tzinfo=NEW_YORK),
        datetime(2026, 10, 30, 12, tzinfo=NEW_YORK),
    ):
        fires: list[datetime] = []
        fire = trigger.get_next_fire_time(None, start)
        for _ in range(4):
            fires.append(fire)
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        local = [f.astimezone(NEW_YORK) for f in fires]
        assert [(t.hour, t.minute) for t in local] == [(4, 0)] * 4
        assert [t.date() for t in local] == [
            (start + timedelta(days=i + 1)).date() for i in range(4)
        ]
        offsets = {t.utcoffset() for t in local}
        assert offsets == {timedelta(hours=-5), timedelta(hours=-4)}  # both sides of the change
    await service.stop()


def test_the_maintenance_day_turns_at_0400_local_time() -> None:
    assert maintenance_day(datetime(2026, 3, 8, 3, 59, tzinfo=NEW_YORK), NEW_YORK) == date(
        2026, 3, 7
    )
    assert maintenance_day(datetime(2026, 3, 8, 4, 0, tzinfo=NEW_YORK), NEW_YORK) == date(
        2026, 3, 8
    )
    # 08:30 UTC is 03:30 in New York (EST) on 2026-11-02 and 17:30 in Seoul
    instant = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    assert maintenance_day(instant, NEW_YORK) == date(2026, 11, 1)
    assert maintenance_day(instant, SEOUL) == date(2026, 11, 2)


async def test_aging_by_several_boundaries_expires_both_kinds(repo: Repository) -> None:
    await repo.upsert_memory("u1", "오늘 일정", "카페", NOW)
    await repo.upsert_memory("u1", "내일 일정", "시험", NOW)
    await repo.upsert_memory("u1", "좋아하는 꽃", "백합", NOW)
    report = await repo.age_day_memories(NOW, boundaries=0)
    assert (report.expired, report.promoted) == (0, 0)
    assert len(await repo.list_memories("u1", NOW)) == 3
    report = await repo.age_day_memories(NOW, boundaries=2)
    assert (report.expired, report.promoted) == (2, 0)
    assert [m.render() for m in await repo.list_memories("u1", NOW)] == ["[좋아하는 꽃: 백합]"]


async def test_the_scheduled_job_ages_at_0400_and_does_nothing_after_stop(repo: Repository) -> None:
    clock = Clock(DAY_D)
    service = await _started(repo, clock)
    assert service.scheduler is not None
    job = service.scheduler.get_job(DAILY_JOB_ID)
    assert job.trigger.get_next_fire_time(None, DAY_D) == _at(DAY_D, 1, 4)
    await repo.upsert_memory("u1", "내일 일정", "시험", clock())
    clock.now = _at(DAY_D, 1, 4)
    await job.func()  # what the scheduler calls at 04:00
    assert await _memories(repo, clock) == ["[오늘 일정: 시험]"]
    await repo.upsert_memory("u1", "내일 일정", "수영", clock())
    await service.stop()
    clock.now = _at(DAY_D, 2, 4)
    await job.func()  # handed out by the scheduler just before it shut down
    assert await _memories(repo, clock) == ["[오늘 일정: 시험]", "[내일 일정: 수영]"]
