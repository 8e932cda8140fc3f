"""Prometheus metrics and the health check of one engine, served over HTTP when configured.

Every engine owns a `Metrics` with its own `CollectorRegistry` (not the process-global one),
so several engines in one process (the tests, a benchmark) never share or collide on a
series. Serving code never imports this module: a `Batcher` reports to the `BatchObserver`
it is given, which `Metrics` implements; queue depths, worker and child-process liveness are
read at scrape time from the objects `watch` was given. `MetricsServer` serves `/metrics`
and `/healthz` on the event loop (aiohttp, which discord.py already brings), started and
stopped with `engine.build.build_engine` when `OHLORA_METRICS_PORT` is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.rules.sanctions import SanctionEntry

log = logging.getLogger(__name__)

PREFIX = "ohlora"
# Seconds from a message to its answer: a toy model answers in milliseconds, the tiny preset
# in about a second on a CPU, production on a CPU in tens of seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
# Rows per model batch, up to engine.settings.MAX_BATCH_SIZE.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
HEALTH_DB_TIMEOUT_S = 5.0  # a database that does not answer `SELECT 1` within this is down
MAX_HEALTH_DETAIL_CHARS = 200  # of a failed check's reason in the `/healthz` body
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"


class Queued(Protocol):
    """A batcher, as far as its queue depth goes (`engine.serving.batching.Batcher`)."""

    @property
    def waiting(self) -> int: ...


class Worker(Protocol):
    """A model worker thread (`engine.serving.worker.ModelWorker`)."""

    name: str

    @property
    def pending(self) -> int: ...
    @property
    def alive(self) -> bool: ...


class ChildProcess(Protocol):
    """A model child process (`engine.serving.processes.ModelProcess`)."""

    name: str
    restarts: int

    @property
    def alive(self) -> bool: ...


class _Live(Collector):
    """Values read when scraped: rows waiting per batched call, jobs queued per model worker,
    whether each worker and model child is up, and how often a child was restarted."""

    def __init__(self) -> None:
        self.batchers: dict[str, Queued] = {}
        self.workers: list[Worker] = []
        self.processes: list[ChildProcess] = []

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            f"{PREFIX}_queue_depth",
            "Rows waiting for a model batch, per batched call",
            labels=["call"],
        )
        for name, batcher in self.batchers.items():
            queue.add_metric([name], batcher.waiting)
        yield queue
        jobs = GaugeMetricFamily(
            f"{PREFIX}_worker_queue_depth",
            "Jobs queued on a model worker thread and not yet started",
            labels=["worker"],
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_model_worker_up", "1 while a model worker thread runs", labels=["worker"]
        )
        for worker in self.workers:
            jobs.add_metric([worker.name], worker.pending)
            up.add_metric([worker.name], int(worker.alive))
        yield jobs
        yield up
        child_up = GaugeMetricFamily(
            f"{PREFIX}_model_process_up",
            "1 while a model child process runs",
            labels=["process"],
        )
        restarts = CounterMetricFamily(
            f"{PREFIX}_model_process_restarts",
            "Model child processes replaced after dying or hanging",
            labels=["process"],
        )
        for process in self.processes:
            child_up.add_metric([process.name], int(process.alive))
            restarts.add_metric([process.name], process.restarts)
        yield child_up
        yield restarts


class Metrics:
    """One engine's instruments, in its own registry; also the batchers' `BatchObserver`.

    Instruments are real prometheus_client ones even when nothing serves them, so tests read
    their values with `value`/`registry.get_sample_value`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.turns = Counter(f"{PREFIX}_turns", "Turns handled, by outcome", ["kind"], registry=r)
        self.reply_latency = Histogram(
            f"{PREFIX}_reply_latency_seconds",
            "Seconds from a turn's start to its answer, for turns the reply model answered",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Rows per model batch, per batched call",
            ["call"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.model_errors = Counter(
            f"{PREFIX}_model_errors",
            "Rows whose model call failed (their users get the apology)",
            ["call"],
            registry=r,
        )
        self.model_retries = Counter(
            f"{PREFIX}_model_retries",
            "Rows sent back for another attempt (a rejected candidate), per batched call",
            ["call"],
            registry=r,
        )
        self.sanctions = Counter(
            f"{PREFIX}_sanctions",
            "Sanction entries decided, by category and ladder level (1: a warning)",
            ["category", "level"],
            registry=r,
        )
        self.memory_upserts = Counter(
            f"{PREFIX}_memory_upserts", "Memory items stored or updated", registry=r
        )
        self.memory_evictions = Counter(
            f"{PREFIX}_memory_evictions",
            "Memory items evicted by the per-user cap",
            registry=r,
        )
        self.database_errors = Counter(
            f"{PREFIX}_database_errors",
            "Database statements or connections that failed, by driver error",
            ["error"],
            registry=r,
        )
        self._live = _Live()
        r.register(self._live)

    # ---- what the engine reports ---------------------------------------------------------
    def watch(
        self,
        batchers: Iterable[tuple[str, Queued]],
        workers: Iterable[Worker] = (),
        processes: Iterable[ChildProcess] = (),
    ) -> None:
        """Read these objects' queue depths and liveness at every scrape: `batchers` as
        (call, batcher) pairs (`Engine.batchers.items()`)."""
        self._live.batchers.update({str(name): b for name, b in batchers})
        self._live.workers.extend(workers)
        self._live.processes.extend(processes)

    def turn(self, kind: str, seconds: float, *, answered: bool) -> None:
        """A finished turn; `answered`: the reply model answered it (its latency counts)."""
        self.turns.labels(kind=kind).inc()
        if answered:
            self.reply_latency.observe(seconds)

    def sanctioned(self, entries: Iterable[SanctionEntry]) -> None:
        for entry in entries:
            self.sanctions.labels(category=str(entry.category), level=str(entry.level)).inc()

    def remembered(self, evicted: int) -> None:
        self.memory_upserts.inc()
        if evicted:
            self.memory_evictions.inc(evicted)

    def database_error(self, error: BaseException) -> None:
        self.database_errors.labels(error=type(error).__name__).inc()

    # ---- engine.serving.batching.BatchObserver -------------------------------------------
    def batched(self, call: str, rows: int) -> None:
        self.batch_size.labels(call=call).observe(rows)

    def retried(self, call: str, rows: int) -> None:
        self.model_retries.labels(call=call).inc(rows)

    def failed(self, call: str, rows: int) -> None:
        self.model_errors.labels(call=call).inc(rows)

    # ---- reading ------------------------------------------------------------------------
    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when it has none yet), e.g. `ohlora_turns_total`."""
        return self.registry.get_sample_value(name, labels) or 0.0


class Check(StrEnum):
    """What `/healthz` checks."""

    DATABASE = "database"
    MODEL_WORKERS = "model_workers"
    MODEL_PROCESSES = "model_processes"


@dataclass(frozen=True)
class Health:
    """Each check's failure reason; no failures: healthy."""

    failures: Mapping[Check, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def body(self) -> dict[str, object]:
        checks = {str(c): self.failures.get(c, "ok") for c in Check}
        return {"status": "ok" if self.ok else "unavailable", "checks": checks}


def _reason(exc: BaseException) -> str:
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:MAX_HEALTH_DETAIL_CHARS]


async def check_health(
    ping: Callable[[], Awaitable[None]],
    workers: Sequence[Worker],
    processes: Sequence[ChildProcess] = (),
    *,
    db_timeout_s: float = HEALTH_DB_TIMEOUT_S,
) -> Health:
    """The database answers `ping` in time, every model worker thread and child process runs.

    A child that died shows here until the next model call replaces it."""
    failures: dict[Check, str] = {}
    try:
        await asyncio.wait_for(ping(), db_timeout_s)
    except TimeoutError:
        failures[Check.DATABASE] = f"no answer within {db_timeout_s:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the finding
        failures[Check.DATABASE] = _reason(exc)
    dead = [w.name for w in workers if not w.alive]
    if dead:
        failures[Check.MODEL_WORKERS] = f"not running: {', '.join(dead)}"
    gone = [p.name for p in processes if not p.alive]
    if gone:
        failures[Check.MODEL_PROCESSES] = f"not running: {', '.join(gone)}"
    return Health(failures)


class MetricsUnavailable(OSError):
    """The metrics port cannot be served (in use, or a host not of this machine): the
    operator gets one line naming host and port instead of a traceback."""


class MetricsServer:
    """`/metrics` (Prometheus text format) and `/healthz` (200 or 503 with a JSON body)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], Awaitable[Health]],
        *,
        host: str,
        port: int,
    ) -> None:
        self.host = host
        self.requested_port = port  # 0: any free port (`port` says which)
        self._health = health
        app = web.Application()
        app.router.add_get(METRICS_PATH, make_aiohttp_handler(registry))
        app.router.add_get(HEALTH_PATH, self._healthz)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        """Listen; a port in use (or a host not of this machine) raises `MetricsUnavailable`."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise MetricsUnavailable(
                exc.errno, f"cannot serve metrics on {self.host}:{self.requested_port}: {exc}"
            ) from exc
        log.info("metrics on http://%s:%d%s", self.host, self.port, METRICS_PATH)

    async def stop(self) -> None:
        await self._runner.cleanup()

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the free one found for 0)."""
        address = self._runner.addresses[0]
        return int(address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self.port}"

    async def _healthz(self, _request: web.Request) -> web.Response:
        health = await self._health()
        if not health.ok:
            log.warning("health check failed: %s", dict(health.failures))
        return web.json_response(health.body(), status=200 if health.ok else 503)
