"""The model hub: two shared bases with four role adapters (in-process, or on an
OpenAI-compatible server), and the two S-BERTs (always in-process).

It implements `engine.serving.backend.Backend`; every method is synchronous and runs on the model
worker's thread only. Role calls take a batch of rows (one per user turn). What to load from
the settings is decided above serving, in `engine.backends`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

import torch

from engine.rules.bounded import Lru
from engine.rules.expression import FALLBACK_EXPRESSION, Expression
from engine.rules.memory_items import MemoryItem
from engine.runtime.lm import RoleModels
from engine.runtime.presets import ROLES, Base, Preset, Role
from engine.runtime.roles import (
    EXPRESSION,
    MEMORY,
    REPLY,
    SUMMARY,
    Attempt,
    Procedure,
    RoleOutcome,
    expression_attempt,
    memory_attempt,
    reply_attempt,
    step,
    step_rows,
    summary_attempt,
)
from engine.runtime.sbert import MIN_MEMORY_CHARS, EthicsClassifier, MemoryRetriever
from engine.serving.backend import (
    ExpressionOut,
    Match,
    MemoryOut,
    MixedOut,
    MixedRow,
    ReplyOut,
    ReplyRow,
    RetrievalRow,
    SummaryOut,
    SummaryRow,
)
from engine.serving.batching import Again
from engine.serving.processes import (
    DEFAULT_CALL_TIMEOUT_S,
    ModelProcess,
    ProcessRoles,
    SplitBackend,
)
from engine.serving.remote import CompletionsGenerator

log = logging.getLogger(__name__)
R = TypeVar("R")  # a role's new row
A = TypeVar("A")  # its answer
# Memory lines whose S-BERT embedding is kept, by their text (≈3 KB each at 768 dimensions):
# a turn then encodes its prompt and only the items new or changed since they were last seen.
MAX_CACHED_ITEM_EMBEDDINGS = 8192


class ModelLoadError(RuntimeError):
    """Model files exist but cannot be read (corrupt, truncated, wrong format)."""


@dataclass(frozen=True)
class _RoleCall(Generic[R, A]):
    """How a role's batched call runs: its procedure, a new row's first attempt, and the
    answer a finished outcome gives."""

    procedure: Procedure
    first: Callable[[R], Attempt]
    answer: Callable[[RoleOutcome], A]

    def attempt(self, row: R | Attempt) -> Attempt:
        return row if isinstance(row, Attempt) else self.first(row)

    def done(self, result: RoleOutcome | Attempt) -> A | Again[Attempt]:
        return Again(result) if isinstance(result, Attempt) else self.answer(result)


def _reply_attempt(row: ReplyRow) -> Attempt:
    return reply_attempt(row.final_input, row.now)


def _summary_attempt(row: SummaryRow) -> Attempt:
    return summary_attempt(row.final_input, row.reply)


def _text(outcome: RoleOutcome) -> str:
    return outcome.text


def _summary_text(outcome: RoleOutcome) -> str:
    """No summary rather than a fallback's: the next turn then goes without one."""
    return "" if outcome.failed else outcome.text


def _item(outcome: RoleOutcome) -> MemoryItem | None:
    return outcome.item


def _expression(outcome: RoleOutcome) -> Expression:
    return outcome.expression or FALLBACK_EXPRESSION


REPLY_CALL: _RoleCall[ReplyRow, str] = _RoleCall(REPLY, _reply_attempt, _text)
SUMMARY_CALL: _RoleCall[SummaryRow, str] = _RoleCall(SUMMARY, _summary_attempt, _summary_text)
MEMORY_CALL: _RoleCall[str, MemoryItem | None] = _RoleCall(MEMORY, memory_attempt, _item)
EXPRESSION_CALL: _RoleCall[str, Expression] = _RoleCall(EXPRESSION, expression_attempt, _expression)
# The role calls a mixed reply+summary batch can hold.
_MIXED_CALLS: dict[Role, _RoleCall[Any, str]] = {Role.REPLY: REPLY_CALL, Role.SUMMARY: SUMMARY_CALL}


