"""The model worker: one thread owns the models; the event loop only awaits results.

Jobs wait in a priority queue so a user's reply never queues behind someone else's background
roles (summary, memory extraction, expression). A job that raises, even out of memory, fails
only its own future; the thread goes on serving.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

PRIORITY_PREPARE = -10  # cheap steps before a reply (token count, memory retrieval)
PRIORITY_REPLY = 0
PRIORITY_BACKGROUND = 10
_PRIORITY_STOP = 1_000  # after every queued job: stopping finishes in-flight work first


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    fn: Callable[..., Any] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    loop: asyncio.AbstractEventLoop | None = field(compare=False)
    future: asyncio.Future[Any] | None = field(compare=False)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ModelWorker:
    """A single model thread behind a priority queue."""

    def __init__(self, name: str = "ohlora-model", threads: int | None = None) -> None:
        self.name = name
        self.threads = threads  # torch intra-op threads for this worker's work (None: torch's)
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._started = False
        self.jobs_done = 0
        self.jobs_failed = 0

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any, priority: int = PRIORITY_REPLY) -> T:
        """Run `fn(*args)` on the model thread and await its result."""
        if not self._started:
            raise RuntimeError("model worker is not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(priority, next(self._seq), fn, args, loop, future))
        return await future

    async def stop(self) -> None:
        """Finish queued jobs, then end the thread (awaited off the loop)."""
        if not self._started or not self._thread.is_alive():
            return
        self._queue.put(_Job(_PRIORITY_STOP, next(self._seq), lambda: None, (), None, None))
        await asyncio.to_thread(self._thread.join)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        """Started and still serving (the health check)."""
        return self._started and self._thread.is_alive()

    def _serve(self) -> None:
        if self.threads is not None:
            _set_torch_threads(self.threads)
        while True:
            job = self._queue.get()
            if job.future is None or job.loop is None:
                return
            if job.future.cancelled():
                continue
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.fn(*job.args)
                self.jobs_done += 1
            except Exception as exc:  # noqa: BLE001 - reported to the awaiting caller
                error = exc
                self.jobs_failed += 1
                log.warning("model job %s failed: %r", getattr(job.fn, "__name__", job.fn), exc)
                release_accelerator_memory()
            try:
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)
            except RuntimeError:  # the loop closed while we worked
                log.debug("dropping result for a closed event loop")


def _set_torch_threads(threads: int) -> None:
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # torch-free test environments
        pass


def release_accelerator_memory() -> None:
    """After a failure (often out-of-memory) give cached GPU memory back before the next job."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # torch-free test environments
        pass
