"""The local console chat: a Korean REPL over the same service as the bot.

Its commands are the bot's (`/memory`, `/forget`, `/reset`, `/mystatus`, `/forget-me`), parsed the same way and answered
with the same catalogue strings; only the confirmation button is Discord's alone (the console
acts at once: the one local user typed the command themselves).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TextIO

from engine.api import OhLoraService, TurnKind, messages, parse_forget_target

CONSOLE_USER = "console"
CONSOLE_CHANNEL = "console"
QUIT_COMMANDS = ("/quit", "/exit")


class Console:
    """Reads lines, answers them through the service, prints replies and expressions."""

    def __init__(
        self, service: OhLoraService, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
    ) -> None:
        self.service = service
        self.stdin = stdin
        self.stdout = stdout

    def say(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    async def run(self) -> None:
        self.say(messages.CONSOLE_GREETING)
        lines = self._read_lines()
        while True:
            self.stdout.write(messages.CONSOLE_PROMPT)
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
        await self.service.drain()
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
        result = await self.service.chat(CONSOLE_USER, CONSOLE_CHANNEL, text)
        if result.notice:
            self.say(messages.CONSOLE_SYSTEM + result.notice)
        if result.reply and result.kind in (TurnKind.REPLY, TurnKind.WARNING):
            self.say(messages.CONSOLE_SPEAKER + result.reply)
        if result.background is not None:
            # the console shows the expression before the next prompt
            done = await result.background
            if done is not None:
                self.say(f"   {done.expression.render()}")

    async def command(self, text: str) -> bool:
        """Handle a slash command; False means quit."""
        name, _, arg = text.partition(" ")
        if name in QUIT_COMMANDS:
            return False
        if name == "/memory":
            self.say(await self.memory())
        elif name == "/forget":
            self.say(await self.forget(arg))
        elif name == "/reset":
            self.say(await self.reset())
        elif name == "/mystatus":
            history = await self.service.my_status(CONSOLE_USER)
            decay = await self.service.moderation.decay_info(CONSOLE_USER)  # empty unless on
            now = self.service.clock()
            self.say(messages.status_lines(history, self.service.tz, now, decay=decay))
        elif name == "/forget-me":
            self.say(messages.forget_me_done(await self.service.forget_me(CONSOLE_USER)))
        else:
            self.say(messages.CONSOLE_HELP)
        return True

    async def memory(self) -> str:
        view = await self.service.memory(CONSOLE_USER)
        return messages.memory_lines(view.items, cap=view.cap, evicted=view.evicted)

    async def forget(self, arg: str) -> str:
        target = parse_forget_target(arg)
        if target is None:
            return messages.FORGET_USAGE
        check = await self.service.check_forget(CONSOLE_USER, target)
        if not check.found:
            assert target.key is not None
            return messages.forget_missing(target.key)
        return messages.forget_done(target, await self.service.forget(CONSOLE_USER, target))

    async def reset(self) -> str:
        await self.service.reset(CONSOLE_USER, CONSOLE_CHANNEL)
        return messages.RESET_DONE
