"""Per-user message rate limit: a sliding one-minute window, told politely once per window."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=1)
MAX_TRACKED_USERS = 100_000  # forget the oldest windows beyond this (memory bound)


class RateLimiter:
    """`check(user, now)` → "ok", "notify" (first refusal in this window) or "drop"."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._sent: dict[int, deque[datetime]] = {}
        self._told: dict[int, datetime] = {}

    def check(self, user_id: int, now: datetime) -> str:
        times = self._sent.setdefault(user_id, deque())
        while times and now - times[0] >= WINDOW:
            times.popleft()
        if len(times) < self.per_minute:
            times.append(now)
            self._told.pop(user_id, None)
            self._trim()
            return "ok"
        told = self._told.get(user_id)
        if told is not None and now - told < WINDOW:
            return "drop"
        self._told[user_id] = now
        return "notify"

    def forget(self, user_id: int) -> None:
        self._sent.pop(user_id, None)
        self._told.pop(user_id, None)

    def _trim(self) -> None:
        while len(self._sent) > MAX_TRACKED_USERS:
            oldest = next(iter(self._sent))
            self.forget(oldest)
