"""The whole storage suite runs on every backend: SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import fresh_database_url
from tests.postgres import BACKENDS, Backend


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test here that uses `db`, `repo` or `new_database` runs once per backend."""
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, indirect=True, ids=str)


@pytest.fixture
def new_database(
    backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], str]:
    """Makes empty databases on the test's backend (for tests that need more than `db`)."""
    numbers = itertools.count()
    return lambda: fresh_database_url(backend, request, tmp_path / f"db{next(numbers)}.sqlite")
