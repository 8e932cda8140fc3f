"""Chat: which messages Oh-LoRA answers, one turn at a time per user and channel, and how the
answer goes out (typing, replies split at 2,000 characters, the expression added afterwards).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.interactions import SANCTION_EVENT
from bot.ratelimit import RateLimiter, Verdict
from bot.text import merge_texts, prompt_text, split_message
from engine.api import TurnKind, TurnResult, messages

if TYPE_CHECKING:
    from bot.client import OhLoraBot

log = logging.getLogger(__name__)

CHAT_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
EXPRESSION_COLOUR = discord.Colour.from_rgb(255, 214, 102)


@dataclass
class _Pending:
    message: discord.Message
    text: str


def expression_embed(expression: str) -> discord.Embed:
    """The reply's expression, compact, under the reply."""
    return discord.Embed(colour=EXPRESSION_COLOUR).set_footer(text=expression)


class ChatCog(commands.Cog, name="Chat"):
    """Answers DMs always; in guilds when mentioned, replied to, or in a configured channel."""

    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self._pending: dict[tuple[int, int], list[_Pending]] = {}
        self._runners: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._accepting = True
        self.limiter = RateLimiter(bot.config.rate_limit_per_minute)

    # ---- routing ---------------------------------------------------------------------
    def addressed(self, message: discord.Message) -> bool:
        """Whether this message is for Oh-LoRA at all."""
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
        channel = message.channel
        chat_channels = self.bot.config.chat_channel_ids
        parent_id = getattr(channel, "parent_id", None)
        return channel.id in chat_channels or (parent_id is not None and parent_id in chat_channels)

    def text_of(self, message: discord.Message) -> str:
        """Mentions read as neutral placeholders, never as the names (someone else's words)."""
        me = self.bot.user
        assert me is not None
        return prompt_text(message.content, me.id)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if not self._accepting or not self.addressed(message):
            return
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
        sent = await self._send(last, result.messages)
        if result.case is not None:  # a warning or block: the mod-logs and DM (bot.modlog)
            self.bot.dispatch(SANCTION_EVENT, result, last)
        await self._after(result, sent)

    async def _after(self, result: TurnResult, sent: list[discord.Message]) -> None:
        """Wait for the background roles (the next turn must see them) and show the expression."""
        if result.background is None:
            return
        done = await result.background
        if (
            done is None
            or not sent
            or not self.bot.config.show_expression
            or result.kind not in (TurnKind.REPLY, TurnKind.WARNING)
        ):
            return
        try:
            await sent[-1].edit(embed=expression_embed(done.expression.render()))
        except discord.HTTPException:
            log.warning("could not add the expression to message %s", sent[-1].id)

    async def _send(self, to: discord.Message, texts: list[str]) -> list[discord.Message]:
        """Each text in pieces of ≤ 2,000 characters; the first answers `to` in guilds."""
        sent: list[discord.Message] = []
        for text in texts:
            for piece in split_message(text):
                try:
                    if not sent and to.guild is not None:
                        try:
                            sent.append(await to.reply(piece, mention_author=False))
                            continue
                        except discord.HTTPException:  # the message was deleted meanwhile
                            log.info("message %s is gone; answering in the channel", to.id)
                    sent.append(await to.channel.send(piece))
                except discord.HTTPException:
                    log.exception("could not send a reply in channel %s", to.channel.id)
                    return sent
        return sent

    # ---- lifecycle -------------------------------------------------------------------
    def stop_accepting(self) -> None:
        self._accepting = False

    async def wait_idle(self) -> None:
        while self._runners:
            await asyncio.gather(*list(self._runners.values()), return_exceptions=True)

    async def delete_data_for_user(self, user_id: int) -> None:
        """Drop messages of this user that are waiting for their turn. The rate window stays:
        it holds no data of theirs, and resetting it would let `/forget-me` lift the limit."""
        for key in [k for k in self._pending if k[0] == user_id]:
            self._pending.pop(key, None)


async def setup(bot: OhLoraBot) -> None:
    """discord.py's extension entry point (`bot.load_extension("bot.chat")`)."""
    await bot.add_cog(ChatCog(bot))
