"""Engine test fixtures shared by several files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.rules.memory_items import MemoryItem
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
        if name == "inner":  # not set yet (copying): never recurse
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def mixes_roles(self) -> bool:
        """A fixed reply or summary cannot ride in the real mixed reply+summary batches."""
        return (
            self.reply is None
            and self.summary is None
            and bool(getattr(self.inner, "mixes_roles", False))
        )

    def _answer(
        self,
        real: Callable[[list[Any]], list[Any]],
        fixed: Callable[..., Any] | None,
        rows: list[Any],
        unpack: bool,
    ) -> list[Any]:
        if fixed is None:
            return real(rows)
        if self.run_real:
            real(rows)
        return [fixed(*row) if unpack else fixed(row) for row in rows]

    def replies(self, rows: list[Any]) -> list[Any]:
        fixed = None if self.reply is None else (lambda final_input, now: self.reply(final_input))
        return self._answer(self.inner.replies, fixed, rows, unpack=True)

    def summaries(self, rows: list[Any]) -> list[Any]:
        return self._answer(self.inner.summaries, self.summary, rows, unpack=True)

    def memories(self, rows: list[Any]) -> list[Any]:
        return self._answer(self.inner.memories, self.memory, rows, unpack=False)


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
    """The service's engine: the Kanana roles on one worker, the rest on a second; drained
    and stopped afterwards."""
    from engine.pipeline import Engine

    kanana, polyglot = ModelWorker("kanana", threads=1), ModelWorker("polyglot", threads=1)
    kanana.start()
    polyglot.start()
    engine = Engine(
        repo,
        backend,
        kanana,
        clock=lambda: WEDNESDAY_2PM,
        max_prompt_tokens=48,
        max_message_chars=2000,
        polyglot_worker=polyglot,
    )
    try:
        yield engine, kanana, polyglot
    finally:
        await engine.drain()
        await kanana.stop()
        await polyglot.stop()
