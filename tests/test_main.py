"""The entry point as an operator meets it: a subprocess with a real environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]
SECRET = "MTAxMDEwMTAxMDEw.SECRET-TOKEN-VALUE"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        cwd=tmp_path, env=clean_env(**env), capture_output=True, text=True, timeout=120,
    )


def test_bad_setting_stops_with_one_line_and_no_token(tmp_path: Path) -> None:
    proc = _run(tmp_path, DISCORD_TOKEN=SECRET, OHLORA_TIMEZONE="Mars/Olympus")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "OHLORA_TIMEZONE" in lines[0]
    assert SECRET not in proc.stderr + proc.stdout


def test_first_run_creates_the_database_under_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "state"
    proc = _run(tmp_path, OHLORA_DATA_DIR=str(data), DISCORD_TOKEN=SECRET, OHLORA_MODEL_PRESET="production")
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
