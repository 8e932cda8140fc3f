"""Suite-wide set-up: never reach a model hub, and give each test its own database."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage import Database, Repository
from tests.postgres import (
    BACKENDS,
    Backend,
    PostgresServer,
    database_name,
    serve_for_tests,
)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess of the service, as an operator starts it: this one
    without any of the service's own settings, the hub offline, then ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OHLORA_", "DISCORD_", "DATABASE_"))
    }
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


# ---- databases: SQLite (embedded default) and a throwaway PostgreSQL (tests/postgres.py) ----
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session, started on first use (see `serve_for_tests`)."""
    yield from serve_for_tests()


HEAD_TEMPLATE = "ohlora_head"  # the PostgreSQL database migrated once, copied for each `db`


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await database.start()
    finally:
        await database.close()


@pytest.fixture(scope="session")
def postgres_head_template(postgres_server: PostgresServer) -> str:
    """A PostgreSQL database at the head revision, for `db` to copy: a copy costs one
    CREATE DATABASE where migrating an empty one costs the whole migration chain."""
    return postgres_server.prepared_template(HEAD_TEMPLATE, _migrate)


def fresh_database_url(
    backend: Backend, request: pytest.FixtureRequest, sqlite_path: Path, *, migrated: bool = False
) -> str:
    """A new database on `backend` (SQLite: the file `sqlite_path`), empty or, with
    `migrated`, already at the head revision where that is cheaper (PostgreSQL: a copy of
    the head template); a PostgreSQL one is dropped after the test."""
    if backend is Backend.SQLITE:
        return sqlite_url(sqlite_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_head_template") if migrated else None
    url = server.create_database(template=template) if template else server.create_database()
    request.addfinalizer(lambda: server.drop_database(database_name(url), wait=False))
    return url


@pytest.fixture(params=BACKENDS, ids=str)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database's URL, once per backend (SQLite file in tmp_path, fresh PG database)."""
    return fresh_database_url(Backend(request.param), request, tmp_path / "ohlora.db")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    """The backend of `db`/`repo`: SQLite, unless the test parametrizes `backend` indirectly
    (tests/storage does it for every test: `pytest_generate_tests` there)."""
    return Backend(getattr(request, "param", Backend.SQLITE))


@pytest.fixture
async def db(
    backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    database = Database(fresh_database_url(backend, request, tmp_path / "ohlora.db", migrated=True))
    await database.start()
    yield database
    await database.close()


@pytest.fixture
async def repo(db: Database) -> Repository:
    return Repository(db)


DEMO_MODELS = "demo_models"  # the marker of every test that needs the built demo models


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the demo models (directly or through another fixture), so
    ``pytest -m "not demo_models"`` runs the part that needs no 15-minute build."""
    for item in items:
        if "tiny_preset" in getattr(item, "fixturenames", ()):
            item.add_marker(DEMO_MODELS)


@pytest.fixture(scope="session")
def toy_preset(tmp_path_factory: pytest.TempPathFactory):
    """A complete toy preset (tokenizer, both bases, the four adapters, both S-BERTs), built
    in seconds through the training code: for tests of plumbing, not of what models say."""
    from tests.toy_models import toy_serving_preset_for

    return toy_serving_preset_for(tmp_path_factory)


@pytest.fixture(scope="session")
def toy_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``OHLORA_MODELS_DIR`` whose ``tiny`` preset is the toy one (tests/toy_models.py):
    a ``main.py`` subprocess loads it in seconds, for crash, restart and signal plumbing."""
    from tests.toy_models import toy_models_dir_for

    return toy_models_dir_for(tmp_path_factory)


@pytest.fixture(scope="session")
def toy_backend(toy_preset):
    """Every toy model in this process, as `LocalBackend.load` gives them to the service."""
    from engine.serving.hub import LocalBackend

    return LocalBackend.load(toy_preset)


def _split_backend(in_process, child):
    """The service's default shape: the Kanana roles of ``in_process`` here (decoding in
    chunks), the Polyglot roles and the S-BERTs in ``child``."""
    from engine.serving.hub import RoleBackend
    from engine.serving.processes import SplitBackend
    from engine.settings import DEFAULT_BATCH_CHUNK_TOKENS

    return SplitBackend(
        RoleBackend(in_process.roles, chunk_tokens=DEFAULT_BATCH_CHUNK_TOKENS), child
    )


@pytest.fixture(scope="session")
def toy_polyglot_child(toy_preset):
    """One seeded Polyglot child over the toy models for the session."""
    from engine.serving.hub import polyglot_process

    child = polyglot_process(toy_preset, threads=1, seed=0)
    yield child
    child.close()


@pytest.fixture
def toy_split_backend(toy_backend, toy_polyglot_child):
    """`tiny_split_backend`'s shape over the toy models."""
    return _split_backend(toy_backend, toy_polyglot_child)


@pytest.fixture(scope="session")
def tiny_preset():
    """The real embedded default, built once into artifacts/ (about 15 min on a fresh clone).
    Every test using it is marked ``demo_models``."""
    from engine.runtime.presets import tiny
    from training.bootstrap import bootstrap, is_built

    preset = tiny()
    if not is_built(preset):
        bootstrap(preset)
    return preset


@pytest.fixture(scope="session")
def tiny_backend(tiny_preset):
    from engine.serving.hub import LocalBackend

    return LocalBackend.load(tiny_preset)


@pytest.fixture(scope="session")
def tiny_polyglot_child(tiny_preset):
    """One seeded Polyglot child over the demo models for the session: starting one (torch,
    Kiwi, the models) cost 30-50 s per test on two busy cores. Like the in-process
    `tiny_backend`, its sampling state runs on from test to test."""
    from engine.serving.hub import polyglot_process

    child = polyglot_process(tiny_preset, threads=1, seed=0)
    yield child
    child.close()


@pytest.fixture
def tiny_split_backend(tiny_backend, tiny_polyglot_child):
    """The service's default shape over the demo models: the Kanana roles here (decoding in
    chunks), the Polyglot roles and the S-BERTs in the session's child process."""
    return _split_backend(tiny_backend, tiny_polyglot_child)
