"""Chat: which messages Oh-LoRA answers, one turn at a time per user and channel, and how the
answer goes out (typing, replies split at 2,000 characters, 🔄 👍 👎 under her latest reply to
the user in that channel, the expression and her face added afterwards).

"Latest" is kept in memory, per (user, channel): when a new reply with buttons goes out, the
buttons come off the one before (an edit). After a restart the previous reply keeps its buttons
until the next one; the engine refuses to regenerate a turn that is not the user's latest, and
a rating on an older reply is still a rating of that reply.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.feedback import reply_view
from bot.interactions import SANCTION_EVENT, dressing_for
from bot.ratelimit import RateLimiter, Verdict
from bot.text import merge_texts, prompt_text, split_message
from engine.api import TurnKind, TurnResult, messages

if TYPE_CHECKING:
    from bot.client import OhLoraBot

log = logging.getLogger(__name__)

CHAT_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
# Turns whose reply she shows (after a warning too): they get the buttons and the expression.
SHOWN_KINDS = frozenset({TurnKind.REPLY, TurnKind.WARNING})
# (user, channel) pairs whose latest reply is remembered to take its buttons off later; past
# this the oldest is forgotten (its buttons stay, which the engine's checks make harmless).
MAX_TRACKED_REPLIES = 10_000


@dataclass
class _Pending:
    message: discord.Message
    text: str


class ChatCog(commands.Cog, name="Chat"):
    """Answers DMs always; in guilds when mentioned, replied to, or in a configured channel."""

    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self._pending: dict[tuple[int, int], list[_Pending]] = {}
        self._runners: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._accepting = True
        self._latest: dict[tuple[int, int], discord.Message] = {}  # her reply with the buttons
        self._arriving: set[asyncio.Task[Any]] = set()  # messages not yet routed
        self._routing_order = asyncio.Lock()
        self.limiter = RateLimiter(bot.config.rate_limit_per_minute)

    # ---- routing ---------------------------------------------------------------------
    async def addressed(self, message: discord.Message) -> bool:
        """Whether this message is for Oh-LoRA at all: DMs always; in a server when mentioned,
        replied to, or in one of the server's chat channels (a thread follows its parent) as
        the server's settings say now (`Moderation.chat_routing`)."""
        me = self.bot.user
        author = message.author
        if me is None or author.bot or message.webhook_id is not None or author.id == me.id:
            return False
        if message.type not in CHAT_MESSAGE_TYPES:
            return False
        if message.guild is None:
            return True
        if any(user.id == me.id for user in message.mentions):
            return True
        ref = message.reference
        resolved = ref.resolved if ref is not None else None
        if isinstance(resolved, discord.Message) and resolved.author.id == me.id:
            return True
        routing = await self.bot.service.moderation.chat_routing(str(message.guild.id))
        channel = message.channel
        parent_id = getattr(channel, "parent_id", None)
        return str(channel.id) in routing.chat_channel_ids or (
            parent_id is not None and str(parent_id) in routing.chat_channel_ids
        )

    def text_of(self, message: discord.Message) -> str:
        """Mentions read as neutral placeholders, never as the names (someone else's words)."""
        me = self.bot.user
        assert me is not None
        return prompt_text(message.content, me.id)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not self._accepting:
            return
        # Counted until queued, so `wait_idle` (a shutdown, the tests) sees a message whose
        # routing is still being read.
        arriving = asyncio.current_task()
        if arriving is not None:
            self._arriving.add(arriving)
        try:
            if message.guild is None:
                addressed = await self.addressed(message)
            else:
                # A server's routing may be read from the database: one message at a time, in
                # the order they came (the lock is fair), so a user's messages queue in order.
                async with self._routing_order:
                    addressed = await self.addressed(message)
            if addressed:
                await self._take(message)
        finally:
            if arriving is not None:
                self._arriving.discard(arriving)

    async def _take(self, message: discord.Message) -> None:
        """Queue an addressed message for its (user, channel) turn runner (nothing awaited
        before it is queued, so messages queue in the order `on_message` saw them)."""
        verdict = self.limiter.check(message.author.id)
        if verdict is not Verdict.OK:
            if verdict is Verdict.NOTIFY:
                await self._send(message, [messages.RATE_LIMITED])
            return
        text = self.text_of(message)
        if not text:
            notice = (
                messages.ATTACHMENTS_ONLY
                if message.attachments
                else messages.STICKER_ONLY
                if message.stickers
                else None
            )
            if notice is not None:
                await self._send(message, [notice])
                return
        key = (message.author.id, message.channel.id)
        self._pending.setdefault(key, []).append(_Pending(message, text))
        if key not in self._runners:
            self._runners[key] = asyncio.create_task(self._run(key), name=f"chat-{key}")

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A message deleted before its turn started is not answered."""
        for key, waiting in list(self._pending.items()):
            kept = [p for p in waiting if p.message.id != payload.message_id]
            if len(kept) != len(waiting):
                if kept:
                    self._pending[key] = kept
                else:
                    self._pending.pop(key, None)

    # ---- turns -----------------------------------------------------------------------
    async def _run(self, key: tuple[int, int]) -> None:
        """One runner per (user, channel): what arrives meanwhile is merged into the next turn."""
        try:
            while self._pending.get(key):
                batch = self._pending.pop(key)
                await self._turn(batch)
        finally:
            self._runners.pop(key, None)

    async def _turn(self, batch: list[_Pending]) -> None:
        last = batch[-1].message
        text = merge_texts([p.text for p in batch], self.bot.service.max_message_chars)
        try:
            async with last.channel.typing():
                result = await self.bot.service.chat(
                    str(last.author.id),
                    str(last.channel.id),
                    text,
                    str(last.id),
                    guild_id=str(last.guild.id) if last.guild is not None else None,
                )
        except Exception:
            log.exception("turn for message %s failed", last.id)
            await self._send(last, [messages.APOLOGY])
            return
        view = None
        if result.kind in SHOWN_KINDS and result.reply and result.turn_id is not None:
            view = reply_view(result.turn_id, last.author.id)
        sent, complete = await self._send(last, result.messages, view=view)
        if view is not None and complete and result.turn_id is not None:
            await self._answered(last, result.turn_id, sent[-1])
        if result.case is not None:  # a warning or block: the mod-logs and DM (bot.modlog)
            self.bot.dispatch(SANCTION_EVENT, result, last)
        await self._after(result, sent, last.guild)

    async def _answered(self, to: discord.Message, turn_id: int, reply: discord.Message) -> None:
        """Her reply (its last part, with the buttons) is the turn's message now, and the
        latest one for this user here: the buttons come off the one before."""
        await self.bot.service.feedback.reply_sent(turn_id, str(reply.id))
        key = (to.author.id, to.channel.id)
        older = self._latest.pop(key, None)
        self._latest[key] = reply
        if len(self._latest) > MAX_TRACKED_REPLIES:
            del self._latest[next(iter(self._latest))]
        if older is not None:
            await self._unbutton(older)

    async def _unbutton(self, message: discord.Message) -> None:
        try:
            await message.edit(view=None)
        except discord.HTTPException:  # deleted meanwhile, or no longer reachable
            log.info("could not take the buttons off message %s", message.id)

    async def _after(
        self, result: TurnResult, sent: list[discord.Message], guild: discord.Guild | None
    ) -> None:
        """Wait for the background roles (the next turn must see them) and show the expression
        (with her face where the server shows it)."""
        if result.background is None:
            return
        done = await result.background
        if done is None or not sent or result.kind not in SHOWN_KINDS:
            return
        guild_id = None if guild is None else str(guild.id)
        dressed = await dressing_for(self.bot, guild_id, done.expression.render())
        if dressed is None:
            return
        try:
            await sent[-1].edit(embed=dressed.embed, attachments=dressed.files)
        except discord.HTTPException:
            log.warning("could not add the expression to message %s", sent[-1].id)

    async def _send(
        self, to: discord.Message, texts: list[str], *, view: discord.ui.View | None = None
    ) -> tuple[list[discord.Message], bool]:
        """Each text in pieces of ≤ 2,000 characters; the first answers `to` in guilds, the
        last carries `view`. Also whether every piece went out."""
        pieces = [piece for text in texts for piece in split_message(text)]
        sent: list[discord.Message] = []
        for i, piece in enumerate(pieces):
            under = view if i == len(pieces) - 1 else None
            try:
                if not sent and to.guild is not None:
                    try:
                        sent.append(await self._post(to, piece, under, reply=True))
                        continue
                    except discord.HTTPException:  # the message was deleted meanwhile
                        log.info("message %s is gone; answering in the channel", to.id)
                sent.append(await self._post(to, piece, under, reply=False))
            except discord.HTTPException:
                log.exception("could not send a reply in channel %s", to.channel.id)
                return sent, False
        return sent, True

    @staticmethod
    async def _post(
        to: discord.Message, piece: str, view: discord.ui.View | None, *, reply: bool
    ) -> discord.Message:
        """One piece, as a reply to `to` or plainly in its channel, with `view` if any."""
        if reply:
            if view is None:
                return await to.reply(piece, mention_author=False)
            return await to.reply(piece, mention_author=False, view=view)
        if view is None:
            return await to.channel.send(piece)
        return await to.channel.send(piece, view=view)

    # ---- lifecycle -------------------------------------------------------------------
    def stop_accepting(self) -> None:
        self._accepting = False

    async def wait_idle(self) -> None:
        while self._runners or self._arriving:
            waiting = [*self._arriving, *self._runners.values()]
            await asyncio.gather(*waiting, return_exceptions=True)

    async def delete_data_for_user(self, user_id: int) -> None:
        """Drop messages of this user that are waiting for their turn, and the buttons under
        her latest replies to them (their turns are deleted). The rate window stays:
        it holds no data of theirs, and resetting it would let `/forget-me` lift the limit."""
        for key in [k for k in self._pending if k[0] == user_id]:
            self._pending.pop(key, None)
        for key in [k for k in self._latest if k[0] == user_id]:  # their turns are gone
            await self._unbutton(self._latest.pop(key))


async def setup(bot: OhLoraBot) -> None:
    """discord.py's extension entry point (`bot.load_extension("bot.chat")`)."""
    await bot.add_cog(ChatCog(bot))
