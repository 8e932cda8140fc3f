"""The local console chat: a Korean REPL over the same service as the bot.

Its commands are the bot's (`/memory`, `/forget`, `/reset`, `/mystatus`, `/forget-me`), parsed
the same way and answered with the same catalogue strings; only the buttons are Discord's alone
(the console acts at once: the one local user typed the command themselves). The memory panel
becomes numbered items and `/memory edit|pin|unpin|delete|history N`; her latest reply's
regenerate, ratings and "why" are `/regenerate`, `/rate up|down`, `/why`; `/export [PATH]`
writes the data export to a file.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import TextIO

from engine.api import (
    InvalidMemoryItem,
    MemoryRecord,
    OhLoraService,
    Rating,
    RegenerateOutcome,
    TurnKind,
    messages,
    messages_feedback,
    messages_memory,
    parse_forget_target,
)

CONSOLE_USER = "console"
CONSOLE_CHANNEL = "console"
QUIT_COMMANDS = ("/quit", "/exit")
RATINGS = {"up": Rating.UP, "down": Rating.DOWN}
# The operator at the console holds the database anyway: `/why` shows what admins see.
CONSOLE_SEES_ADMIN_DETAILS = True
EXPORT_INDENT = 2


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
            self.say(await self.memory(arg))
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
        elif name == "/regenerate":
            await self.regenerate()
        elif name == "/rate":
            self.say(await self.rate(arg))
        elif name == "/why":
            self.say(await self.why())
        elif name == "/export":
            self.say(await self.export(arg))
        else:
            self.say(messages.CONSOLE_HELP)
        return True

    # ---- the memory panel, as numbered items -------------------------------------------------
    async def memory(self, arg: str = "") -> str:
        """`/memory`: every item numbered; `/memory edit N 이름: 내용`, `pin N`, `unpin N`,
        `delete N`, `history [N]` act on the item numbered N."""
        action, _, rest = arg.strip().partition(" ")
        number, _, text = rest.strip().partition(" ")
        panel = self.service.memories
        if not action:
            return messages_memory.panel_text(await panel.page(CONSOLE_USER, size=None))
        if action == "history" and not number:
            events = await panel.history(CONSOLE_USER)
            return messages_memory.history_text(events, self.service.tz)
        if action not in ("edit", "pin", "unpin", "delete", "history") or not number:
            return messages_memory.CONSOLE_MEMORY_USAGE
        item = await self._numbered(number)
        if item is None:
            return messages_memory.no_such_number(number)
        if action == "history":
            events = await panel.history(CONSOLE_USER, item.key)
            return messages_memory.history_text(events, self.service.tz, key=item.key)
        if action == "delete":
            gone = await panel.delete(CONSOLE_USER, item.id)
            return messages_memory.deleted(item) if gone else messages_memory.ITEM_GONE
        if action in ("pin", "unpin"):
            done = await panel.set_pinned(CONSOLE_USER, item.id, action == "pin")
            if done is None:
                return messages_memory.ITEM_GONE
            return (messages_memory.pinned if done.pinned else messages_memory.unpinned)(done)
        key, colon, value = text.partition(":")
        if not colon:
            return messages_memory.CONSOLE_MEMORY_USAGE
        try:
            edited = await panel.edit(CONSOLE_USER, item.id, key, value)
        except InvalidMemoryItem as refused:
            return messages_memory.invalid_item(refused.message, key.strip(), value.strip())
        return messages_memory.edited(edited) if edited else messages_memory.ITEM_GONE

    async def _numbered(self, number: str) -> MemoryRecord | None:
        """The item `/memory` lists as `number` (1-based)."""
        items = (await self.service.memories.page(CONSOLE_USER, size=None)).items
        if not number.isdigit() or not 1 <= int(number) <= len(items):
            return None
        return items[int(number) - 1]

    # ---- her latest reply: regenerate, rate, why; the data export ----------------------------
    async def _latest_turn(self) -> int | None:
        return await self.service.feedback.latest_turn(CONSOLE_USER, CONSOLE_CHANNEL)

    async def regenerate(self) -> None:
        turn_id = await self._latest_turn()
        if turn_id is None:
            self.say(messages_feedback.CONSOLE_NO_TURN)
            return
        done = await self.service.feedback.regenerate(CONSOLE_USER, turn_id)
        if done.outcome is not RegenerateOutcome.DONE or done.reply is None:
            self.say(messages_feedback.regenerate_refused(done.outcome))
            return
        self.say(messages.CONSOLE_SPEAKER + done.reply)
        self.say(f"   {messages_feedback.regenerated_footer(done.draw)}")
        if done.background is not None:
            background = await done.background
            if background is not None:
                self.say(f"   {background.expression.render()}")

    async def rate(self, arg: str) -> str:
        rating = RATINGS.get(arg.strip().lower())
        if rating is None:
            return messages_memory.CONSOLE_RATE_USAGE
        turn_id = await self._latest_turn()
        if turn_id is None:
            return messages_feedback.CONSOLE_NO_TURN
        if not await self.service.feedback.rate(CONSOLE_USER, turn_id, rating):
            return messages_memory.CONSOLE_NOTHING_TO_RATE
        return messages_feedback.rated(rating is Rating.UP)

    async def why(self) -> str:
        turn_id = await self._latest_turn()
        if turn_id is None:
            return messages_feedback.CONSOLE_NO_TURN
        explained = await self.service.feedback.explain(
            CONSOLE_USER, turn_id, admin=CONSOLE_SEES_ADMIN_DETAILS
        )
        if explained is None:
            return messages_feedback.CONSOLE_NO_TURN
        return messages_feedback.explanation_lines(explained, self.service.tz)

    async def export(self, arg: str) -> str:
        path = Path(arg.strip() or messages_feedback.EXPORT_FILENAME)
        data = await self.service.feedback.export_user_data(CONSOLE_USER)
        text = json.dumps(data, ensure_ascii=False, indent=EXPORT_INDENT)
        await asyncio.to_thread(path.write_text, text + "\n", encoding="utf-8")
        return messages_feedback.console_exported(str(path))

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
