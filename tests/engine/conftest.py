"""Engine test fixtures shared by several files."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.worker import ModelWorker


@pytest.fixture
async def worker() -> AsyncIterator[ModelWorker]:
    """A started model worker, stopped after the test."""
    w = ModelWorker()
    w.start()
    yield w
    await w.stop()
