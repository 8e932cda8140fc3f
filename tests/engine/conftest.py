"""Engine test fixtures shared by several files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.worker import ModelWorker

WEDNESDAY_2PM = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Asia/Seoul"))


@pytest.fixture
async def worker() -> AsyncIterator[ModelWorker]:
    """A started model worker, stopped after the test."""
    w = ModelWorker()
    w.start()
    yield w
    await w.stop()


@asynccontextmanager
async def engine_on_two_workers(repo: Any, backend: Any) -> AsyncIterator[tuple[Any, ModelWorker, ModelWorker]]:
    """The service's engine: the Kanana roles on one worker, the rest on a second; drained
    and stopped afterwards."""
    from engine.pipeline import Engine

    kanana, polyglot = ModelWorker("kanana", threads=1), ModelWorker("polyglot", threads=1)
    kanana.start()
    polyglot.start()
    engine = Engine(repo, backend, kanana, clock=lambda: WEDNESDAY_2PM, max_prompt_tokens=48,
                    max_message_chars=2000, polyglot_worker=polyglot)
    try:
        yield engine, kanana, polyglot
    finally:
        await engine.drain()
        await kanana.stop()
        await polyglot.stop()
