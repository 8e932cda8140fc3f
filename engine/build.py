"""The one wiring of the engine: storage → model workers → backend → pipeline → service →
daily maintenance, closed in reverse order. `main.py`, the benchmarks, the load test and the
test fixtures all build it here, so every default is the one in `engine.settings`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.maintenance import DailyMaintenance
from engine.metrics import ChildProcess, Health, Metrics, MetricsServer, check_health
from engine.pipeline import Engine
from engine.service import Maintenance, OhLoraService
from engine.serving.worker import ModelWorker
from engine.settings import Settings
from storage import Database, DatabaseOptions, Repository
from storage.instances import new_instance_id
from storage.locks import UserLocks

if TYPE_CHECKING:
    from engine.serving.backend import Backend

log = logging.getLogger(__name__)

# Two model threads: the Kanana roles on one, the Polyglot roles and S-BERTs on the other
# (which, with model_processes 2, waits on the child process that holds those models).
MODEL_WORKERS = 2
KANANA_WORKER = "ohlora-kanana"
POLYGLOT_WORKER = "ohlora-polyglot"


# (repository, settings, clock) -> the maintenance to start with the service
MaintenanceFactory = Callable[[Repository, Settings, Callable[[], datetime]], Maintenance]


def default_threads() -> int:
    """Torch threads per model worker: the cores shared by the two workers."""
    return max(1, (os.cpu_count() or MODEL_WORKERS) // MODEL_WORKERS)


def database_options(settings: Settings) -> DatabaseOptions:
    """The settings' connection pool and timeouts, as storage takes them."""
    return DatabaseOptions(
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_s=settings.db_pool_timeout_s,
        statement_timeout_s=settings.db_statement_timeout_s,
    )


async def prepare_storage(settings: Settings) -> str:
    """Create the data folder and database on first run and apply pending migrations."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url, database_options(settings))
    try:
        await db.start()
    finally:
        await db.close()
    return settings.resolved_database_url


def new_engine(
    settings: Settings,
    repo: Repository,
    backend: Backend,
    worker: ModelWorker,
    *,
    clock: Callable[[], datetime],
    polyglot_worker: ModelWorker | None = None,
    metrics: Metrics | None = None,
    user_locks: UserLocks | None = None,
) -> Engine:
    """The pipeline with every limit from the settings."""
    return Engine(
        repo,
        backend,
        worker,
        clock=clock,
        polyglot_worker=polyglot_worker,
        max_prompt_tokens=settings.max_prompt_tokens,
        max_message_chars=settings.max_message_chars,
        max_memory_items=settings.max_memory_items,
        sanction_decay=settings.sanction_decay,
        block_notice_cooldown=timedelta(seconds=settings.block_notice_cooldown_s),
        max_batch=settings.batch_max_size,
        batch_window_s=settings.batch_window_ms / 1000,
        metrics=metrics,
        user_locks=user_locks,
    )


def model_processes(backend: Backend) -> tuple[ChildProcess, ...]:
    """The model child processes behind a backend (`SplitBackend.model_processes`), if any.

    Without torch loaded there is no split backend: its module is looked up, not imported."""
    split = sys.modules.get("engine.serving.processes")
    if split is not None and isinstance(backend, split.SplitBackend):
        processes: tuple[ChildProcess, ...] = backend.model_processes
        return processes
    return ()


@asynccontextmanager
async def build_engine(
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
    backend: Backend | None = None,
    repo: Repository | None = None,
    workers: int = MODEL_WORKERS,
    threads: int | None = None,
    maintenance: MaintenanceFactory | None = DailyMaintenance.from_settings,
) -> AsyncIterator[OhLoraService]:
    """The running service; on the way out, turns in flight finish and everything closes.

    - `clock`: the service's time (default: now in the settings' zone);
    - `backend`: a backend to use as is (tests, benchmarks); its owner closes it. Without one,
      the settings' backend is loaded on the model worker (off the event loop) and closed here;
    - `repo`: a repository to use (its database stays open); without one, the settings'
      database is opened (migrated already by `prepare_storage`) and closed here;
    - `workers`: 2 runs the Kanana roles beside the Polyglot roles and S-BERTs; 1 runs every
      model call on one thread (the serial benchmark);
    - `threads`: torch threads per worker (default: the cores shared by the workers; 0:
      torch's own default);
    - `maintenance`: builds the daily maintenance (catches up on missed 04:00s, then runs
      daily), started with the service and stopped first; None runs none (a benchmark).
    """
    if workers not in (1, MODEL_WORKERS):
        raise ValueError(f"workers must be 1 or {MODEL_WORKERS}, not {workers}")
    clock = clock or settings.local_now
    # None: the default share of the cores; 0: torch's own default (the worker sets none).
    worker_threads = default_threads() if threads is None else (threads or None)
    async with AsyncExitStack() as stack:
        if repo is None:
            db = Database(settings.resolved_database_url, database_options(settings))
            stack.push_async_callback(db.close)
            # Every turn records this process, so a start-up fails only the turns of dead
            # processes (a console opened beside a running bot leaves the bot's turns alone).
            repo = Repository(db, instance_id=new_instance_id())
            interrupted = await repo.fail_interrupted_turns(clock())
            if interrupted:
                log.warning(
                    "%d turns were cut off by the last shutdown; marked failed", interrupted
                )
        loaded: list[Any] = []  # a backend loaded here, closed once its workers stopped

        async def close_loaded() -> None:
            for owned in loaded:
                await asyncio.to_thread(owned.close)  # a model child process exits

        stack.push_async_callback(close_loaded)
        started = [ModelWorker(KANANA_WORKER, threads=worker_threads)]
        if workers == MODEL_WORKERS:
            started.append(ModelWorker(POLYGLOT_WORKER, threads=worker_threads))
        for worker in started:
            worker.start()
            stack.push_async_callback(worker.stop)
        if backend is None:
            from engine.backends import load_backend  # torch: only when models are loaded

            backend = await started[0].run(load_backend, settings, worker_threads)
            loaded.append(backend)
        metrics = Metrics()
        stack.callback(repo.db.on_error(metrics.database_error))
        # A user's turns stay one at a time across processes on one PostgreSQL database.
        user_locks = UserLocks.for_url(repo.db.url, settings.db_lock_pool_size)
        stack.push_async_callback(user_locks.close)  # after the turns drained
        engine = new_engine(
            settings,
            repo,
            backend,
            started[0],
            clock=clock,
            polyglot_worker=started[1] if len(started) > 1 else None,
            metrics=metrics,
            user_locks=user_locks,
        )
        children = model_processes(backend)
        metrics.watch(engine.batchers.items(), started, children)
        service = OhLoraService(
            engine,
            repo,
            admin_ids=frozenset(str(i) for i in settings.admin_ids),
            tz=settings.tz,
            clock=clock,
        )
        # The environment's routing: the defaults each server's own settings change.
        service.moderation.use_defaults(
            chat_channel_ids=(str(i) for i in settings.chat_channel_ids),
            expression_picture=settings.expression_picture,
        )
        stack.push_async_callback(engine.drain)  # before the workers stop
        if maintenance is not None:
            daily = maintenance(repo, settings, clock)
            await daily.start()
            stack.push_async_callback(daily.stop)
            service.maintenance = daily
        if settings.metrics_port is not None:
            ping = repo.ping

            async def health() -> Health:
                return await check_health(ping, started, children)

            server = MetricsServer(
                metrics.registry, health, host=settings.metrics_host, port=settings.metrics_port
            )
            await server.start()
            stack.push_async_callback(server.stop)  # first: no scrape sees a half-closed engine
            service.metrics_server = server
        yield service
