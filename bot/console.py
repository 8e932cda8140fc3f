"""The local console chat: a Korean REPL over the same engine and storage as the bot."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TextIO

from engine.pipeline import Engine, TurnKind
from engine.rules import messages
from engine.rules.sanctions import OHLORA_EMOJI

CONSOLE_USER = "console"
CONSOLE_CHANNEL = "console"
PROMPT = "👤 나 : "
SPEAKER = f"{OHLORA_EMOJI} 오로라 : "
HELP = (
    "명령어: /memory (기억 보기), /forget [항목|all] (기억 지우기), "
    "/reset (대화 요약 지우기), /quit (끝내기)"
)


class Console:
    """Reads lines, answers them through `Engine.handle`, prints replies and expressions."""

    def __init__(
        self, engine: Engine, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
    ) -> None:
        self.engine = engine
        self.repo = engine.repo
        self.stdin = stdin
        self.stdout = stdout

    def say(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    async def run(self) -> None:
        self.say(f"오로라 {OHLORA_EMOJI} 와 대화를 시작합니다. {HELP}")
        lines = self._read_lines()
        while True:
            self.stdout.write(PROMPT)
            self.stdout.flush()
            line = await lines.get()
            if line is None:  # end of input
                break
            text = line.rstrip("\n")
            if text.strip().startswith("/"):
                if not await self.command(text.strip()):
                    break
                continue
            await self.turn(text)
        await self.engine.drain()
        self.say(messages.GOODBYE)

    def _read_lines(self) -> asyncio.Queue[str | None]:
        """Read stdin on a daemon thread, so Ctrl+C never waits for a pending readline."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def pump() -> None:
            try:
                for line in iter(self.stdin.readline, ""):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except (RuntimeError, ValueError):  # loop closed or stdin closed: nothing to deliver
                pass

        threading.Thread(target=pump, name="console-stdin", daemon=True).start()
        return queue

    async def turn(self, text: str) -> None:
        result = await self.engine.handle(CONSOLE_USER, CONSOLE_CHANNEL, text)
        if result.notice:
            self.say(f"[SYSTEM] {result.notice}")
        if result.reply and result.kind in (TurnKind.REPLY, TurnKind.WARNING):
            self.say(SPEAKER + result.reply)
        if result.background is not None:
            done = (
                await result.background
            )  # the console shows the expression before the next prompt
            if done is not None:
                self.say(f"   {done.expression.render()}")

    async def command(self, text: str) -> bool:
        """Handle a slash command; False means quit."""
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        now = self.engine.clock()
        if name in ("/quit", "/exit"):
            return False
        if name == "/memory":
            items = await self.repo.list_memories(CONSOLE_USER, now)
            self.say(
                "\n".join(f"  - {m.render()}" for m in items) or "  기억하고 있는 것이 없어요."
            )
        elif name == "/forget":
            if not arg:
                self.say("  사용법: /forget 항목이름  또는  /forget all")
            elif arg == "all":
                count = await self.engine.forget_all_memories(CONSOLE_USER)
                self.say(f"  기억 {count}개를 지웠어요.")
            elif await self.engine.forget_memory(CONSOLE_USER, arg):
                self.say(f"  [{arg}] 기억을 지웠어요.")
            else:
                self.say(f"  [{arg}] 이라는 기억은 없어요.")
        elif name == "/reset":
            await self.engine.reset_conversation(CONSOLE_USER, CONSOLE_CHANNEL)
            self.say("  대화 요약을 지웠어요. 새로 시작해요!")
        else:
            self.say(f"  {HELP}")
        return True