@dataclass
class RoleBackend:
    """The four batched role calls and the token count over `roles` (in-process or remote).

    A role call makes one attempt per row; a rejected row comes back as `Again(attempt)` and
    is passed in again (in a later batch) until it has its outcome.
    """

    roles: RoleModels | CompletionsGenerator
    # Decoding steps per call (`engine.runtime.roles.step`); None decodes every row to its end.
    chunk_tokens: int | None = field(default=None, kw_only=True)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [self.roles.count_tokens(text) for text in texts]

    def close(self) -> None:
        """The remote generator's connections; nothing in-process (`SplitBackend.close` ends
        its child)."""
        if isinstance(self.roles, CompletionsGenerator):
            self.roles.close()

    def replies(self, rows: list[ReplyRow | Attempt]) -> list[ReplyOut]:
        return self._step(REPLY_CALL, rows)

    def summaries(self, rows: list[SummaryRow | Attempt]) -> list[SummaryOut]:
        return self._step(SUMMARY_CALL, rows)

    def memories(self, rows: list[str | Attempt]) -> list[MemoryOut]:
        return self._step(MEMORY_CALL, rows)

    def expressions(self, rows: list[str | Attempt]) -> list[ExpressionOut]:
        return self._step(EXPRESSION_CALL, rows)

    def _step(self, call: _RoleCall[R, A], rows: Sequence[R | Attempt]) -> list[A | Again[Attempt]]:
        """One attempt for each row of one role (a new row or an `Attempt` being retried)."""
        attempts = [call.attempt(row) for row in rows]
        return [
            call.done(o)
            for o in step(self.roles, call.procedure, attempts, chunk=self.chunk_tokens)
        ]

    @property
    def mixes_roles(self) -> bool:
        """Rows of two roles on one base can share a batch (in-process models only)."""
        return isinstance(self.roles, RoleModels)

    def mixed_rows(self, rows: list[MixedRow]) -> list[MixedOut]:
        """Reply and summary rows as one batch on their shared base; each answers what
        `replies` / `summaries` would (a remote backend's rows go to their own calls)."""
        if not isinstance(self.roles, RoleModels):
            raise TypeError("mixed reply+summary batches need in-process models (mixes_roles)")
        calls = [_MIXED_CALLS[mixed.role] for mixed in rows]
        items = [(call.procedure, call.attempt(mixed.row)) for call, mixed in zip(calls, rows)]
        stepped = step_rows(self.roles, items, chunk=self.chunk_tokens)
        return [
            Again(MixedRow(mixed.role, o)) if isinstance(o, Attempt) else call.answer(o)
            for call, mixed, o in zip(calls, rows, stepped)
        ]


@dataclass
class LocalBackend(RoleBackend):
    """Every model in this process (CPU float32 or CUDA bf16, decided by engine.runtime.lm)."""

    ethics: EthicsClassifier
    retriever: MemoryRetriever
    memory_threshold: float | None = None  # an operator's override of the model's calibration
    # Item text -> its embedding; a changed value is another text, so nothing goes stale.
    _item_embeddings: Lru[str, Any] = field(
        default_factory=lambda: Lru(MAX_CACHED_ITEM_EMBEDDINGS),
        init=False,
        repr=False,
        compare=False,
    )

    @property
    def ethics_thresholds(self) -> dict[str, float]:
        return self.ethics.thresholds

    @property
    def normal_veto(self) -> float:
        return self.ethics.normal_veto

    @classmethod
    def load(
        cls,
        preset: Preset,
        memory_threshold: float | None = None,
        roles: CompletionsGenerator | None = None,
        role_names: tuple[Role, ...] = ROLES,
        chunk_tokens: int | None = None,
        merge: bool = True,
    ) -> LocalBackend:
        """`preset`'s S-BERTs and `role_names` roles (``merge``: adapters folded into per-role
        weights, `engine.runtime.merged`); `roles` replaces the in-process LoRA roles (remote)."""
        log.info("loading %s models from %s", preset.name, preset.artifacts)
        return cls(
            roles=roles or RoleModels.from_preset(preset, role_names, merge=merge),
            ethics=EthicsClassifier.load(preset.sbert_dir("ethics")),
            retriever=MemoryRetriever.load(
                preset.sbert_dir("memory"), default_threshold=preset.default_memory_threshold
            ),
            memory_threshold=memory_threshold,
            chunk_tokens=chunk_tokens,
        )

    def best_memories(self, rows: list[RetrievalRow]) -> list[Match]:
        """`MemoryRetriever.best` for each row, in one encoder call for the prompts and the
        items not in the embedding cache (items repeat turn after turn; prompts do not)."""
        usable = [
            [
                i
                for i, item in enumerate(items)
                if sum(not c.isspace() for c in item) >= MIN_MEMORY_CHARS
            ]
            for _, items in rows
        ]
        known: dict[str, Any] = {}
        for (_, items), picked in zip(rows, usable):
            for i in picked:
                cached = self._item_embeddings.get(items[i])
                if cached is not None:
                    known[items[i]] = cached
        missing = list(
            dict.fromkeys(
                items[i]
                for (_, items), picked in zip(rows, usable)
                for i in picked
                if items[i] not in known
            )
        )
        queries = [query for (query, _), picked in zip(rows, usable) if picked]
        if not queries:
            return [None] * len(rows)
        embedded = self.retriever.embed([*queries, *missing])
        for text, embedding in zip(missing, embedded[len(queries) :]):
            known[text] = embedding = embedding.clone()  # not a view holding the whole batch
            self._item_embeddings.put(text, embedding)
        limit = self.retriever.threshold if self.memory_threshold is None else self.memory_threshold
        answers: list[Match] = []
        prompts = iter(embedded[: len(queries)])
        for (_, items), picked in zip(rows, usable):
            if not picked:
                answers.append(None)
                continue
            scores = (torch.stack([known[items[i]] for i in picked]) @ next(prompts)).tolist()
            top = max(range(len(picked)), key=scores.__getitem__)
            answers.append((picked[top], float(scores[top])) if scores[top] >= limit else None)
        return answers

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return self.ethics.scores(texts)


