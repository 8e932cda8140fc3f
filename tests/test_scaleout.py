"""Several service processes on one database (issue 17): the load through two processes loses
nothing and never runs two turns of one user at once; SIGKILL one of two mid-turn and the other
keeps serving, a restart fails the cut-off turn only, nothing else is lost."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from bench.load import (
    LoadReport,
    check_stored,
    latest_upserts,
    message_id_of,
    overlapping_pairs,
    plan_load,
)
from bench.load_workers import LoadWorker, WorkerSpec, run_processes
from engine.pipeline import TurnKind
from engine.rules.memory_items import MemoryItem
from storage import Database, Repository, TurnRecord, TurnStatus
from tests.engine.conftest import FixedRoles
from tests.postgres import Backend, PostgresServer

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

DEADLINE_S = 300.0  # for a state another process reaches (it signals no event here)
STALL_TIMEOUT_S = 600.0  # a held call goes on at the latest after this (a failed test)
HOLD = "HOLD"  # a message with this word is held in its ethics call until released
MEMORY_KEY = "최근 이야기"  # one key per user: each turn's item replaces the last one
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def latest_words(final_input: str) -> MemoryItem:
    """A memory item for every turn, its value the message's last word."""
    return MemoryItem(MEMORY_KEY, final_input.split()[-1][:20])


def fixed_memory(backend: Any) -> Any:
    """Every turn remembers an item (the toy memory model rarely extracts one)."""
    return FixedRoles(backend, memory=latest_words)


@dataclass
class _Held:
    """`inner` with the ethics call of a batch holding a `HOLD` message waiting for `release`:
    that turn stays pending (mid-turn, its user's lock held) as long as the test wants."""

    inner: Any
    release: Event

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copying): never recurse
            raise AttributeError(name)
        return getattr(self.inner, name)

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        if any(HOLD in text for text in texts):
            self.release.wait(STALL_TIMEOUT_S)
        scores: list[dict[str, float]] = self.inner.ethics_scores(texts)
        return scores


@dataclass(frozen=True)
class HoldOn:
    """A worker's backend wrap (pickled to the process): fixed memory items, `HOLD` held."""

    release: Event

    def __call__(self, backend: Any) -> Any:
        return _Held(fixed_memory(backend), self.release)


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    async def poll() -> None:
        # another process's state in the database: nothing here could set an event for it
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), DEADLINE_S)
    except TimeoutError:
        raise AssertionError(f"never saw: {what}") from None


def _turn(turns: list[TurnRecord], user_id: str, number: int) -> TurnRecord | None:
    wanted = message_id_of(user_id, number)
    return next((t for t in turns if t.message_id == wanted), None)


def _pid_of(turn: TurnRecord) -> int:
    """The process that ran a turn (`storage.instances`: host:pid:token)."""
    assert turn.instance_id is not None
    return int(turn.instance_id.split(":")[1])


def _turn_at(start: int, end: int | None, status: TurnStatus = TurnStatus.COMPLETED) -> TurnRecord:
    return TurnRecord(
        id=start,
        user_id="u",
        channel_id="c",
        guild_id=None,
        instance_id=None,
        message_id=f"m{start}",
        original_text="",
        tagged_prompt=None,
        final_input=None,
        reply=None,
        memory_item_used=None,
        ethics_scores=None,
        expression=None,
        timings=None,
        status=status,
        error=None,
        created_at=T0 + timedelta(seconds=start),
        completed_at=None if end is None else T0 + timedelta(seconds=end),
    )


def test_overlapping_turns_are_pairs_of_spans_that_share_time() -> None:
    one_after_another = [_turn_at(0, 2), _turn_at(2, 3), _turn_at(5, 5), _turn_at(6, 9)]
    assert overlapping_pairs(one_after_another) == 0
    # 1-4 overlaps 0-2 and 2-3; the instant 7 lies inside 6-9; a pending turn has no span
    together = [*one_after_another, _turn_at(1, 4), _turn_at(7, 7), _turn_at(8, None)]
    assert overlapping_pairs(together) == 3


def test_plan_splits_users_and_sends_every_message_once() -> None:
    plan = plan_load(users=8, messages=5, seed=3, processes=2)
    assert plan.turns == 40 and plan.shared == ("load-user-3", "load-user-7")
    sent: dict[str, list[int]] = {}
    for share in plan.plans:
        for user_id, messages in share.items():
            numbers = [n for n, _ in messages]
            assert numbers == sorted(numbers)  # in order within a process
            sent.setdefault(user_id, []).extend(numbers)
    assert {u: sorted(n) for u, n in sent.items()} == {u: list(range(5)) for u in plan.expected}
    for user_id in plan.shared:  # odd messages from the other process, at the same time
        assert all(user_id in share for share in plan.plans)
    assert sum(len(share) for share in plan.plans) == 8 + len(plan.shared)
    one = plan_load(users=8, messages=5, seed=3)  # the same messages in one process
    assert sorted(m for ms in one.plans[0].values() for m in ms) == sorted(
        m for share in plan.plans for ms in share.values() for m in ms
    )


