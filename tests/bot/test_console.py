"""`python main.py --console` answers a scripted session on the real tiny models."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from bot.console import CONSOLE_USER, Console
from engine.api import messages, messages_memory
from tests.bot.conftest import Running
from tests.bot.fake_discord import MINSU, Sent
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "너는 누구야?\n/memory\n/forget\n/forget all\n/reset\n/quit\n"


def test_console_answers_a_scripted_session(tiny_preset, tmp_path: Path) -> None:
    """On the demo models, started as an operator without a Discord token does: it says how
    to host, then chats locally (what `--console` opens directly)."""
    env = clean_env(
        OHLORA_DATA_DIR=str(tmp_path / "state"),
        OHLORA_TIMEZONE="Asia/Seoul",
        OHLORA_MODELS_DIR=str(tiny_preset.artifacts.parent),
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        input=SCRIPT,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DISCORD_TOKEN is not set" in proc.stderr and ".env" in proc.stderr
    assert "--console" in proc.stderr
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


# The same commands, typed in the console and sent as slash commands: (command, its argument).
SAME_COMMANDS = [
    ("memory", None),
    ("forget", "[좋아하는 가수: 아이유]"),  # as /memory shows it: the key is the part before ':'
    ("forget", "혈액형"),  # no such item
    ("forget", "[]"),  # nothing named: how to use it
    ("forget", "ALL"),
    ("reset", None),
    ("memory", None),
]
STORED = [("좋아하는 가수", "아이유"), ("오늘 일정", "시험"), ("좋아하는 꽃", "백합")]


async def bot_answer(running: Running, command: str, arg: str | None) -> str:
    """What the bot finally says to a slash command (after pressing 지우기 where it asks)."""
    fake = running.fake
    options = {"item": arg} if arg is not None else None
    iid = await fake.slash(command, options)
    [sent, *_] = await fake.wait_for(lambda: fake.responses(iid))
    if fake.button(sent, "지우기") is None:  # an answer, or the memory panel's text
        return sent.content
    question: Sent = sent
    await fake.click(question, "지우기")
    await fake.wait_for(lambda: not fake.messages[question.id].components)
    return fake.messages[question.id].content


async def test_the_console_and_the_bot_give_the_same_answers(toy_running: Running) -> None:
    """/memory, /forget and /reset: the same parsing and the same Korean answers for the same
    stored data (the bot's user and the console's hold identical items; the panel's text is
    the console's numbered list)."""
    running = toy_running
    now = running.clock.now
    for user in (MINSU["id"], CONSOLE_USER):
        for key, value in STORED:
            await running.repo.upsert_memory(user, key, value, now)
    from_bot = [await bot_answer(running, command, arg) for command, arg in SAME_COMMANDS]

    script = "".join(f"/{c} {a}\n" if a is not None else f"/{c}\n" for c, a in SAME_COMMANDS)
    out = io.StringIO()
    await Console(running.service, io.StringIO(script + "/quit\n"), out).run()
    # The greeting, then one answer after each prompt; the last prompt is /quit's.
    chunks = out.getvalue().split(messages.CONSOLE_PROMPT)
    from_console = [chunk.rstrip("\n") for chunk in chunks[1:-1]]

    assert from_console == from_bot
    assert "1. [좋아하는 가수: 아이유]" in from_bot[0] and "(지금 3개" in from_bot[0]
    assert from_bot[1:5] == [
        "[좋아하는 가수] 기억을 지웠어요.",
        messages.forget_missing("혈액형"),
        messages.FORGET_USAGE,
        "기억 2개를 지웠어요.",
    ]
    assert from_bot[5] == messages.RESET_DONE
    assert from_bot[6].startswith(messages.NOTHING_REMEMBERED)
    for user in (MINSU["id"], CONSOLE_USER):
        assert await running.repo.list_memories(user, now) == []


async def _console(running: Running, script: str) -> list[str]:
    """The console's answers to `script`, one per command (the greeting dropped)."""
    out = io.StringIO()
    await Console(running.service, io.StringIO(script + "/quit\n"), out).run()
    return [chunk.rstrip("\n") for chunk in out.getvalue().split(messages.CONSOLE_PROMPT)[1:-1]]


async def test_the_console_edits_pins_deletes_and_shows_the_history(
    toy_running: Running,
) -> None:
    """The panel's actions as `/memory <action> N`, N the number `/memory` shows."""
    running = toy_running
    now = running.clock.now
    for key, value in STORED:
        await running.repo.upsert_memory(CONSOLE_USER, key, value, now)
    answers = await _console(
        running,
        "/memory\n/memory pin 1\n/memory edit 1 좋아하는 가수: 뉴진스\n"
        "/memory edit 2 좋아하는 꽃: 백합: 장미\n/memory edit 2 좋아하는 가수: 장미\n"
        "/memory delete 2\n/memory unpin 9\n/memory frobnicate 1\n/memory history 1\n"
        "/memory history\n/memory\n",
    )
    listed, pin, edit, bad, taken, delete, missing, usage, one, every, after = answers
    assert "1. [좋아하는 가수: 아이유]" in listed and "3. [좋아하는 꽃: 백합]" in listed
    assert pin.startswith(messages_memory.PIN_MARK) and "고정했어요" in pin
    assert edit == "고쳤어요: 📌 [좋아하는 가수: 뉴진스]"
    assert "쌍점" in bad and "아무것도 바뀌지 않았어요" in bad
    assert "이미 있어요" in taken
    assert delete == "[오늘 일정: 시험] 기억을 지웠어요."
    assert missing == messages_memory.no_such_number("9")
    assert usage == messages_memory.CONSOLE_MEMORY_USAGE
    assert all("[좋아하는 가수]" in line for line in one.splitlines()[1:])
    assert len(one.splitlines()) == 4  # the title, then added, pinned, changed
    assert "삭제: (있던 내용: 시험) (내가 직접)" in every.splitlines()[1]
    assert "1. 📌 [좋아하는 가수: 뉴진스]" in after and "2. [좋아하는 꽃: 백합]" in after
    items = await running.repo.list_memories(CONSOLE_USER, now)
    assert [(m.key, m.value, m.pinned) for m in items] == [
        ("좋아하는 가수", "뉴진스", True),
        ("좋아하는 꽃", "백합", False),
    ]


async def test_the_console_rates_explains_regenerates_and_exports(
    toy_running: Running, tmp_path: Path
) -> None:
    """/why, /rate, /regenerate and /export act on the console's latest turn through
    `service.feedback`, as the Discord buttons, menu and command do."""
    import json

    from engine.api import messages_feedback

    running = toy_running
    running.engine.batchers["memory"].fn = lambda rows: [None for _ in rows]
    before = await _console(running, "/why\n/rate up\n/regenerate\n")
    assert before == [messages_feedback.CONSOLE_NO_TURN] * 3
    out = tmp_path / "mine.json"
    answers = await _console(
        running, f"안녕 오로라\n/why\n/rate sideways\n/rate down\n/export {out}\n/regenerate\n"
    )
    reply, why, usage, rated, exported, regenerated = answers
    assert messages.CONSOLE_SPEAKER in reply
    assert why.startswith(messages_feedback.EXPLAIN_TITLE)
    assert usage == messages_memory.CONSOLE_RATE_USAGE
    assert rated == messages_feedback.rated(False)
    assert exported == messages_feedback.console_exported(str(out))
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["user_id"] == CONSOLE_USER and [r["rating"] for r in data["ratings"]] == [-1]
    # A new reply, or the refusal for a model that repeated itself.
    assert messages.CONSOLE_SPEAKER in regenerated or regenerated == (
        messages_feedback.regenerate_refused("unchanged")
    )
