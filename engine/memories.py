"""The memory panel (`/memory` on Discord, `/memory …` in the console): the user's items
paged, their history, and the user's own edits, pins and deletions.

Every change waits for the user's running turn (as `/forget` does: its memory role could
write the item back) and is written with its history entry in one transaction. Reads do not
wait: `/memory` answers within Discord's 3 s even while a turn's background roles run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from engine.pipeline import Engine
from engine.rules.memory_items import item_problem
from engine.rules.messages_memory import key_taken
from storage import MemoryEventRecord, MemoryRecord, Repository
from storage.repository import EditOutcome

MEMORY_PAGE_SIZE = 5
# History entries one answer shows (newest first); a Discord message holds about this many.
MEMORY_HISTORY_LIMIT = 20

__all__ = [
    "MEMORY_HISTORY_LIMIT",
    "MEMORY_PAGE_SIZE",
    "InvalidMemoryItem",
    "MemoryPage",
    "MemoryPanel",
]


@dataclass(frozen=True)
class MemoryPage:
    """One page of the user's items (oldest first, numbered across pages from `offset`)."""

    items: tuple[MemoryRecord, ...]
    page: int
    pages: int
    total: int
    cap: int
    evicted: int  # items the cap evicted since the user last looked
    size: int = MEMORY_PAGE_SIZE

    @property
    def offset(self) -> int:
        """How many items come before this page (the first item's number is offset + 1)."""
        return self.page * self.size


class InvalidMemoryItem(ValueError):
    """An edit the rules refuse; `message` says why, in Korean, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MemoryPanel:
    """The user's view of and control over what Oh-LoRA remembers about them."""

    def __init__(
        self,
        engine: Engine,
        repo: Repository,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.repo = repo
        self.clock = clock or engine.clock

    async def page(
        self, user_id: str, page: int = 0, *, size: int | None = MEMORY_PAGE_SIZE
    ) -> MemoryPage:
        """Page `page` (clamped to the pages there are) of `size` items; `size` None: every
        item on one page (the console). Tells the evictions once (as `/memory` did)."""
        items = await self.repo.list_memories(user_id, self.clock())
        per_page = size or max(len(items), 1)
        pages = max(1, -(-len(items) // per_page))
        page = min(max(page, 0), pages - 1)
        start = page * per_page
        return MemoryPage(
            items=tuple(items[start : start + per_page]),
            page=page,
            pages=pages,
            total=len(items),
            cap=self.engine.max_memory_items,
            evicted=self.engine.take_evictions(user_id),
            size=per_page,
        )

    async def item(self, user_id: str, item_id: int) -> MemoryRecord | None:
        """One of the user's items (None: gone, or never theirs)."""
        return await self.repo.get_memory(user_id, item_id)

    async def history(
        self, user_id: str, key: str | None = None, limit: int = MEMORY_HISTORY_LIMIT
    ) -> tuple[MemoryEventRecord, ...]:
        """The history of one key (None: of every key), newest first."""
        return tuple(await self.repo.memory_history(user_id, key, limit))

    async def edit(self, user_id: str, item_id: int, key: str, value: str) -> MemoryRecord | None:
        """Rewrite one item (stripped, then checked by the extraction rules); None: not
        found. Raises `InvalidMemoryItem` for a refused item or a key another item has; the
        stored item is then untouched."""
        key, value = key.strip(), value.strip()
        problem = item_problem(key, value)
        if problem is not None:
            raise InvalidMemoryItem(problem)
        async with self._holding(user_id):
            done = await self.repo.edit_memory(user_id, item_id, key, value, self.clock())
        if done.outcome is EditOutcome.KEY_TAKEN:
            raise InvalidMemoryItem(key_taken(key))
        return done.record

    async def set_pinned(self, user_id: str, item_id: int, pinned: bool) -> MemoryRecord | None:
        """Pin (never replaced by extraction, never aged, never evicted) or unpin."""
        async with self._holding(user_id):
            return await self.repo.set_memory_pinned(user_id, item_id, pinned, self.clock())

    async def delete(self, user_id: str, item_id: int) -> bool:
        """Delete one item, pinned or not (its history stays, until forget-me)."""
        async with self._holding(user_id):
            return await self.repo.delete_memory(user_id, item_id, self.clock()) is not None

    @asynccontextmanager
    async def _holding(self, user_id: str) -> AsyncIterator[None]:
        """The user's turn lock for one change."""
        lock = await self.engine.turn_lock(user_id)
        try:
            yield
        finally:
            await lock.release()
