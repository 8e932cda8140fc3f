"""The load test's service processes: each builds its own engine on the shared database.

A `LoadWorker` is one spawned process: it loads its models (`split_backend`, so a model child
of its own as in service), opens the database through `engine.build.build_engine` exactly as
the service does (its own instance id; at start-up it fails only dead processes' interrupted
turns), says it is ready, waits for the go signal, drives its share of the users
(`bench.load.drive`) and sends back what they saw. `run_processes` starts N of them on one
plan, lets them go at the same moment, and counts what the database kept.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from bench.load import (
    TIMEOUT_S,
    DriveResult,
    LoadReport,
    Plan,
    drive,
    latest_upserts,
    load_settings,
    plan_load,
    report_of,
    stored_counts,
)

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess
    from multiprocessing.synchronize import Event

    from engine.runtime.presets import Preset
    from engine.serving.backend import Backend

READY_TIMEOUT_S = 900.0  # loading the models in a process, several starting at once
JOIN_TIMEOUT_S = 60.0  # for a process that sent its result to exit
WARM_UP_TEXT = "안녕"  # one S-BERT call waits until the model child has loaded


class WorkerEvent(StrEnum):
    """What a worker process sends its parent, in this order: READY, then DONE or FAILED."""

    READY = "ready"
    DONE = "done"
    FAILED = "failed"


class WorkerFailed(RuntimeError):
    """A load process failed or exited without a result."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one load process needs (pickled to the spawned child).

    `wrap`, if given, wraps the process's backend (a test's fixed roles, a stalled call); it
    must be picklable, i.e. a module-level function or an instance of a module-level class."""

    preset: Preset
    database_url: str
    plan: Plan
    max_batch: int | None = None
    wrap: Callable[[Backend], Backend] | None = None
    # The service's shape: the Polyglot roles and S-BERTs in a model child of the process's
    # own; False keeps every model in the process (a test's toy models: one start, not two).
    split: bool = True


def serve(spec: WorkerSpec, conn: Connection, go: Event) -> None:
    """The worker process: load the models, build the engine, wait for `go`, drive the plan."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        inner = _backend(spec)
        try:
            inner.ethics_scores([WARM_UP_TEXT])  # the model child loaded: ready means ready
            backend = spec.wrap(inner) if spec.wrap is not None else inner
            result = asyncio.run(_drive(spec, backend, conn, go))
        finally:
            inner.close()
    except BaseException:
        conn.send((WorkerEvent.FAILED, traceback.format_exc()))
        raise
    conn.send((WorkerEvent.DONE, result))


def _backend(spec: WorkerSpec) -> Any:
    from engine.serving.hub import LocalBackend, split_backend
    from engine.settings import DEFAULT_BATCH_CHUNK_TOKENS

    if spec.split:
        return split_backend(spec.preset, threads=1, chunk_tokens=DEFAULT_BATCH_CHUNK_TOKENS)
    return LocalBackend.load(spec.preset, chunk_tokens=DEFAULT_BATCH_CHUNK_TOKENS)


async def _drive(spec: WorkerSpec, backend: Any, conn: Connection, go: Event) -> DriveResult:
    from engine.build import build_engine

    settings = load_settings(spec.database_url, spec.max_batch)
    async with build_engine(settings, backend=backend, threads=1, maintenance=None) as service:
        conn.send((WorkerEvent.READY, os.getpid()))
        if not await asyncio.to_thread(go.wait, TIMEOUT_S):
            raise WorkerFailed(f"no go signal within {TIMEOUT_S} s")
        return await drive(service, spec.plan)


class LoadWorker:
    """One load process seen from its parent: `start`, `wait_ready`, then (once `go` is set)
    `result`; `kill` for a crash test; `close` ends it if it still runs."""

    def __init__(
        self, spec: WorkerSpec, go: Event | None = None, context: SpawnContext | None = None
    ) -> None:
        self.context = context or multiprocessing.get_context("spawn")
        self.spec = spec
        self.go = go if go is not None else self.context.Event()
        self._conn: Connection | None = None
        # Not a daemon: the worker starts a model child process of its own.
        self.process: SpawnProcess | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.pid is not None
        return self.process.pid

    def start(self) -> None:
        parent, child = self.context.Pipe(duplex=False)
        self.process = self.context.Process(
            target=serve, args=(self.spec, child, self.go), name="ohlora-load", daemon=False
        )
        self.process.start()
        child.close()
        self._conn = parent

    def _receive(self, expected: WorkerEvent, timeout_s: float) -> Any:
        assert self._conn is not None and self.process is not None
        if not self._conn.poll(timeout_s):
            raise WorkerFailed(f"load process {self.pid}: no {expected} within {timeout_s:.0f} s")
        try:
            event, payload = self._conn.recv()
        except (EOFError, OSError) as exc:
            self.process.join(JOIN_TIMEOUT_S)
            raise WorkerFailed(
                f"load process {self.pid} exited (code {self.process.exitcode}) before {expected}"
            ) from exc
        if event is WorkerEvent.FAILED:
            raise WorkerFailed(f"load process {self.pid} failed:\n{payload}")
        assert event is expected, (event, expected)
        return payload

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until the process has loaded its models and opened the database."""
        self._receive(WorkerEvent.READY, timeout_s)

    def result(self, timeout_s: float = TIMEOUT_S) -> DriveResult:
        """What its users saw (after `go`); the process then exits."""
        result: DriveResult = self._receive(WorkerEvent.DONE, timeout_s)
        assert self.process is not None
        self.process.join(JOIN_TIMEOUT_S)
        return result

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing of the process runs any more."""
        assert self.process is not None
        self.process.kill()
        self.process.join(JOIN_TIMEOUT_S)

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.kill()
        if self._conn is not None:
            self._conn.close()


async def _migrate(database_url: str) -> None:
    from storage import Database

    db = Database(database_url)
    try:
        await db.start()
    finally:
        await db.close()


def run_processes(
    preset: Preset,
    database_url: str,
    *,
    users: int,
    messages: int,
    processes: int,
    seed: int = 0,
    max_batch: int | None = None,
    wrap: Callable[[Backend], Backend] | None = None,
    split: bool = True,
) -> LoadReport:
    """The load through `processes` service processes on one database, started together."""
    plan = plan_load(users, messages, seed, processes)
    asyncio.run(_migrate(database_url))  # once, before the processes open it
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    workers = [
        LoadWorker(WorkerSpec(preset, database_url, share, max_batch, wrap, split), go, context)
        for share in plan.plans
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        go.set()  # every process drives its users from the same moment
        results = [worker.result() for worker in workers]
    finally:
        for worker in workers:
            worker.close()
    upserts = latest_upserts(up for result in results for up in result.upserts)
    stored = asyncio.run(stored_counts(database_url, plan.expected, upserts))
    return report_of(plan, users, messages, results, stored)
