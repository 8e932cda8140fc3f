"""The model worker: off-loop execution, priorities, failure isolation, orderly stop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from engine.serving.worker import PRIORITY_BACKGROUND, PRIORITY_REPLY, ModelWorker

DEADLOCK_GUARD_S = 30  # a wait that only a broken worker ever exhausts
MAX_YIELDS = 1000  # loop turns for queued tasks to reach the worker (they need one each)


async def _until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop until ``condition`` holds (no time passes: tasks just run)."""
    for _ in range(MAX_YIELDS):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_runs_off_the_event_loop_thread(worker: ModelWorker) -> None:
    loop_thread = threading.get_ident()
    assert await worker.run(threading.get_ident) != loop_thread


async def test_loop_keeps_running_while_a_job_blocks(worker: ModelWorker) -> None:
    """The job blocks until the event loop sets an event: it can only end well if the loop
    ran while the job held the model thread (no tick counting, nothing timed)."""
    job_started, loop_ran = threading.Event(), threading.Event()

    def blocking_job() -> bool:
        job_started.set()
        return loop_ran.wait(DEADLOCK_GUARD_S)

    job = asyncio.create_task(worker.run(blocking_job))
    assert await asyncio.to_thread(job_started.wait, DEADLOCK_GUARD_S)
    loop_ran.set()  # this line runs on the loop while the job is blocked
    assert await job is True


async def test_replies_jump_ahead_of_background_jobs(worker: ModelWorker) -> None:
    order: list[str] = []
    started, gate = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(DEADLOCK_GUARD_S)

    first = asyncio.create_task(worker.run(hold))  # occupies the thread
    assert await asyncio.to_thread(started.wait, DEADLOCK_GUARD_S)
    jobs = [
        asyncio.create_task(worker.run(order.append, "bg1", priority=PRIORITY_BACKGROUND)),
        asyncio.create_task(worker.run(order.append, "bg2", priority=PRIORITY_BACKGROUND)),
        asyncio.create_task(worker.run(order.append, "reply", priority=PRIORITY_REPLY)),
    ]
    await _until(lambda: worker.pending == len(jobs))  # all three queued behind `hold`
    gate.set()
    await asyncio.gather(first, *jobs)
    assert order == ["reply", "bg1", "bg2"]


async def test_a_failing_job_fails_alone(worker: ModelWorker) -> None:
    def boom() -> None:
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        await worker.run(boom)
    assert await worker.run(lambda: 41 + 1) == 42
    assert worker.jobs_failed == 1


async def test_stop_finishes_queued_work_first() -> None:
    w = ModelWorker()
    w.start()
    done: list[int] = []
    jobs = [
        asyncio.create_task(w.run(done.append, i, priority=PRIORITY_BACKGROUND)) for i in range(5)
    ]
    await asyncio.sleep(0)
    await w.stop()
    await asyncio.gather(*jobs)
    assert done == [0, 1, 2, 3, 4]


async def test_run_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await ModelWorker().run(int)
