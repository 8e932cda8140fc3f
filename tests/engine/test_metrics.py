"""Issue 17 (observability): `/metrics` moves with the turns, `/healthz` tells what is down.

The engine runs on the toy models through `build_engine` with `OHLORA_METRICS_PORT=0`; the
test scrapes the served text over HTTP, as Prometheus would. What the toy models say does not
matter: the memory role and the ethics scores answer deterministically (`Provoking`), so a
given message stores an item or earns a sanction.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.api import OhLoraService, build_engine
from engine.metrics import (
    HEALTH_PATH,
    METRICS_PATH,
    Check,
    Metrics,
    MetricsUnavailable,
    check_health,
)
from engine.pipeline import TurnKind
from engine.rules.ethics_rules import NORMAL_NAME, PAEDRIP_NAME
from engine.rules.memory_items import MemoryItem
from engine.serving.batching import Again, Batcher
from engine.serving.hub import RoleBackend
from engine.serving.processes import EthicsScores, ModelProcess, SplitBackend
from engine.serving.worker import ModelWorker
from engine.settings import Settings
from storage import Database, Repository
from tests.conftest import sqlite_url
from tests.engine.conftest import FixedRoles
from tests.postgres import (
    PostgresServer,
    database_name,
    serve_for_tests,
)

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Asia/Seoul"))
INSULT = "로라야 너 애미 없지"  # scored as 패드립 by `Provoking`: a block, level 1
ITEM = MemoryItem("좋아하는 가수", "아이유")
HTTP_TIMEOUT_S = 30.0
WAIT_S = 30.0  # the longest a killed child may take to be reaped
POLL_S = 0.05

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Provoking(FixedRoles):
    """The toy backend with a fixed memory item per turn and ethics scores that sanction
    `INSULT` (paedrip, which needs no declining answer) and nothing else."""

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return [
            {PAEDRIP_NAME: 1.0, NORMAL_NAME: 0.0} if text == INSULT else {NORMAL_NAME: 1.0}
            for text in texts
        ]


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def served(
    repo: Repository, backend: Any, **settings: Any
) -> AsyncIterator[tuple[OhLoraService, httpx.AsyncClient]]:
    """The service with metrics on a free port, and an HTTP client pointed at it."""
    async with build_engine(
        _settings(metrics_port=0, **settings),
        clock=lambda: NOW,
        backend=backend,
        repo=repo,
        threads=1,
        maintenance=None,
    ) as service:
        assert service.metrics_server is not None and service.metrics_server.port > 0
        async with httpx.AsyncClient(
            base_url=service.metrics_server.url, timeout=HTTP_TIMEOUT_S
        ) as client:
            yield service, client


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get(METRICS_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """A sample summed over every label set (e.g. batches of every call)."""
    return sum(v for (n, _), v in samples.items() if n == name)


async def test_scraped_counters_move_with_the_turns(repo: Repository, toy_backend: Any) -> None:
    backend = Provoking(toy_backend, memory=lambda _final_input: ITEM)
    async with served(repo, backend) as (service, client):
        before = await scrape(client)
        assert total(before, "ohlora_turns_total") == 0
        assert value(before, "ohlora_model_worker_up", worker="ohlora-kanana") == 1
        assert value(before, "ohlora_model_worker_up", worker="ohlora-polyglot") == 1

        for text in ("안녕 로라야", "오늘 뭐 해?"):
            result = await service.chat("u1", "c1", text)
            assert result.kind is TurnKind.REPLY and result.background is not None
            assert (await result.background) is not None  # the memory item is stored
        blocked = await service.chat("u2", "c1", INSULT)
        assert blocked.kind is TurnKind.BLOCKED
        notice = await service.chat("u2", "c1", "미안해")
        assert notice.kind is TurnKind.BLOCK_NOTICE
        empty = await service.chat("u3", "c1", "   ")
        assert empty.kind is TurnKind.EMPTY
        await service.drain()

        after = await scrape(client)
    assert value(after, "ohlora_turns_total", kind="reply") == 2
    assert value(after, "ohlora_turns_total", kind="blocked") == 1
    assert value(after, "ohlora_turns_total", kind="block_notice") == 1
    assert value(after, "ohlora_turns_total", kind="empty") == 1
    # The reply model answered three of them (two replies and the blocked turn).
    assert value(after, "ohlora_reply_latency_seconds_count") == 3
    assert value(after, "ohlora_reply_latency_seconds_bucket", le="+Inf") == 3
    assert value(after, "ohlora_sanctions_total", category="paedrip", level="1") == 1
    assert value(after, "ohlora_memory_upserts_total") == 2
    # Every model call went through a batch: three ethics rows, two memory rows.
    assert value(after, "ohlora_batch_size_sum", call="ethics") == 3
    assert value(after, "ohlora_batch_size_sum", call="memory") == 2
    assert value(after, "ohlora_batch_size_count", call="ethics") >= 1
    assert total(after, "ohlora_batch_size_count") > total(before, "ohlora_batch_size_count")
    # Nothing is left waiting once the turns are done; nothing failed.
    assert ("ohlora_queue_depth", frozenset({("call", "ethics")})) in after
    assert total(after, "ohlora_queue_depth") == 0
    assert total(after, "ohlora_worker_queue_depth") == 0
    assert total(after, "ohlora_model_errors_total") == 0
    assert total(after, "ohlora_database_errors_total") == 0
    # The engine's own instruments say the same without HTTP.
    assert service.metrics.value("ohlora_memory_upserts_total") == 2


async def test_a_failing_model_call_counts_as_a_model_error(
    repo: Repository, toy_backend: Any
) -> None:
    def broken(texts: list[str]) -> list[dict[str, float]]:
        raise RuntimeError("ethics model exploded")

    backend = FixedRoles(toy_backend)
    async with served(repo, backend) as (service, client):
        service.engine.batchers["ethics"].fn = broken
        result = await service.chat("u1", "c1", "안녕")
        assert result.kind is TurnKind.FAILED
        samples = await scrape(client)
    assert value(samples, "ohlora_model_errors_total", call="ethics") == 1
    assert value(samples, "ohlora_turns_total", kind="failed") == 1
    assert value(samples, "ohlora_reply_latency_seconds_count") == 0


def _replace_with_a_folder(path: Path) -> None:
    for leftover in path.parent.glob(f"{path.name}*"):  # the file, its WAL and shared memory
        leftover.unlink()
    path.mkdir()


async def test_healthz_is_200_then_503_when_the_database_is_gone(
    tmp_path: Path, toy_backend: Any
) -> None:
    path = tmp_path / "ohlora.db"
    db = Database(sqlite_url(path))
    await db.start()
    try:
        async with served(Repository(db), FixedRoles(toy_backend)) as (service, client):
            healthy = await client.get(HEALTH_PATH)
            assert healthy.status_code == 200
            assert healthy.json() == {
                "status": "ok",
                "checks": {str(c): "ok" for c in Check},
            }

            # The database file becomes unreachable: pooled connections closed, a folder
            # where the file was (SQLite cannot open it, nor create a new file there).
            await db.engine.dispose()
            _replace_with_a_folder(path)
            down = await client.get(HEALTH_PATH)
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "unavailable"
            assert body["checks"]["database"] != "ok"
            assert body["checks"]["model_workers"] == "ok"
            assert service.metrics.value("ohlora_database_errors_total", error="OperationalError")

            shutil.rmtree(path)  # the database is back (empty, but it answers)
            assert (await client.get(HEALTH_PATH)).status_code == 200
    finally:
        await db.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own, so it may stop it (never the session's)."""
    yield from serve_for_tests()


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    db = Database(url)
    await db.start()
    try:
        yield db
    finally:
        await db.close()


