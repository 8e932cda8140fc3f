"""A row's progress through its role's attempts: torch-free, so the serving protocol and the
front-end-facing pipeline can name it without loading the models' libraries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Attempt:
    """One row's progress through its role's attempts (so a retry can join a later batch)."""

    prompt: str
    now: datetime | None = None  # the reply's weekday check
    attempt: int = 0  # attempts made so far
    rejections: tuple[str, ...] = ()
    hallucinations: int = 0  # weekday hallucinations seen (the reply's temperature rises)
    partial: tuple[int, ...] = ()  # tokens of the current attempt so far (continued in chunks)
    cache: Any = field(default=None, compare=False, repr=False)  # their attention cache
