"""From a Discord message to the text Oh-LoRA reads, and from her reply to Discord messages.

Pure functions over strings and ids, so the routing rules are tested without a gateway.
"""

from __future__ import annotations

import re

from engine.api import cap_raw

DISCORD_MESSAGE_LIMIT = 2000  # characters per message without Nitro

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
CHANNEL_MENTION = re.compile(r"<#(\d+)>")
MASS_MENTION = re.compile(r"@(everyone|here)\b")
# What a mention reads as. Names are whatever their owner typed: read as the author's words they
# would get the author sanctioned (a 패드립 nickname) or steer the reply (a nickname that is an
# instruction). So neither the ethics check nor the prompt sees them: fixed, neutral words.
USER_PLACEHOLDER = "@친구"
ROLE_PLACEHOLDER = "@역할"
CHANNEL_PLACEHOLDER = "#채널"


def prompt_text(content: str, bot_id: int) -> str:
    """The message as Oh-LoRA should read it: her own mention removed, others as placeholders.

    Mentions become neutral words (`@친구`, `@역할`, `#채널`), never the mentioned names, so a
    prompt carries neither raw ids nor text someone else chose; `@everyone`/`@here` lose their
    `@` so an echo cannot ping anyone.
    """
    text = USER_MENTION.sub(
        lambda m: "" if int(m.group(1)) == bot_id else USER_PLACEHOLDER, content
    )
    text = ROLE_MENTION.sub(ROLE_PLACEHOLDER, text)
    text = CHANNEL_MENTION.sub(CHANNEL_PLACEHOLDER, text)
    text = MASS_MENTION.sub(lambda m: m.group(1), text)
    return " ".join(text.split())


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Cut text into pieces of at most `limit` characters, at a line break or space if one is
    in the second half of the piece, so words are not cut."""
    if limit < 2:
        raise ValueError("limit must be at least 2")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = max(window.rfind("\n"), window.rfind(" "))
        if cut < limit // 2:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def merge_texts(texts: list[str], max_chars: int) -> str:
    """Messages sent while a turn ran are answered together, in the order they were sent.

    A burst longer than the engine's `max_chars` is cut (`cap_raw`) before
    anything cleans it: still too long, so answered with the too-long notice, and never more
    work than one long message.
    """
    return cap_raw(" ".join(t for t in texts if t.strip()), max_chars)
