"""Kiwi morpheme preprocessing for the tiny S-BERT encoders.

A tiny encoder trained on ~1,000 Korean prompts sees far fewer distinct units when the text is
first cut into morphemes: ``사랑해`` and ``사랑했어`` share ``사랑/NNG 하/XSV``. This module turns
text into space-joined ``form/tag`` tokens, e.g. ``"로라야 사랑해!"`` →
``"로라/NNP 야/JKV 사랑/NNG 하/XSV 어/EF !/SF"``. The same stage runs at training and inference
time; which stage a model expects is recorded beside it (``ohlora_sbert.json``).

Kiwi (``kiwipiepy`` + ``kiwipiepy-model``) loads in about a second, so it is created lazily,
once per process, and shared; analysis calls are serialised with a lock.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable
from typing import Any

PREPROCESS_KIWI = "kiwi"
PREPROCESS_SYLLABLE = "syllable"
PREPROCESS_NONE = "none"
PREPROCESSORS = (PREPROCESS_KIWI, PREPROCESS_SYLLABLE, PREPROCESS_NONE)
# Word boundary marker of the syllable stage.
SPACE_MARK = "\u2581"

_kiwi: Any = None
_kiwi_lock = threading.Lock()


def get_kiwi() -> Any:
    """The process-wide Kiwi analyser (created on first use)."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                _kiwi = Kiwi()
    return _kiwi


def _token_text(form: str, tag: str) -> str:
    # A form never contains whitespace in practice; make sure one token stays one token.
    form = "_".join(form.split()) or "_"
    return f"{form}/{tag}"


class MorphemePreprocessor:
    """Callable turning text into space-joined Kiwi ``form/tag`` tokens (NFC in and out).

    Deterministic: the same input always gives the same string. Empty or blank text gives ``""``.
    """

    name = PREPROCESS_KIWI

    def __call__(self, text: str) -> str:
        return self.batch([text])[0]

    def batch(self, texts: Iterable[str]) -> list[str]:
        normalised = [unicodedata.normalize("NFC", t or "") for t in texts]
        out: list[str] = [""] * len(normalised)
        # Analyse each distinct non-blank text once (pair data repeats texts many times).
        unique = list(dict.fromkeys(t for t in normalised if t.strip()))
        if not unique:
            return out
        kiwi = get_kiwi()
        with _kiwi_lock:
            analysed = [kiwi.tokenize(text) for text in unique]
        done = {
            text: unicodedata.normalize(
                "NFC", " ".join(_token_text(tok.form, str(tok.tag)) for tok in tokens)
            )
            for text, tokens in zip(unique, analysed)
        }
        return [done.get(t, "") for t in normalised]


# Content morphemes (nouns, verb and adjective stems, roots, adverbs, pronouns) whose meaning the
# ethics S-BERT's morpheme-similarity block compares (see `engine.runtime.use_module`).
CONTENT_TAGS: frozenset[str] = frozenset({"NNG", "NNP", "NP", "VV", "VA", "XR", "MAG"})
Morpheme = tuple[str, str]


def content_morphemes(texts: Iterable[str]) -> list[list[Morpheme]]:
    """Each text's distinct content morphemes as ``(form, tag)``, in order of appearance."""
    normalised = [unicodedata.normalize("NFC", t or "") for t in texts]
    kiwi = get_kiwi()
    with _kiwi_lock:
        analysed = [kiwi.tokenize(t) if t.strip() else [] for t in normalised]
    return [
        list(
            dict.fromkeys(
                (tok.form, str(tok.tag)) for tok in tokens if str(tok.tag) in CONTENT_TAGS
            )
        )
        for tokens in analysed
    ]


def morpheme_similarities(morpheme: Morpheme, anchors: Iterable[Morpheme]) -> list[float]:
    """Kiwi's embedding cosine (its CoNgram model) of ``morpheme`` with each anchor; 0.0 where
    Kiwi does not know one of the two (a form outside its dictionary)."""
    kiwi = get_kiwi()
    out: list[float] = []
    with _kiwi_lock:
        for anchor in anchors:
            try:
                out.append(float(kiwi.morpheme_similarity(morpheme, anchor)))
            except ValueError:
                out.append(0.0)
    return out


class IdentityPreprocessor:
    """The ``none`` stage: NFC only (production klue/roberta-base models take raw text)."""

    name = PREPROCESS_NONE

    def __call__(self, text: str) -> str:
        return unicodedata.normalize("NFC", text or "")

    def batch(self, texts: Iterable[str]) -> list[str]:
        return [self(t) for t in texts]


class SyllablePreprocessor:
    """The ``syllable`` stage: one token per character (NFC), ``▁`` between words."""

    name = PREPROCESS_SYLLABLE

    def __call__(self, text: str) -> str:
        words = unicodedata.normalize("NFC", text or "").split()
        return f" {SPACE_MARK} ".join(" ".join(word) for word in words)

    def batch(self, texts: Iterable[str]) -> list[str]:
        return [self(t) for t in texts]


Preprocessor = MorphemePreprocessor | SyllablePreprocessor | IdentityPreprocessor


def get_preprocessor(name: str) -> Preprocessor:
    """The preprocessing stage saved beside a model, by name (``kiwi``, ``syllable``, ``none``)."""
    if name == PREPROCESS_KIWI:
        return MorphemePreprocessor()
    if name == PREPROCESS_SYLLABLE:
        return SyllablePreprocessor()
    if name == PREPROCESS_NONE:
        return IdentityPreprocessor()
    raise ValueError(f"unknown preprocessing {name!r} (expected one of {PREPROCESSORS})")
