"""From a Discord message to the text Oh-LoRA reads, and from her reply to Discord messages.

Pure functions over strings and ids, so the routing rules are tested without a gateway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.sanctions import OHLORA_EMOJI

DISCORD_MESSAGE_LIMIT = 2000  # characters per message without Nitro

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
CHANNEL_MENTION = re.compile(r"<#(\d+)>")
MASS_MENTION = re.compile(r"@(everyone|here)\b")

ATTACHMENTS_ONLY = (
    f"사진이나 파일은 아직 오로라 {OHLORA_EMOJI} 가 볼 수 없어요. 글로 말해 주세요! 😊"
)
STICKER_ONLY = f"스티커도 귀엽지만, 오로라 {OHLORA_EMOJI} 는 글로 된 말을 더 잘 알아들어요! 😊"
RATE_LIMITED = (
    f"조금만 천천히 말해 주세요! 오로라 {OHLORA_EMOJI} 가 따라가기 벅차요. 😅 "
    "1분쯤 뒤에 다시 말을 걸어 주세요."
)


def prompt_text(
    content: str,
    bot_id: int,
    user_names: Mapping[int, str],
    role_names: Mapping[int, str] | None = None,
    channel_names: Mapping[int, str] | None = None,
) -> str:
    """The message as Oh-LoRA should read it: her own mention removed, others as plain names.

    Mentions become plain text (`@민수`, `#잡담`) so a prompt never carries raw ids, and
    `@everyone`/`@here` lose their `@` so an echo cannot ping anyone.
    """
    role_names = role_names or {}
    channel_names = channel_names or {}

    def user(match: re.Match[str]) -> str:
        uid = int(match.group(1))
        return "" if uid == bot_id else f"@{user_names.get(uid, '누군가')}"

    text = USER_MENTION.sub(user, content)
    text = ROLE_MENTION.sub(lambda m: f"@{role_names.get(int(m.group(1)), '역할')}", text)
    text = CHANNEL_MENTION.sub(lambda m: f"#{channel_names.get(int(m.group(1)), '채널')}", text)
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


def merge_texts(texts: list[str]) -> str:
    """Messages sent while a turn ran are answered together, in the order they were sent."""
    return " ".join(t for t in texts if t.strip())
