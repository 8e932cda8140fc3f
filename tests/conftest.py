"""Suite-wide set-up: never reach a model hub, and give each test its own database."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import Database, Repository


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


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(sqlite_url(tmp_path / "ohlora.db"))
    await database.start()
    yield database
    await database.close()


@pytest.fixture
async def repo(db: Database) -> Repository:
    return Repository(db)


@pytest.fixture(scope="session")
def tiny_preset():
    """The real embedded default, built once into artifacts/ (about 15 min on a fresh clone)."""
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


@pytest.fixture
def tiny_split_backend(tiny_preset, tiny_backend):
    """The service's default shape: the Kanana roles here (decoding in chunks), the Polyglot
    roles and the S-BERTs in a child process (a fresh one, seeded: reproducible sampling)."""
    from engine.serving.hub import RoleBackend, polyglot_process
    from engine.serving.processes import SplitBackend
    from engine.settings import DEFAULT_BATCH_CHUNK_TOKENS

    child = polyglot_process(tiny_preset, threads=1, seed=0)
    backend = SplitBackend(
        RoleBackend(tiny_backend.roles, chunk_tokens=DEFAULT_BATCH_CHUNK_TOKENS), child
    )
    yield backend
    backend.close()
