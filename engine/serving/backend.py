"""What the turn pipeline asks of the models: the `Backend` protocol and its typed rows.

Every call takes one row per user turn and returns one output per row, in order, so rows of
different users run as one batch. A role call may answer `Again(attempt)` for a row that needs
another attempt; the batcher passes that attempt in again with a later batch.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol

from engine.rules.expression import Expression
from engine.rules.memory_items import MemoryItem
from engine.runtime.attempts import Attempt
from engine.runtime.presets import Role
from engine.serving.batching import Again


class ReplyRow(NamedTuple):
    """A reply role row: the final input and the local time (the weekday check; None skips it)."""

    final_input: str
    now: datetime | None


class SummaryRow(NamedTuple):
    """A summary role row: the final input and the reply given to it."""

    final_input: str
    reply: str


class RetrievalRow(NamedTuple):
    """A memory retrieval row: the tagged prompt and the user's rendered memory items."""

    query: str
    items: list[str]


class MixedRow(NamedTuple):
    """A row of a batch mixing the reply and summary roles on their shared base: a new row or
    an attempt being retried, with the role it belongs to (`Backend.mixed_rows`)."""

    role: Role  # Role.REPLY or Role.SUMMARY
    row: ReplyRow | SummaryRow | Attempt


# Mixed rows' roles, in the order their rows are taken into a batch (replies first).
MIXED_ROLES: tuple[Role, ...] = (Role.REPLY, Role.SUMMARY)

# What a role call answers for one row: the finished value, or the attempt to run again.
ReplyOut = str | Again[Attempt]
SummaryOut = str | Again[Attempt]
MemoryOut = MemoryItem | Again[Attempt] | None
ExpressionOut = Expression | Again[Attempt]
MixedOut = str | Again[MixedRow]  # a reply or a summary, as `replies` / `summaries` answer
Match = tuple[int, float] | None  # the best item's index and score, None below the threshold


class Backend(Protocol):
    """Synchronous model calls, run only on the model worker's thread.

    ``mixes_roles``: reply and summary rows may share one batch through `mixed_rows` (both
    roles on one in-process base); otherwise the pipeline batches them apart and never calls
    `mixed_rows`.
    """

    @property
    def ethics_thresholds(self) -> dict[str, float]: ...
    @property
    def normal_veto(self) -> float: ...
    @property
    def mixes_roles(self) -> bool: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...
    def best_memories(self, rows: list[RetrievalRow]) -> list[Match]: ...
    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]: ...
    def replies(self, rows: list[ReplyRow | Attempt]) -> list[ReplyOut]: ...
    def summaries(self, rows: list[SummaryRow | Attempt]) -> list[SummaryOut]: ...
    def mixed_rows(self, rows: list[MixedRow]) -> list[MixedOut]: ...
    def memories(self, rows: list[str | Attempt]) -> list[MemoryOut]: ...
    def expressions(self, rows: list[str | Attempt]) -> list[ExpressionOut]: ...
    def close(self) -> None: ...
