"""The model hub: two shared bases with four role adapters (in-process, or on an
OpenAI-compatible server), and the two S-BERTs (always in-process).

It implements `engine.pipeline.Backend`; every method is synchronous and runs on the model
worker's thread only. Role calls take a batch of rows (one per user turn).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from engine.batching import Again
from engine.expression import FALLBACK_EXPRESSION, Expression
from engine.lm import MissingAdapter, MissingBaseModel, RoleModels
from engine.memory_items import MemoryItem
from engine.presets import Preset, get_preset
from engine.remote import CompletionsGenerator
from engine.roles import (
    EXPRESSION,
    MEMORY,
    REPLY,
    SUMMARY,
    Attempt,
    RoleOutcome,
    expression_attempt,
    memory_attempt,
    reply_attempt,
    step,
    summary_attempt,
)
from engine.sbert import EthicsClassifier, MemoryRetriever
from engine.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelLoadError(RuntimeError):
    """Model files exist but cannot be read (corrupt, truncated, wrong format)."""


@dataclass
class LocalBackend:
    """Models loaded in this process (CPU float32 or CUDA bf16, decided by engine.lm)."""

    roles: RoleModels | CompletionsGenerator
    ethics: EthicsClassifier
    retriever: MemoryRetriever
    memory_threshold: float | None = None  # an operator's override of the model's calibration

    @property
    def ethics_thresholds(self) -> dict[str, float]:
        return self.ethics.thresholds

    @property
    def normal_veto(self) -> float:
        return self.ethics.normal_veto

    @classmethod
    def load(cls, preset: Preset, memory_threshold: float | None = None,
             roles: CompletionsGenerator | None = None) -> LocalBackend:
        """Every model from `preset`; `roles` replaces the in-process LoRA roles (remote)."""
        log.info("loading %s models from %s", preset.name, preset.artifacts)
        return cls(
            roles=roles or RoleModels.from_preset(preset),
            ethics=EthicsClassifier.load(preset.sbert_dir("ethics")),
            retriever=MemoryRetriever.load(
                preset.sbert_dir("memory"), default_threshold=preset.default_memory_threshold
            ),
            memory_threshold=memory_threshold,
        )

    # Batched calls: one row per user; `engine.batching` groups rows from many users.
    def count_tokens(self, texts: list[str]) -> list[int]:
        return [self.roles.count_tokens(text) for text in texts]

    def best_memories(self, rows: list[tuple[str, list[str]]]) -> list[tuple[int, float] | None]:
        return [self.retriever.best(query, items, self.memory_threshold) for query, items in rows]

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return self.ethics.scores(texts)

    # A role call makes one attempt per row; a rejected row comes back as `Again(attempt)`
    # and is passed in again (in a later batch) until it has its outcome.
    def replies(self, rows: list[tuple[str, datetime] | Attempt]) -> list[str | Again[Attempt]]:
        attempts = [r if isinstance(r, Attempt) else reply_attempt(*r) for r in rows]
        return [_done(o, lambda o: o.text) for o in step(self.roles, REPLY, attempts)]

    def summaries(self, rows: list[tuple[str, str] | Attempt]) -> list[str | Again[Attempt]]:
        attempts = [r if isinstance(r, Attempt) else summary_attempt(*r) for r in rows]
        return [_done(o, lambda o: "" if o.failed else o.text)
                for o in step(self.roles, SUMMARY, attempts)]

    def memories(self, rows: list[str | Attempt]) -> list[MemoryItem | None | Again[Attempt]]:
        attempts = [r if isinstance(r, Attempt) else memory_attempt(r) for r in rows]
        return [_done(o, lambda o: o.item) for o in step(self.roles, MEMORY, attempts)]

    def expressions(self, rows: list[str | Attempt]) -> list[Expression | Again[Attempt]]:
        attempts = [r if isinstance(r, Attempt) else expression_attempt(r) for r in rows]
        return [_done(o, lambda o: o.expression or FALLBACK_EXPRESSION)
                for o in step(self.roles, EXPRESSION, attempts)]


def _done(result: RoleOutcome | Attempt, value: Callable[[RoleOutcome], T]) -> T | Again[Attempt]:
    return Again(result) if isinstance(result, Attempt) else value(result)


def load_backend(settings: Settings) -> LocalBackend:
    """The backend the settings ask for (the tiny preset must be built first).

    Missing models raise `MissingBaseModel`/`MissingAdapter`; anything else that goes wrong
    while reading model files becomes one `ModelLoadError` naming the folder.
    """
    preset = get_preset(settings.model_preset, settings.models_dir)
    try:
        return _load(settings, preset)
    except (MissingBaseModel, MissingAdapter):
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt files raise anything from json to safetensors
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        hint = " (python -m training bootstrap --force rebuilds it)" if preset.name == "tiny" else ""
        raise ModelLoadError(
            f"model files under {preset.artifacts} could not be read: {type(exc).__name__}: "
            f"{first}{hint}") from exc


def _load(settings: Settings, preset: Preset) -> LocalBackend:
    remote = None
    if settings.generation_backend == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        remote = CompletionsGenerator.from_preset(
            preset, settings.remote_base_urls, model_prefix=settings.openai_model_prefix,
            api_key=key, timeout_s=settings.openai_timeout_s)
        log.info("generating on %s", sorted(set(settings.remote_base_urls.values())))
    return LocalBackend.load(preset, settings.memory_threshold, roles=remote)
