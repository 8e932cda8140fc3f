"""The model worker: off-loop execution, priorities, failure isolation, orderly stop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engine.serving.worker import PRIORITY_BACKGROUND, PRIORITY_REPLY, ModelWorker


async def test_runs_off_the_event_loop_thread(worker: ModelWorker) -> None:
    loop_thread = threading.get_ident()
    assert await worker.run(threading.get_ident) != loop_thread


async def test_loop_keeps_ticking_while_a_job_blocks(worker: ModelWorker) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await worker.run(time.sleep, 0.5)
    task.cancel()
    assert ticks >= 20


async def test_replies_jump_ahead_of_background_jobs(worker: ModelWorker) -> None:
    order: list[str] = []
    gate = threading.Event()
    first = asyncio.create_task(worker.run(gate.wait))  # occupies the thread
    await asyncio.sleep(0.05)
    jobs = [
        asyncio.create_task(worker.run(order.append, "bg1", priority=PRIORITY_BACKGROUND)),
        asyncio.create_task(worker.run(order.append, "bg2", priority=PRIORITY_BACKGROUND)),
        asyncio.create_task(worker.run(order.append, "reply", priority=PRIORITY_REPLY)),
    ]
    await asyncio.sleep(0.05)
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
