"""Runtime S-BERT models: the ethics classifier (reference §5) and the memory retriever (§4.3).

Both load a sentence-transformers directory. A model trained by this project carries
``ohlora_sbert.json`` beside it with the preprocessing stage it was trained on (``kiwi`` morphemes
for the tiny preset, ``none`` for klue/roberta-base) and its calibrated thresholds; a directory
without that file (e.g. upstream's published models) is read as preprocessing ``none`` with
upstream's thresholds (ethics 0.98 / 0.95 / 0.90 with the 일반 ≥ 0.5 veto, memory 0.95).

A directory may also hold the project's own input module (`engine.runtime.use_module`, the tiny
preset's frozen USE + n-gram features): `load_sentence_transformer` lets exactly the module types
in its allowlist through sentence-transformers' custom-code gate; any other type outside
sentence-transformers is refused as before.

No training code is imported here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.rules.ethics_rules import (
    ETHICS_CATEGORIES,
    NORMAL_NAME,
    NORMAL_VETO,
    UPSTREAM_THRESHOLDS,
    triggered_categories,
)
from engine.rules.sanctions import Category
from engine.runtime.morphemes import PREPROCESS_NONE, get_preprocessor

SBERT_CONFIG_NAME = "ohlora_sbert.json"
UPSTREAM_MEMORY_THRESHOLD = 0.95
# Memory lines shorter than this (non-space characters) are never scored (upstream skips them).
MIN_MEMORY_CHARS = 3


def _custom_module_types(path: Path) -> set[str]:
    """The ``modules.json`` types of a local model directory outside sentence-transformers."""
    file = path / "modules.json"
    if not file.is_file():
        return set()
    return {
        str(m.get("type", ""))
        for m in json.loads(file.read_text(encoding="utf-8"))
        if not str(m.get("type", "")).startswith("sentence_transformers.")
    }


def load_sentence_transformer(path: str | Path, device: str | None = None):
    """A SentenceTransformer from a local directory or a cached hub id, never downloading.

    Custom code is allowed only for a local directory whose every non-sentence-transformers
    module type is one of the project's own (`use_module.ALLOWED_MODULE_TYPES`); upstream and
    production models load exactly as before (no custom code)."""
    from sentence_transformers import SentenceTransformer

    from engine.runtime.lm import never_download

    never_download()
    custom = _custom_module_types(Path(path)) if Path(path).is_dir() else set()
    trusted = False
    if custom:
        from engine.runtime.use_module import ALLOWED_MODULE_TYPES

        trusted = custom <= ALLOWED_MODULE_TYPES  # anything else: sentence-transformers refuses
    return SentenceTransformer(
        str(path), device=device or "cpu", local_files_only=True, trust_remote_code=trusted
    )


def read_sbert_config(path: str | Path) -> dict[str, Any]:
    """The ``ohlora_sbert.json`` beside a model, or ``{}`` when there is none (upstream models)."""
    file = Path(path) / SBERT_CONFIG_NAME
    if not file.is_file():
        return {}
    return json.loads(file.read_text(encoding="utf-8"))


@dataclass
class _Encoder:
    """A SentenceTransformer plus the preprocessing stage it expects."""

    model: Any
    preprocess: str
    config: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> _Encoder:
        config = read_sbert_config(path) if Path(path).is_dir() else {}
        # Never a download (a hub id must be in the local cache), whatever HF_HUB_OFFLINE says.
        model = load_sentence_transformer(path, device)
        model.eval()
        return cls(model=model, preprocess=config.get("preprocess", PREPROCESS_NONE), config=config)

    def embed(self, texts: Sequence[str]):
        """L2-normalised embeddings (a torch tensor, one row per text)."""
        prepared = get_preprocessor(self.preprocess).batch(texts)
        with self._lock:
            return self.model.encode(
                list(prepared),
                convert_to_tensor=True,
                normalize_embeddings=True,
                show_progress_bar=False,
                batch_size=64,
            )


class EthicsClassifier:
    """Cosine of a prompt to each of the 4 category names (the strings themselves, §5.1)."""

    def __init__(self, encoder: _Encoder) -> None:
        self._encoder = encoder
        config = encoder.config
        self.categories: tuple[str, ...] = tuple(config.get("categories", ETHICS_CATEGORIES))
        self.thresholds: dict[str, float] = {
            **UPSTREAM_THRESHOLDS,
            **{k: float(v) for k, v in config.get("thresholds", {}).items()},
        }
        self.normal_veto: float = float(config.get("normal_veto", NORMAL_VETO))
        self.preprocess = encoder.preprocess
        self._category_embeddings = encoder.embed(self.categories)  # computed once

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> EthicsClassifier:
        return cls(_Encoder.load(path, device))

    def scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """For each text, ``{category name: cosine}`` over the 4 categories."""
        if not texts:
            return []
        sims = self._encoder.embed(texts) @ self._category_embeddings.T
        return [
            {name: float(row[i]) for i, name in enumerate(self.categories)} for row in sims.tolist()
        ]

    def predict(self, text: str) -> str:
        """The category name with the highest cosine (argmax, as in upstream's test report)."""
        score = self.scores([text])[0]
        return max(score, key=score.__getitem__)

    def triggered(self, text: str, answer: str) -> list[Category]:
        """Sanctioned categories for this turn under the model's thresholds (§5.2)."""
        return triggered_categories(
            self.scores([text])[0], self.thresholds, answer, self.normal_veto
        )

    def flagged(self, scores: Mapping[str, float]) -> list[str]:
        """Category names over their thresholds with no 일반 veto, *ignoring the answer condition*
        (as if Oh-LoRA declined); used for evaluation and calibration reports."""
        if scores.get(NORMAL_NAME, 0.0) >= self.normal_veto:
            return []
        return [name for name, t in self.thresholds.items() if scores.get(name, 0.0) >= t]


class MemoryRetriever:
    """Picks the one memory line most related to the user's prompt (§4.3)."""

    def __init__(self, encoder: _Encoder, default_threshold: float | None = None) -> None:
        self._encoder = encoder
        self.preprocess = encoder.preprocess
        saved = encoder.config.get("memory_threshold")
        self.threshold: float = float(
            saved
            if saved is not None
            else (default_threshold if default_threshold is not None else UPSTREAM_MEMORY_THRESHOLD)
        )

    @classmethod
    def load(
        cls, path: str | Path, device: str | None = None, default_threshold: float | None = None
    ) -> MemoryRetriever:
        """``default_threshold`` applies only when the model has no saved calibration."""
        return cls(_Encoder.load(path, device), default_threshold)

    def embed(self, texts: Sequence[str]):
        """Unit-length embeddings of ``texts`` (preprocessed as the model expects)."""
        return self._encoder.embed(texts)

    def scores(self, query: str, items: Sequence[str]) -> list[float]:
        """Cosine between the prompt and each item (no skipping)."""
        if not items:
            return []
        embeddings = self._encoder.embed([query, *items])
        return [float(x) for x in (embeddings[1:] @ embeddings[0]).tolist()]

    def best(
        self, query: str, items: Sequence[str], threshold: float | None = None
    ) -> tuple[int, float] | None:
        """``(index, score)`` of the top item if its score ≥ threshold, else None.

        Items with fewer than 3 non-space characters are skipped, as upstream does.
        """
        limit = self.threshold if threshold is None else threshold
        usable = [
            i
            for i, item in enumerate(items)
            if sum(not c.isspace() for c in item) >= MIN_MEMORY_CHARS
        ]
        if not usable:
            return None
        scored = self.scores(query, [items[i] for i in usable])
        top = max(range(len(usable)), key=scored.__getitem__)
        if scored[top] < limit:
            return None
        return usable[top], scored[top]
