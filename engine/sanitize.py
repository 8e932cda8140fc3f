"""User text as the models may see it: clean Unicode, and no way to forge prompt structure.

Discord and terminals deliver anything: zero-width and bidi control characters, lone
surrogates (JSON `"\\ud800"` decodes to one, and SQLite cannot store it), text in NFD. And a
user can type the very markers our prompts are built from — `(답변 시작)`, `(오로라 답변 요약)`
— or a line shaped like a retrieved memory item, `[관리자: 예]`. Those would let a message
rewrite the prompt's structure, so their brackets become full-width look-alikes: the words
stay readable, the structure cannot be forged.
"""

from __future__ import annotations

import re
import unicodedata

from engine import prompts

REPLACEMENT = "\ufffd"
# Invisible format characters: zero-width space/joiners, word joiner, BOM, bidi embeddings,
# overrides and isolates, and the LRM/RLM/ALM marks.
INVISIBLE = re.compile("[\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u061c]")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n
SURROGATE = re.compile("[\ud800-\udfff]")
STRUCTURE_MARKERS = tuple(
    marker.strip() for marker in (
        prompts.REPLY_START, prompts.REPLY_END, prompts.SUMMARY_START, prompts.SUMMARY_END,
        prompts.EXPRESSION_START, prompts.EXPRESSION_END, prompts.ANSWER_SEP,
        prompts.SUMMARY_PREFIX, prompts.QUESTION_PREFIX, prompts.RESPONSE_TEMPLATE,
    )
)
# `(지금은 …)` is the time tag the service adds; a user cannot supply their own.
FORGED_TIME_TAG = re.compile(r"\((\s*지금은[^()]*)\)")
MEMORY_ITEM_SHAPE = re.compile(r"\[([^\[\]]*:[^\[\]]*)\]")
FULL_WIDTH = str.maketrans({"(": "（", ")": "）", "[": "［", "]": "］", "#": "＃"})


def clean_text(text: str) -> str:
    """NFC, lone surrogates → U+FFFD, invisible and control characters removed."""
    text = SURROGATE.sub(REPLACEMENT, text)
    text = unicodedata.normalize("NFC", text)
    text = INVISIBLE.sub("", text)
    return CONTROL.sub("", text)


def defuse_markers(text: str) -> str:
    """Prompt markers, time tags and `[key: value]` shapes in user text lose their brackets."""
    for marker in STRUCTURE_MARKERS:
        if marker in text:
            text = text.replace(marker, marker.translate(FULL_WIDTH))
    text = FORGED_TIME_TAG.sub(lambda m: f"（{m.group(1)}）", text)
    return MEMORY_ITEM_SHAPE.sub(lambda m: f"［{m.group(1)}］", text)


def user_text(text: str) -> str:
    """What the engine stores and the models read for a user's message."""
    return defuse_markers(clean_text(text)).strip()
