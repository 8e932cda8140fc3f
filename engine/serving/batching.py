"""Cross-user batching: requests for one role from different users run as one model batch.

A `Batcher` owns one batched backend call (e.g. every user's reply). A request joins the
rows waiting for it; the first waiting row queues one job on the model worker, and that job
takes every row waiting *when it starts* (up to `max_batch`). So rows gather while the worker
is busy with other work, and an idle worker starts at once: batching costs no latency beyond
an optional short collection window. A row whose output is `Again` is queued once more, so a
rejected attempt is retried inside the next batch rather than in a small batch of its own. A
batch that raises is retried row by row, so one bad row fails only its own user; unless the
backend itself failed (`engine.serving.breaker.BackendUnavailable`: a server or model child down or
past its deadline, or a timeout): then every row of the batch fails at once, since each row
alone would only wait out the same deadline again while holding the worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from engine.serving.breaker import BackendUnavailable
from engine.serving.worker import ModelWorker, release_accelerator_memory

log = logging.getLogger(__name__)

Row = TypeVar("Row")
Row_co = TypeVar("Row_co", covariant=True)
Out = TypeVar("Out")

DEFAULT_MAX_BATCH = 16
DEFAULT_WINDOW_S = 0.0
MAX_EXPECT_WAIT_S = 0.5  # the longest a job waits for rows announced as coming
EXPECT_POLL_S = 0.002
MAX_RECORDED_BATCHES = 10_000  # sizes of the latest batches kept (the bench's means)
# Failures of the backend as a whole, not of a row: no row-by-row retry after these.
WHOLE_BATCH_FAILURES: tuple[type[BaseException], ...] = (BackendUnavailable, TimeoutError)


class BatchObserver(Protocol):
    """Told about each batcher's batches (`engine.metrics.Metrics` counts them); called on the
    model worker's thread and the event loop, so it must be thread-safe and quick."""

    def batched(self, call: str, rows: int) -> None: ...
    def retried(self, call: str, rows: int) -> None: ...
    def failed(self, call: str, rows: int) -> None: ...


class _Unobserved:
    def batched(self, call: str, rows: int) -> None:
        pass

    def retried(self, call: str, rows: int) -> None:
        pass

    def failed(self, call: str, rows: int) -> None:
        pass


UNOBSERVED: BatchObserver = _Unobserved()


@dataclass(frozen=True)
class Again(Generic[Row_co]):
    """An output meaning "not done: run this row again" (a rejected attempt to retry). The row
    goes to the front of the queue and joins the next batch with the new arrivals, instead of
    a retry round of its own."""

    row: Row_co


@dataclass
class _Waiting(Generic[Row]):
    row: Row
    future: asyncio.Future[Any]


