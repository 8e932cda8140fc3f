"""The in-process model hub: two shared bases with four role adapters, and the two S-BERTs.

It implements `engine.pipeline.Backend`; every method is synchronous and runs on the model
worker's thread only. Role calls take a batch of rows (one per user turn).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from engine.expression import FALLBACK_EXPRESSION, Expression
from engine.lm import RoleModels
from engine.memory_items import MemoryItem
from engine.presets import Preset, get_preset
from engine.roles import extract_memories, generate_expressions, generate_replies, generate_summaries
from engine.sbert import EthicsClassifier, MemoryRetriever
from engine.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class LocalBackend:
    """Models loaded in this process (CPU float32 or CUDA bf16, decided by engine.lm)."""

    roles: RoleModels
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
    def load(cls, preset: Preset, memory_threshold: float | None = None) -> LocalBackend:
        log.info("loading %s models from %s", preset.name, preset.artifacts)
        return cls(
            roles=RoleModels.from_preset(preset),
            ethics=EthicsClassifier.load(preset.sbert_dir("ethics")),
            retriever=MemoryRetriever.load(
                preset.sbert_dir("memory"), default_threshold=preset.default_memory_threshold
            ),
            memory_threshold=memory_threshold,
        )

    def count_tokens(self, text: str) -> int:
        return self.roles.count_tokens(text)

    def best_memory(self, query: str, items: list[str]) -> tuple[int, float] | None:
        return self.retriever.best(query, items, self.memory_threshold)

    # Batched calls: one row per user; `engine.batching` groups rows from many users.
    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return self.ethics.scores(texts)

    def replies(self, rows: list[tuple[str, datetime]]) -> list[str]:
        outcomes = generate_replies(self.roles, [x for x, _ in rows], [now for _, now in rows])
        return [o.text for o in outcomes]

    def summaries(self, rows: list[tuple[str, str]]) -> list[str]:
        outcomes = generate_summaries(self.roles, [x for x, _ in rows], [a for _, a in rows])
        return ["" if o.failed else o.text for o in outcomes]

    def memories(self, final_inputs: list[str]) -> list[MemoryItem | None]:
        return [o.item for o in extract_memories(self.roles, final_inputs)]

    def expressions(self, answers: list[str]) -> list[Expression]:
        return [o.expression or FALLBACK_EXPRESSION for o in generate_expressions(self.roles, answers)]


def load_backend(settings: Settings) -> LocalBackend:
    """The backend the settings ask for (the tiny preset must be built first)."""
    preset = get_preset(settings.model_preset, settings.models_dir)
    return LocalBackend.load(preset, settings.memory_threshold)
