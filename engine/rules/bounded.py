"""Per-process state that must not grow with the number of users ever seen.

`Lru` is a dict with a size cap (the least recently touched entry goes first); `KeyedLocks`
holds one `asyncio.Lock` per key only while someone holds or waits for it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most `limit` entries; reading or writing an entry makes it the most recent."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters


class Held:
    """A key's lock, acquired; `release` once (later calls do nothing)."""

    def __init__(self, owner: KeyedLocks, key: Hashable, entry: _Entry) -> None:
        self._owner, self._key, self._entry = owner, key, entry
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._entry.lock.release()
        self._owner._leave(self._key, self._entry)


class KeyedLocks:
    """One lock per key (a user), kept only while it is held or waited for.

    A plain dict of locks would keep one per user ever seen; here the last one to leave
    drops the entry, so the registry holds only users with a turn in progress.
    """

    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}

    async def acquire(self, key: Hashable) -> Held:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            await entry.lock.acquire()
        except BaseException:  # cancelled while waiting: no longer a user of the entry
            self._leave(key, entry)
            raise
        return Held(self, key, entry)

    @asynccontextmanager
    async def holding(self, key: Hashable) -> AsyncIterator[None]:
        held = await self.acquire(key)
        try:
            yield
        finally:
            held.release()

    def _leave(self, key: Hashable, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0 and self._entries.get(key) is entry:
            del self._entries[key]

    def waiting(self, key: Hashable) -> int:
        """Holders and waiters of this key's lock (0: no entry)."""
        entry = self._entries.get(key)
        return 0 if entry is None else entry.users

    def __len__(self) -> int:
        return len(self._entries)
