"""Engine test fixtures shared by several files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from engine.rules.memory_items import MemoryItem
from engine.runtime.roles import Attempt
from engine.serving.backend import ReplyRow, SummaryRow
from engine.serving.worker import ModelWorker

WEDNESDAY_2PM = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Asia/Seoul"))


@dataclass
class FixedRoles:
    """A real backend with some roles answered by fixed functions of their row.

    Tests of the pipeline (what is stored under which key, which rule applies to a reply) must
    not depend on what a small demo model happens to sample: the roles a test is about answer
    here deterministically, every other call (S-BERTs, token counts, the other roles) goes to
    the real ``inner`` backend. With ``run_real`` a fixed role still runs the real model first
    (its output dropped), so the models carry the load they carry in service.
    """

    inner: Any
    reply: Callable[[str], str] | None = None  # final input -> reply
    summary: Callable[[str, str], str] | None = None  # (final input, reply) -> summary
    memory: Callable[[str], MemoryItem | None] | None = None  # final input -> item
    run_real: bool = False

    def __getattr__(self, name: str) -> Any:
        """Every other call and attribute of the Backend protocol is the real backend's."""
        if name == "inner":  # not set yet (copying): never recurse
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def mixes_roles(self) -> bool:
        """A fixed reply or summary cannot ride in the real mixed reply+summary batches."""
        return self.reply is None and self.summary is None and self.inner.mixes_roles

    def replies(self, rows: list[ReplyRow | Attempt]) -> list[Any]:
        if self.reply is None:
            return self.inner.replies(rows)
        if self.run_real:
            self.inner.replies(rows)
        return [self.reply(_new(row, ReplyRow).final_input) for row in rows]

    def summaries(self, rows: list[SummaryRow | Attempt]) -> list[Any]:
        if self.summary is None:
            return self.inner.summaries(rows)
        if self.run_real:
            self.inner.summaries(rows)
        return [self.summary(*_new(row, SummaryRow)) for row in rows]

    def memories(self, rows: list[str | Attempt]) -> list[Any]:
        if self.memory is None:
            return self.inner.memories(rows)
        if self.run_real:
            self.inner.memories(rows)
        return [self.memory(_new(row, str)) for row in rows]


R = TypeVar("R")


def _new(row: object, kind: type[R]) -> R:
    """A fixed role answers every row at once, so it never sees a retried `Attempt`."""
    assert isinstance(row, kind), row
    return row


@pytest.fixture
async def worker() -> AsyncIterator[ModelWorker]:
    """A started model worker, stopped after the test."""
    w = ModelWorker()
    w.start()
    yield w
    await w.stop()


@asynccontextmanager
async def engine_on_two_workers(
    repo: Any, backend: Any
) -> AsyncIterator[tuple[Any, ModelWorker, ModelWorker]]:
    """The service's engine (`build_engine`, default settings): the Kanana roles on one
    worker, the rest on a second; drained and stopped afterwards."""
    from engine.build import build_engine
    from engine.pipeline import Call
    from engine.settings import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    async with build_engine(
        settings,
        clock=lambda: WEDNESDAY_2PM,
        backend=backend,
        repo=repo,
        threads=1,
        maintenance=None,
    ) as service:
        engine = service.engine
        yield engine, engine.worker, engine.batchers[Call.ETHICS].worker