class Batcher(Generic[Row, Out]):
    """Runs `fn(rows) -> outputs` (same length, same order) over rows from many callers."""

    def __init__(
        self,
        worker: ModelWorker,
        fn: Callable[[list[Row]], Sequence[Out | Again[Row]]],
        *,
        priority: int,
        max_batch: int = DEFAULT_MAX_BATCH,
        window_s: float = DEFAULT_WINDOW_S,
        expect: Callable[[], int] | None = None,
        lane: Callable[[Row], int] | None = None,
        name: str | None = None,
        observer: BatchObserver = UNOBSERVED,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.worker = worker
        self.fn = fn
        self.priority = priority
        self.max_batch = max_batch
        self.window_s = window_s
        self.expect = expect  # rows known to be on their way (e.g. turns still before the reply)
        # Rows of a lower lane are taken first (replies before summaries sharing one batch).
        self.lane = lane
        self.name: str = name or str(getattr(fn, "__name__", "batch"))
        self.observer = observer
        self._waiting: list[_Waiting[Row]] = []
        self._lock = threading.Lock()  # rows are taken on the worker thread
        self._jobs = 0  # jobs queued on the worker and not yet started
        # The latest batches' sizes, for the benchmark and tests (bounded: a service runs for weeks).
        self.batch_sizes: deque[int] = deque(maxlen=MAX_RECORDED_BATCHES)
        self.busy_s = 0.0  # model time spent in this batcher's jobs
        # Running job tasks: the event loop keeps only weak references to tasks.
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Rows waiting for a batch (the queue depth; read without the lock, for metrics)."""
        return len(self._waiting)

    async def __call__(self, row: Row) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue([_Waiting(row, future)])
        return await future

    def _queue(self, waiting: list[_Waiting[Row]], *, front: bool = False) -> None:
        """Add rows (retries go first) and start a job unless one is already queued."""
        with self._lock:
            if front:
                self._waiting[:0] = waiting
            else:
                self._waiting.extend(waiting)
            start_job = self._jobs == 0
            if start_job:
                self._jobs += 1
        if start_job:
            self._start_job()

    def _start_job(self) -> None:
        """A job task on the event loop, referenced until it ends."""
        task = asyncio.create_task(self._job(), name=f"batch-{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _job(self) -> None:
        if self.window_s > 0:
            await asyncio.sleep(self.window_s)
        if self.expect is not None:
            # Rows announced as coming join this batch if they arrive within a short wait.
            waited = 0.0
            while (
                waited < MAX_EXPECT_WAIT_S
                and self.expect() > 0
                and len(self._waiting) < self.max_batch
            ):
                await asyncio.sleep(EXPECT_POLL_S)
                waited += EXPECT_POLL_S
        try:
            taken = await self.worker.run(self._take_and_run, priority=self.priority)
        except Exception as exc:  # noqa: BLE001 - the worker itself failed: fail the rows
            with self._lock:
                self._jobs -= 1
                stranded, self._waiting = self._waiting, []
            self.observer.failed(self.name, len(stranded))
            for waiting in stranded:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            return
        retry: list[_Waiting[Row]] = []
        for waiting, (ok, value) in taken:
            if waiting.future.done():
                continue
            if ok and isinstance(value, Again):
                waiting.row = value.row
                retry.append(waiting)
            elif ok:
                waiting.future.set_result(value)
            else:
                waiting.future.set_exception(value)
        if retry:
            self.observer.retried(self.name, len(retry))
            self._queue(retry, front=True)

    def _take_and_run(self) -> list[tuple[_Waiting[Row], tuple[bool, Any]]]:
        """On the worker thread: take the waiting rows, run them, leave a job for the rest."""
        with self._lock:
            if self.lane is not None:
                lane = self.lane
                self._waiting.sort(key=lambda w: lane(w.row))  # stable: arrival order per lane
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            self._jobs -= 1
            more = bool(self._waiting)
            if more:
                self._jobs += 1
        if more:  # rows beyond max_batch get the next job of this kind
            loop = batch[0].future.get_loop()
            loop.call_soon_threadsafe(self._start_job)
        batch = [w for w in batch if not w.future.cancelled()]
        if not batch:
            return []
        self.batch_sizes.append(len(batch))
        self.observer.batched(self.name, len(batch))
        rows = [w.row for w in batch]
        started = time.perf_counter()
        try:
            outputs = list(self.fn(rows))
            self.busy_s += time.perf_counter() - started
            if len(outputs) != len(rows):
                raise RuntimeError(
                    f"{self.name} returned {len(outputs)} outputs for {len(rows)} rows"
                )
            return [(w, (True, out)) for w, out in zip(batch, outputs)]
        except Exception as exc:  # noqa: BLE001 - find the row at fault, spare the others
            release_accelerator_memory()
            if len(rows) == 1 or isinstance(exc, WHOLE_BATCH_FAILURES):
                log.warning("model batch %s of %d failed: %r", self.name, len(rows), exc)
                self.observer.failed(self.name, len(rows))
                return [(w, (False, exc)) for w in batch]
            log.warning(
                "model batch %s of %d failed (%r); retrying row by row", self.name, len(rows), exc
            )
            results = [(w, self._one(w.row)) for w in batch]
            self.observer.failed(self.name, sum(not ok for _, (ok, _value) in results))
            return results

    def _one(self, row: Row) -> tuple[bool, Any]:
        try:
            [out] = self.fn([row])
            return True, out
        except Exception as exc:  # noqa: BLE001
            return False, exc
