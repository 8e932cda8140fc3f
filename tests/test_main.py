"""The entry point as an operator meets it: a subprocess with a real environment."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]
SECRET = "MTAxMDEwMTAxMDEw.SECRET-TOKEN-VALUE"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_setting_stops_with_one_line_and_no_token(tmp_path: Path) -> None:
    proc = _run(tmp_path, DISCORD_TOKEN=SECRET, OHLORA_TIMEZONE="Mars/Olympus")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "OHLORA_TIMEZONE" in lines[0]
    assert SECRET not in proc.stderr + proc.stdout


def test_first_run_creates_the_database_under_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "state"
    proc = _run(
        tmp_path, OHLORA_DATA_DIR=str(data), DISCORD_TOKEN=SECRET, OHLORA_MODEL_PRESET="production"
    )
    assert (data / "ohlora.db").exists(), proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    # With a token it goes on to host, which needs the production weights: one clear line.
    assert proc.returncode == 1
    assert "cannot load the models" in proc.stderr and "Traceback" not in proc.stderr


def test_unwritable_data_dir_is_a_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = _run(tmp_path, OHLORA_DATA_DIR=str(blocker / "sub"))
    assert proc.returncode == 1
    assert "cannot prepare storage" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_database_url_is_logged_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server database's URL carries its password; the start-up log line must not."""
    import main

    url = "postgresql+asyncpg://ohlora:hunter2@db.internal:5432/ohlora"

    async def prepared(settings: Any) -> str:  # no database server here: only the log matters
        return settings.resolved_database_url

    async def served(settings: Any) -> int:
        return main.EXIT_OK

    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("DISCORD_TOKEN", "OHLORA_DISCORD_TOKEN", "OHLORA_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("OHLORA_MODEL_PRESET", "production")  # nothing to build
    monkeypatch.setattr(main, "prepare_storage", prepared)
    monkeypatch.setattr(main, "serve_console", served)
    with caplog.at_level(logging.INFO, logger="ohlora"):
        assert main.main(["--console"]) == main.EXIT_OK
    [ready] = [r.getMessage() for r in caplog.records if "database ready" in r.getMessage()]
    assert "hunter2" not in caplog.text and "db.internal:5432/ohlora" in ready
    sqlite = tmp_path / "ohlora.db"
    assert main.loggable_database_url(f"sqlite+aiosqlite:///{sqlite}") == str(sqlite)


LOAD_FROM_HUB_IDS = """
from engine.runtime.lm import MissingBaseModel, load_base
from engine.runtime.sbert import EthicsClassifier

try:
    load_base("kakaocorp/kanana-1.5-2.1b-base", "kanana_base")
    print("LOADED base")
except MissingBaseModel as exc:
    print("MISSING", exc)
try:
    EthicsClassifier.load("klue/roberta-base")
    print("LOADED sbert")
except Exception as exc:
    print("FAILED", type(exc).__name__)
"""


def test_models_load_only_from_local_files_even_with_the_hub_online(tmp_path: Path) -> None:
    """Without HF_HUB_OFFLINE a missing hub id is a clear error at once, and nothing is
    fetched: every connection would go through a proxy here, which counts them."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    connections: list[object] = []
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            connections.append(conn)
            conn.close()  # a dead end: refuse whatever it asks

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {
        k: v
        for k, v in clean_env().items()
        if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
        and k.lower() != "no_proxy"
    }
    env.update(
        HF_HOME=str(tmp_path / "empty_hf_home"),
        HTTPS_PROXY=proxy,
        HTTP_PROXY=proxy,
        https_proxy=proxy,
        http_proxy=proxy,
        ALL_PROXY=proxy,
        PYTHONPATH=str(ROOT),
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", LOAD_FROM_HUB_IDS],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        done.set()
        counter.join()
        listener.close()
    assert connections == [], proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(
        "MISSING base model kakaocorp/kanana-1.5-2.1b-base is not in the local Hugging Face cache"
    ), proc.stdout + proc.stderr[-2000:]
    assert "kanana_base" in lines[0]
    assert lines[1].startswith("FAILED"), proc.stdout


def test_a_metrics_port_in_use_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`build_engine` raises `MetricsUnavailable` for a busy port (tests/engine/test_metrics.py);
    the entry point turns it into one line and exit status 1, not a traceback."""
    import main

    async def served(settings: Any) -> int:
        raise main.MetricsUnavailable(98, "cannot serve metrics on 127.0.0.1:9100: in use")

    monkeypatch.chdir(tmp_path)
    for name in ("DISCORD_TOKEN", "OHLORA_DISCORD_TOKEN", "OHLORA_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OHLORA_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OHLORA_MODEL_PRESET", "production")  # nothing to build
    monkeypatch.setattr(main, "serve_console", served)
    assert main.main(["--console"]) == main.EXIT_NOT_READY
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("cannot serve metrics on 127.0.0.1:9100: in use")
    assert "Traceback" not in "\n".join(err)
