"""The model hub: two shared bases with four role adapters (in-process, or on an
OpenAI-compatible server), and the two S-BERTs (always in-process).

It implements `engine.pipeline.Backend`; every method is synchronous and runs on the model
worker's thread only. Role calls take a batch of rows (one per user turn).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from engine.rules.bounded import Lru
from engine.rules.expression import FALLBACK_EXPRESSION, Expression
from engine.rules.memory_items import MemoryItem
from engine.runtime.lm import MissingAdapter, MissingBaseModel, RoleModels
from engine.runtime.presets import ROLES, Base, Preset, get_preset
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
from engine.serving.batching import Again
from engine.serving.processes import (
    DEFAULT_CALL_TIMEOUT_S,
    ModelProcess,
    ProcessRoles,
    SplitBackend,
)
from engine.serving.remote import CompletionsGenerator, redacted_url
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.pipeline import Backend

log = logging.getLogger(__name__)
T = TypeVar("T")
# Memory lines whose S-BERT embedding is kept, by their text (≈3 KB each at 768 dimensions):
# a turn then encodes its prompt and only the items new or changed since they were last seen.
MAX_CACHED_ITEM_EMBEDDINGS = 8192


class ModelLoadError(RuntimeError):
    """Model files exist but cannot be read (corrupt, truncated, wrong format)."""


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

    def replies(self, rows: list[tuple[str, datetime] | Attempt]) -> list[str | Again[Attempt]]:
        return self._step("reply", rows)

    def summaries(self, rows: list[tuple[str, str] | Attempt]) -> list[str | Again[Attempt]]:
        return self._step("summary", rows)

    def memories(self, rows: list[str | Attempt]) -> list[MemoryItem | Again[Attempt] | None]:
        return self._step("memory", rows)

    def expressions(self, rows: list[str | Attempt]) -> list[Expression | Again[Attempt]]:
        return self._step("expression", rows)

    def _step(self, kind: str, rows: list[Any]) -> list[Any]:
        """One attempt for each row of one role (a new row or an `Attempt` being retried)."""
        procedure, first, answer = _ROLE_CALLS[kind]
        attempts = [r if isinstance(r, Attempt) else first(r) for r in rows]
        return [
            _done(o, answer) for o in step(self.roles, procedure, attempts, chunk=self.chunk_tokens)
        ]

    @property
    def mixes_roles(self) -> bool:
        """Rows of two roles on one base can share a batch (in-process models only)."""
        return isinstance(self.roles, RoleModels)

    def kanana_rows(self, rows: list[tuple[str, Any]]) -> list[Any]:
        """Reply and summary rows, tagged ``("reply", row)`` / ``("summary", row)``, as one
        batch on their shared base; each answers what `replies` / `summaries` would."""
        assert isinstance(self.roles, RoleModels)
        items = [
            (_ROLE_CALLS[kind][0], row if isinstance(row, Attempt) else _ROLE_CALLS[kind][1](row))
            for kind, row in rows
        ]
        stepped = step_rows(self.roles, items, chunk=self.chunk_tokens)
        return [
            Again((kind, o)) if isinstance(o, Attempt) else _ROLE_CALLS[kind][2](o)
            for (kind, _), o in zip(rows, stepped)
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
        role_names: tuple[str, ...] = ROLES,
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

    def best_memories(self, rows: list[tuple[str, list[str]]]) -> list[tuple[int, float] | None]:
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
        answers: list[tuple[int, float] | None] = []
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


# Each role call: its procedure, a row's first attempt, and the answer from its outcome.
_ROLE_CALLS: dict[str, tuple[Procedure, Callable[[Any], Attempt], Callable[[RoleOutcome], Any]]] = {
    "reply": (REPLY, lambda row: reply_attempt(*row), lambda o: o.text),
    "summary": (SUMMARY, lambda row: summary_attempt(*row), lambda o: "" if o.failed else o.text),
    "memory": (MEMORY, memory_attempt, lambda o: o.item),
    "expression": (EXPRESSION, expression_attempt, lambda o: o.expression or FALLBACK_EXPRESSION),
}


def _done(result: RoleOutcome | Attempt, value: Callable[[RoleOutcome], T]) -> T | Again[Attempt]:
    return Again(result) if isinstance(result, Attempt) else value(result)


def load_backend(settings: Settings, threads: int | None = None) -> Backend:
    """The backend the settings ask for (the tiny preset must be built first).

    Missing models raise `MissingBaseModel`/`MissingAdapter`; anything else that goes wrong
    while reading model files becomes one `ModelLoadError` naming the folder. ``threads`` is
    the torch thread count of a model child process.
    """
    preset = get_preset(settings.model_preset, settings.models_dir)
    try:
        return _load(settings, preset, threads)
    except (MissingBaseModel, MissingAdapter):
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        hint = (
            " (python -m training bootstrap --force rebuilds it)" if preset.name == "tiny" else ""
        )
        raise ModelLoadError(
            f"model files under {preset.artifacts} could not be read: {type(exc).__name__}: "
            f"{first}{hint}"
        ) from exc


def _load(settings: Settings, preset: Preset, threads: int | None) -> Backend:
    if settings.generation_backend == "openai":  # generation waits on HTTP: one process is enough
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        remote = CompletionsGenerator.from_preset(
            preset,
            settings.remote_base_urls,
            model_prefix=settings.openai_model_prefix,
            api_key=key,
            timeout_s=settings.openai_timeout_s,
            breaker_failures=settings.openai_breaker_failures,
            breaker_cooldown_s=settings.openai_breaker_cooldown_s,
        )
        log.info(
            "generating on %s",
            sorted({redacted_url(u) for u in settings.remote_base_urls.values()}),
        )
        return LocalBackend.load(preset, settings.memory_threshold, roles=remote)
    chunk = settings.batch_chunk_tokens or None
    if settings.model_processes < 2:
        return LocalBackend.load(
            preset, settings.memory_threshold, chunk_tokens=chunk, merge=settings.merge_adapters
        )
    return split_backend(
        preset,
        settings.memory_threshold,
        threads=threads,
        chunk_tokens=chunk,
        kanana_apart=settings.model_processes > 2,
        merge=settings.merge_adapters,
        call_timeout_s=settings.model_call_timeout_s,
    )


def roles_on(preset: Preset, base: Base) -> tuple[str, ...]:
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
