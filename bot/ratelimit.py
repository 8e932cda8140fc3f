"""Per-user message rate limit: a sliding one-minute window, told politely once per window.

It runs on a monotonic clock (a wall clock set back would reopen every window), and keeps
only users seen within the last window: the rest have nothing left to count.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

WINDOW_S = 60.0
MAX_TRACKED_USERS = 100_000  # forget the least recently seen beyond this (memory bound)


class Verdict(StrEnum):
    OK = "ok"
    NOTIFY = "notify"  # the first refusal in this window: say so
    DROP = "drop"  # refused again: stay silent


@dataclass
class _Window:
    sent: deque[float] = field(default_factory=deque)
    told: float | None = None  # when the refusal was last told
    seen: float = 0.0  # the last check; every time here is at or before it


class RateLimiter:
    """`check(user)` → `Verdict`: at most `per_minute` messages in any `WINDOW_S` seconds."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self.clock = clock
        # Least recently seen first, so the idle ones are swept from the front.
        self._windows: OrderedDict[int, _Window] = OrderedDict()

    @property
    def tracked(self) -> int:
        return len(self._windows)

    def check(self, user_id: int) -> Verdict:
        now = self.clock()
        self._sweep(now)
        window = self._windows.get(user_id)
        if window is None:
            window = self._windows[user_id] = _Window()
        self._windows.move_to_end(user_id)
        window.seen = now
        while window.sent and now - window.sent[0] >= WINDOW_S:
            window.sent.popleft()
        if len(window.sent) < self.per_minute:
            window.sent.append(now)
            window.told = None
            return Verdict.OK
        if window.told is not None and now - window.told < WINDOW_S:
            return Verdict.DROP
        window.told = now
        return Verdict.NOTIFY

    def _sweep(self, now: float) -> None:
        """Drop users unseen for a whole window (their window is empty) and any beyond the cap."""
        while self._windows:
            oldest = next(iter(self._windows.values()))
            if now - oldest.seen < WINDOW_S and len(self._windows) < MAX_TRACKED_USERS:
                return
            self._windows.popitem(last=False)
