"""What a user typed as a command argument, parsed the same way by every front end."""

from __future__ import annotations

from dataclasses import dataclass

FORGET_ALL = "all"  # `/forget all`: every memory item


@dataclass(frozen=True)
class ForgetTarget:
    """`/forget`'s argument: every item (`everything`) or the item under `key`."""

    key: str | None = None
    everything: bool = False


def parse_forget_target(text: str) -> ForgetTarget | None:
    """`좋아하는 가수`, `[좋아하는 가수]` and `[좋아하는 가수: 아이유]` (as `/memory` shows
    items) all name the key `좋아하는 가수`; `all` (any case) names every item; nothing
    left after the brackets is None (the front end shows how to use the command)."""
    key = text.strip().strip("[]").split(":", 1)[0].strip()
    if not key:
        return None
    if key.lower() == FORGET_ALL:
        return ForgetTarget(everything=True)
    return ForgetTarget(key=key)