def roles_on(preset: Preset, base: Base) -> tuple[Role, ...]:
    return tuple(role for role in ROLES if preset.roles[role].base == base)


def polyglot_process(
    preset: Preset,
    memory_threshold: float | None = None,
    *,
    threads: int | None = None,
    seed: int | None = None,
    merge: bool = True,
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> ModelProcess:
    """A child process serving the Polyglot roles and the S-BERTs (started, still loading)."""
    process = ModelProcess(
        partial(
            LocalBackend.load,
            preset,
            memory_threshold,
            None,
            roles_on(preset, "polyglot"),
            merge=merge,
        ),
        threads=threads,
        seed=seed,
        name="ohlora-polyglot",
        call_timeout_s=call_timeout_s,
    )
    process.start()
    return process


def kanana_roles(
    preset: Preset, chunk_tokens: int | None = None, merge: bool = True
) -> RoleBackend:
    return RoleBackend(
        RoleModels.from_preset(preset, roles_on(preset, "kanana"), merge=merge),
        chunk_tokens=chunk_tokens,
    )


def kanana_process(
    preset: Preset,
    *,
    chunk_tokens: int | None = None,
    threads: int | None = None,
    seed: int | None = None,
    merge: bool = True,
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> ProcessRoles:
    """The Kanana roles in a child process of their own (started, still loading)."""
    process = ModelProcess(
        partial(kanana_roles, preset, chunk_tokens, merge),
        threads=threads,
        seed=seed,
        name="ohlora-kanana",
        call_timeout_s=call_timeout_s,
    )
    process.start()
    return ProcessRoles(process)


def split_backend(
    preset: Preset,
    memory_threshold: float | None = None,
    *,
    threads: int | None = None,
    chunk_tokens: int | None = None,
    kanana_apart: bool = False,
    merge: bool = True,
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
) -> SplitBackend:
    """The Kanana roles in this process (``kanana_apart``: in a second child), the rest in a
    child; the children load at the same time.

    Only the Kanana roles decode in chunks: the Polyglot roles are short (at most 24 and 36
    tokens) and nearly uniform. A Kanana child keeps its unfinished rows' caches itself
    (`engine.serving.processes.CacheTicket`)."""
    child = polyglot_process(
        preset, memory_threshold, threads=threads, merge=merge, call_timeout_s=call_timeout_s
    )
    local: RoleBackend | ProcessRoles | None = None
    try:
        local = (
            kanana_process(
                preset,
                chunk_tokens=chunk_tokens,
                threads=threads,
                merge=merge,
                call_timeout_s=call_timeout_s,
            )
            if kanana_apart
            else kanana_roles(preset, chunk_tokens, merge)
        )
        return SplitBackend(local, child)
    except BaseException:
        child.close()
        if local is not None:
            local.close()
        raise
