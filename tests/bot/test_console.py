"""`python main.py --console` answers a scripted session on the real tiny models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "너는 누구야?\n/memory\n/forget\n/forget all\n/reset\n/quit\n"


def test_console_answers_a_scripted_session(tiny_preset, tmp_path: Path) -> None:
    env = clean_env(
        OHLORA_DATA_DIR=str(tmp_path / "state"),
        OHLORA_TIMEZONE="Asia/Seoul",
        OHLORA_MODELS_DIR=str(tiny_preset.artifacts.parent),
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--console"],
        input=SCRIPT,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "오로라 : " in out and "(눈 " in out and "고개 돌림" in out
    assert "사용법: /forget" in out and "기억" in out
    assert "대화 요약을 지웠어요" in out
    assert out.rstrip().endswith("다음에도 오로라와 함께해 주실 거죠?")
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "state" / "ohlora.db").exists()


def test_ctrl_c_at_the_prompt_exits_cleanly(tiny_preset, tmp_path: Path) -> None:
    import signal
    import threading
    import time

    env = clean_env(
        OHLORA_DATA_DIR=str(tmp_path / "state"),
        OHLORA_MODELS_DIR=str(tiny_preset.artifacts.parent),
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--console"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True
    )
    reader.start()
    deadline = time.monotonic() + 120
    while not any("대화를 시작합니다" in line for line in seen):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # stdin stays open: the reader thread is mid-readline
    assert proc.wait(timeout=60) == 0
    reader.join(timeout=5)
    assert "다음에도 오로라와 함께해 주실 거죠?" in "".join(seen)
    assert "Traceback" not in proc.stderr.read()


def test_without_a_token_it_says_how_to_host_and_chats_locally(tiny_preset, tmp_path: Path) -> None:
    env = clean_env(
        OHLORA_DATA_DIR=str(tmp_path / "state"), OHLORA_MODELS_DIR=str(tiny_preset.artifacts.parent)
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        input="/quit\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DISCORD_TOKEN is not set" in proc.stderr and ".env" in proc.stderr
    assert "--console" in proc.stderr
    assert proc.stdout.rstrip().endswith("다음에도 오로라와 함께해 주실 거죠?")