async def test_healthz_is_503_when_the_postgresql_server_stopped(
    own_postgres: PostgresServer, toy_backend: Any
) -> None:
    url = await asyncio.to_thread(own_postgres.create_database)
    async with (
        migrated(url) as db,
        served(Repository(db), FixedRoles(toy_backend)) as (service, client),
    ):
        assert (await client.get(HEALTH_PATH)).status_code == 200
        await service.chat("u1", "c1", "안녕")  # pooled connections in use, then idle
        await service.drain()
        await asyncio.to_thread(own_postgres.stop)
        down = await client.get(HEALTH_PATH)
        assert down.status_code == 503
        assert down.json()["checks"]["database"] != "ok"
        assert total(await scrape(client), "ohlora_database_errors_total") >= 1


async def test_healthz_is_503_while_the_postgresql_database_refuses_connections(
    postgres_server: PostgresServer, toy_backend: Any
) -> None:
    """The session's server stays up; only this test's database turns connections away."""
    url = await asyncio.to_thread(postgres_server.create_database)
    name = database_name(url)
    async with (
        migrated(url) as db,
        served(Repository(db), FixedRoles(toy_backend)) as (_service, client),
    ):
        assert (await client.get(HEALTH_PATH)).status_code == 200
        await asyncio.to_thread(
            postgres_server.psql,
            f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false; '
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        try:
            down = await client.get(HEALTH_PATH)
            assert down.status_code == 503
            assert down.json()["checks"]["database"] != "ok"
        finally:
            await asyncio.to_thread(
                postgres_server.psql, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
            )
        assert (await client.get(HEALTH_PATH)).status_code == 200
    await asyncio.to_thread(postgres_server.drop_database, name)


async def test_healthz_is_503_when_a_model_worker_stopped(
    repo: Repository, toy_backend: Any
) -> None:
    async with served(repo, FixedRoles(toy_backend)) as (service, client):
        await service.engine.worker.stop()
        down = await client.get(HEALTH_PATH)
        samples = await scrape(client)
    assert down.status_code == 503
    checks = down.json()["checks"]
    assert checks["model_workers"] == "not running: ohlora-kanana"
    assert checks["database"] == "ok"
    assert value(samples, "ohlora_model_worker_up", worker="ohlora-kanana") == 0


class Scores:
    """A model child's stand-in backend: only the ethics call, and what a child reports."""

    ethics_thresholds: ClassVar[dict[str, float]] = {PAEDRIP_NAME: 0.9}
    normal_veto = 0.5

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return [{NORMAL_NAME: 1.0} for _ in texts]


def load_scores() -> Scores:
    return Scores()


async def _until(condition: Callable[[], bool]) -> None:
    """Poll `condition` until it holds, failing after `WAIT_S`."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(POLL_S)


async def test_healthz_is_503_while_a_model_child_is_dead(
    repo: Repository, toy_backend: Any
) -> None:
    """A killed child fails the check until the next model call replaces it."""
    child = ModelProcess(load_scores, name="test-child")
    child.start()
    try:
        backend = await asyncio.to_thread(SplitBackend, RoleBackend(toy_backend.roles), child)
        async with served(repo, backend) as (_service, client):
            assert (await client.get(HEALTH_PATH)).status_code == 200
            samples = await scrape(client)
            assert value(samples, "ohlora_model_process_up", process="test-child") == 1

            pid = child.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await _until(lambda: not child.alive)
            down = await client.get(HEALTH_PATH)
            assert down.status_code == 503
            assert down.json()["checks"]["model_processes"] == "not running: test-child"
            samples = await scrape(client)
            assert value(samples, "ohlora_model_process_up", process="test-child") == 0

            await asyncio.to_thread(child.call, EthicsScores(["안녕"]))  # a fresh child answers
            assert (await client.get(HEALTH_PATH)).status_code == 200
            samples = await scrape(client)
            assert value(samples, "ohlora_model_process_restarts_total", process="test-child") == 1
    finally:
        child.close()


async def test_healthz_is_503_when_the_database_does_not_answer_in_time() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    health = await check_health(hangs, [], db_timeout_s=0.01)
    assert not health.ok and Check.DATABASE in health.failures


async def test_without_a_port_nothing_is_served_but_metrics_still_count(
    repo: Repository, toy_backend: Any
) -> None:
    settings = _settings()
    assert settings.metrics_port is None and settings.metrics_host == "127.0.0.1"
    async with build_engine(
        settings,
        clock=lambda: NOW,
        backend=FixedRoles(toy_backend),
        repo=repo,
        threads=1,
        maintenance=None,
    ) as service:
        assert service.metrics_server is None
        await service.chat("u1", "c1", "안녕")
        await service.drain()
        assert service.metrics.value("ohlora_turns_total", kind="reply") == 1


def test_a_blank_metrics_port_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OHLORA_METRICS_PORT", " ")
    assert _settings().metrics_port is None
    monkeypatch.setenv("OHLORA_METRICS_PORT", "9464")
    assert _settings().metrics_port == 9464


def test_engines_in_one_process_keep_their_own_registries() -> None:
    one, two = Metrics(), Metrics()
    one.turn(TurnKind.REPLY, 0.1, answered=True)
    assert one.value("ohlora_turns_total", kind="reply") == 1
    assert two.value("ohlora_turns_total", kind="reply") == 0


async def test_batches_report_sizes_retries_and_failures() -> None:
    """A rejected attempt (`Again`) is a retry; a row whose call raises is a model error."""
    metrics = Metrics()
    worker = ModelWorker("test-worker")
    worker.start()
    tried: set[int] = set()

    def once_more(rows: list[int]) -> list[Any]:
        out: list[Any] = []
        for row in rows:
            if row < 0:
                raise ValueError("a bad row")
            out.append(row if row in tried else Again(row))
            tried.add(row)
        return out

    batcher: Batcher[int, Any] = Batcher(
        worker, once_more, priority=0, name="test", observer=metrics
    )
    try:
        assert await asyncio.gather(batcher(1), batcher(2)) == [1, 2]
        with pytest.raises(ValueError):
            await batcher(-1)
    finally:
        await worker.stop()
    assert metrics.value("ohlora_model_retries_total", call="test") == 2
    assert metrics.value("ohlora_model_errors_total", call="test") == 1
    assert metrics.value("ohlora_batch_size_sum", call="test") == 2 + 2 + 1
    assert batcher.waiting == 0


async def test_a_metrics_port_in_use_stops_the_start_with_its_address(
    repo: Repository, toy_backend: Any
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsUnavailable, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            async with build_engine(
                _settings(metrics_port=port),
                clock=lambda: NOW,
                backend=FixedRoles(toy_backend),
                repo=repo,
                threads=1,
                maintenance=None,
            ):
                pytest.fail("the service started on a port in use")
