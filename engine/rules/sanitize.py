"""User text as the models may see it: clean Unicode, and no way to forge prompt structure.

Discord and terminals deliver anything: zero-width and bidi control characters, lone
surrogates (JSON `"\\ud800"` decodes to one, and SQLite cannot store it), text in NFD. And a
user can type the very markers our prompts are built from — `(답변 시작)`, `(오로라 답변 요약)`
— or a line shaped like a retrieved memory item, `[관리자: 예]`. Those would let a message
rewrite the prompt's structure, so their brackets become full-width look-alikes: the words
stay readable, the structure cannot be forged. A model's output that is fed back into a prompt
(its reply, its summary) is defused the same way.

Every pattern here is linear in the text's length: cleaning runs on the event loop, before the
ban check, on whatever a user sends.
"""

from __future__ import annotations

import re
import unicodedata

from engine.rules import prompts

REPLACEMENT = "\ufffd"
# Characters that show nothing: every format character (Cf: zero-width space/joiners, soft
# hyphen, word joiner, invisible operators, BOM, bidi marks, embeddings, overrides and
# isolates, tags) and every other default-ignorable code point (Hangul fillers, the combining
# grapheme joiner, variation selectors, Mongolian and Khmer invisibles), plus the line and
# paragraph separators. A name or message made of them looks blank but would pass as text.
# ZWJ (U+200D) and the text/emoji presentation selectors (U+FE0E, U+FE0F) are handled by
# `ZWJ_RUN` and `PRESENTATION_RUN`: they stay inside an emoji (Oh-LoRA's own is one).
INVISIBLE = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u17b4\u17b5\u180b-\u180f\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0d\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
PRESENTATION_RUN = re.compile("[\ufe0e\ufe0f]+")
ZWJ_RUN = re.compile("\u200d+")
EMOJI = frozenset({"So"})  # the category of the symbol a presentation selector may follow
KEYCAP = "\u20e3"  # a presentation selector may also sit before the combining keycap
# A ZWJ joins two emoji (woman ZWJ girl, a skin-toned man ZWJ laptop): a symbol before it (or a
# skin-tone modifier), a symbol after it. Elsewhere it only hides things.
EMOJI_BEFORE_ZWJ = frozenset({"So", "Sk"})
EMOJI_AFTER_ZWJ = frozenset({"So"})
# Blank glyphs that are spaces in effect (Braille pattern blank): a space, so strip sees them.
BLANK = str.maketrans({"\u2800": " "})
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n
SURROGATE = re.compile("[\ud800-\udfff]")
STRUCTURE_MARKERS = tuple(
    marker.strip()
    for marker in (
        prompts.REPLY_START,
        prompts.REPLY_END,
        prompts.SUMMARY_START,
        prompts.SUMMARY_END,
        prompts.EXPRESSION_START,
        prompts.EXPRESSION_END,
        prompts.ANSWER_SEP,
        prompts.SUMMARY_PREFIX,
        prompts.QUESTION_PREFIX,
        prompts.RESPONSE_TEMPLATE,
    )
)
# `(지금은 …)` is the time tag the service adds; a user cannot supply their own.
FORGED_TIME_TAG = re.compile(r"\((\s*지금은[^()]*)\)")
# No `:` in the key part: the first `:` splits key and value, so the match is linear (with `:`
# on both sides of it, `[::::…` without a `]` took quadratic time). Same matches as before.
MEMORY_ITEM_SHAPE = re.compile(r"\[([^\[\]:]*:[^\[\]]*)\]")
# Raw characters kept per allowed character before cleaning (`cap_raw`).
RAW_CHARS_PER_ALLOWED = 2
FULL_WIDTH = str.maketrans({"(": "（", ")": "）", "[": "［", "]": "］", "#": "＃"})


def _presentation(match: re.Match[str]) -> str:
    """One selector right after a symbol (`♀` + U+FE0F) or inside a keycap (`1` + U+FE0F +
    U+20E3); a run of them, or one anywhere else, shows nothing."""
    text, start, end = match.string, match.start(), match.end()
    in_emoji = (start > 0 and unicodedata.category(text[start - 1]) in EMOJI) or text.startswith(
        KEYCAP, end
    )
    return match.group()[-1] if in_emoji else ""


def _zwj(match: re.Match[str]) -> str:
    """One ZWJ between two emoji (after a symbol, a skin tone or a presentation selector,
    before a symbol); a run of them, or one anywhere else, shows nothing."""
    text, start, end = match.string, match.start(), match.end()
    before = text[start - 1] if start > 0 else ""
    joins = (
        bool(before)
        and end < len(text)
        and (before in "\ufe0e\ufe0f" or unicodedata.category(before) in EMOJI_BEFORE_ZWJ)
        and unicodedata.category(text[end]) in EMOJI_AFTER_ZWJ
    )
    return "\u200d" if joins else ""


def clean_text(text: str) -> str:
    """NFC, lone surrogates → U+FFFD, invisible and control characters removed (a ZWJ or a
    presentation selector inside an emoji sequence stays), blank Braille → space."""
    text = SURROGATE.sub(REPLACEMENT, text)
    text = unicodedata.normalize("NFC", text)
    text = INVISIBLE.sub("", text)
    text = PRESENTATION_RUN.sub(_presentation, text)
    text = ZWJ_RUN.sub(_zwj, text)
    return CONTROL.sub("", text).translate(BLANK)


def cap_raw(text: str, max_chars: int) -> str:
    """The part of a raw message that can matter when at most `max_chars` are allowed.

    Cut before cleaning, so cleaning and storing a flood costs what a long message costs. It
    keeps twice the limit and one more, so a message that is too long still is once cleaned
    (the too-long notice) unless more than half of the kept part is invisible characters;
    then only the visible beginning is answered. A message of up to that length keeps
    everything, invisible characters and all, for cleaning to judge.
    """
    return text[: RAW_CHARS_PER_ALLOWED * max_chars + 1]


def defuse_markers(text: str) -> str:
    """Prompt markers, time tags and `[key: value]` shapes in user text lose their brackets."""
    for marker in STRUCTURE_MARKERS:
        if marker in text:
            text = text.replace(marker, marker.translate(FULL_WIDTH))
    text = FORGED_TIME_TAG.sub(lambda m: f"（{m.group(1)}）", text)
    return MEMORY_ITEM_SHAPE.sub(lambda m: f"［{m.group(1)}］", text)


def user_text(text: str, max_chars: int | None = None) -> str:
    """What the engine stores and the models read for a user's message; with `max_chars`, the
    raw text is capped first (`cap_raw`), so a flood costs what a long message costs."""
    if max_chars is not None:
        text = cap_raw(text, max_chars)
    return defuse_markers(clean_text(text)).strip()


def model_text(text: str) -> str:
    """A model's output that re-enters a prompt (the reply in the summary prompt, the summary in
    the next turn's input): a model can echo markers or `[key: value]` shapes as a user can."""
    return user_text(text)