@pytest.mark.parametrize(
    ("database_url", "processes"),
    # One process per SQLite file is the supported setup (storage/locks.py: no user lock across
    # processes there), so SQLite runs the process harness once; PostgreSQL runs two.
    [(Backend.SQLITE, 1), (Backend.POSTGRESQL, 2)],
    indirect=["database_url"],
    ids=["sqlite-1", "postgresql-2"],
)
def test_load_through_service_processes_keeps_every_turn_one_at_a_time(
    toy_preset: Any, database_url: str, processes: int
) -> None:
    report: LoadReport = run_processes(
        toy_preset,
        database_url,
        users=6,
        messages=3,
        processes=processes,
        seed=1,
        wrap=fixed_memory,
        split=False,
    )
    assert report.turns_persisted == report.turns_expected == 18
    assert (report.turns_unfinished, report.duplicate_turns, report.failed_turns) == (0, 0, 0)
    assert report.storage_errors == 0
    assert report.memory_upserts > 0 and report.memory_missing == 0
    assert report.non_monotonic == 0
    assert report.overlapping_turns == 0
    assert report.shared_users == (1 if processes > 1 else 0)
    assert report.ok


async def test_sigkill_one_of_two_processes_mid_turn(
    toy_preset: Any, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    db = Database(url)
    await db.start()
    repo = Repository(db)
    context = multiprocessing.get_context("spawn")
    never = context.Event()  # A's held turn waits for the kill
    release_b = context.Event()
    a = LoadWorker(
        WorkerSpec(
            toy_preset,
            url,
            {"a": [(0, "안녕 오로라"), (1, f"{HOLD} 오늘 뭐 했어")]},
            wrap=HoldOn(never),
            split=False,
        ),
        context=context,
    )
    # B serves A's user too once A is gone, then holds one of its own turns mid-way
    b_plan = {
        "a": [(2, "나 다시 왔어")],
        "b": [(0, "반가워"), (1, "뭐 먹었어"), (2, f"{HOLD} 잘 자")],
    }
    b = LoadWorker(
        WorkerSpec(toy_preset, url, b_plan, wrap=HoldOn(release_b), split=False), context=context
    )
    restarted = LoadWorker(
        WorkerSpec(toy_preset, url, {"a": [(3, "또 왔어")]}, wrap=fixed_memory, split=False),
        context=context,
    )
    workers = (a, b, restarted)
    try:
        a.start()
        b.start()
        await asyncio.to_thread(a.wait_ready)
        await asyncio.to_thread(b.wait_ready)
        a.go.set()

        async def a_mid_turn() -> bool:
            held = _turn(await repo.turns("a"), "a", 1)
            return held is not None and held.status == TurnStatus.PENDING

        await _until(a_mid_turn, "A's second turn running")
        a.kill()
        cut = _turn(await repo.turns("a"), "a", 1)
        assert cut is not None and cut.status == TurnStatus.PENDING and _pid_of(cut) == a.pid

        b.go.set()  # the other process keeps serving, A's user included (its lock died with A)

        async def b_mid_turn() -> bool:
            held = _turn(await repo.turns("b"), "b", 2)
            return held is not None and held.status == TurnStatus.PENDING

        await _until(b_mid_turn, "B's held turn running")
        # A restarts: it fails the dead process's turn, and leaves the living B's running one
        restarted.start()
        await asyncio.to_thread(restarted.wait_ready)
        turns = {t.message_id: t for t in await repo.turns("a") + await repo.turns("b")}
        cut_off = turns[message_id_of("a", 1)]
        assert cut_off.status == TurnStatus.FAILED and "interrupted" in (cut_off.error or "")
        running = turns[message_id_of("b", 2)]
        assert running.status == TurnStatus.PENDING and _pid_of(running) == b.pid
        restarted.go.set()
        release_b.set()
        results = [await asyncio.to_thread(w.result) for w in (b, restarted)]
        for result in results:
            assert result.storage_errors == 0 and TurnKind.FAILED not in result.kinds
        assert [r.turns_sent for r in results] == [4, 1]
        # Nothing else is lost: every other turn finished once, each memory item is the latest
        upserts = latest_upserts(up for r in results for up in r.upserts)
        stored = await check_stored(repo, {"a": 4, "b": 3}, upserts)
        assert (stored.turns_persisted, stored.failed_turns) == (7, 1)
        assert (stored.turns_unfinished, stored.duplicate_turns) == (0, 0)
        assert stored.memory_missing == 0 and upserts
        assert stored.overlapping_turns == 0
        first = _turn(await repo.turns("a"), "a", 0)
        assert first is not None and first.status in (TurnStatus.COMPLETED, TurnStatus.BLOCKED)
    finally:
        never.set()
        release_b.set()
        for worker in workers:
            worker.close()
        await db.close()
