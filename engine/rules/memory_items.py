"""Normalising, validating and parsing memory-LLM output (reference §4.2).

The memory model emits zero or one ``[key: value]`` item; its raw output is
noisy, so it is normalised first and then accepted or rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.rules.prompts import SUMMARY_END

ZERO_WIDTH_SPACE = "\u200b"
NO_BREAK_SPACE = "\u00a0"
REPLACEMENT_CHAR = "\ufffd"
_BRACKET_MAP = str.maketrans({"(": "[", ")": "]", "{": "[", "}": "]"})
KEY_VALUE_SEP = ": "
# Five spaces in a row signal degenerate output.
MAX_SPACE_RUN = 5


@dataclass(frozen=True)
class MemoryItem:
    """One remembered fact, e.g. ``[오늘 일정: 시험]``."""

    key: str
    value: str

    def render(self) -> str:
        """The line written to memory storage."""
        return f"[{self.key}{KEY_VALUE_SEP}{self.value}]"


def normalize_memory_output(text: str) -> str:
    """Bring a raw candidate into ``[key: value]`` form where it is close to it.

    Order matters and follows upstream: the end marker is removed before
    parentheses are turned into brackets.
    """
    text = text.replace(SUMMARY_END, "").replace(ZERO_WIDTH_SPACE, "").replace(NO_BREAK_SPACE, "")
    text = text.translate(_BRACKET_MAP).replace(" : ", KEY_VALUE_SEP)
    if "[" in text and "]" in text:
        # Keep the first [...] only (upstream: split('[')[1].split(']')[0]).
        inner = text.split("[", 2)[1].split("]", 1)[0]
        text = f"[{inner}]"
    if KEY_VALUE_SEP not in text:
        text = text.replace(":", KEY_VALUE_SEP)
    if "[" not in text and "]" not in text and KEY_VALUE_SEP in text:
        text = f"[{text.strip()}]"
    return text.strip()


def memory_rejection_reason(text: str, used_all_tokens: bool = False) -> str | None:
    """Why a *normalised* candidate is unacceptable, or None if it is accepted.

    An empty or space-only candidate is accepted: it means "nothing to remember".
    ``used_all_tokens`` flags output cut off at the token budget.
    """
    if used_all_tokens:
        return "used all tokens"
    if text.strip() == "":
        return None
    if "요약 종료" in text or "요약종료" in text:
        return "end marker fragment"
    if REPLACEMENT_CHAR in text:
        return "replacement character"
    if " " * MAX_SPACE_RUN in text:
        return "space run"
    if "http" in text:
        return "url"
    if not (text.startswith("[") and text.endswith("]")):
        return "not bracketed"
    if text.count("[") != 1 or text.count("]") != 1 or text.count(":") != 1:
        return "malformed"
    key, value = text[1:-1].split(":")
    if not key.strip():
        return "empty key"
    if not value.strip():
        return "empty value"
    return None


def accepted_item(normalized: str) -> MemoryItem | None:
    """The item in normalised text that `memory_rejection_reason` accepted; None if empty."""
    if normalized.strip() == "":
        return None
    key, value = normalized[1:-1].split(":")
    return MemoryItem(key.strip(), value.strip())


def parse_memory_item(text: str, *, used_all_tokens: bool = False) -> MemoryItem | None:
    """Normalise and validate raw output; None when there is nothing valid to store."""
    normalized = normalize_memory_output(text)
    if memory_rejection_reason(normalized, used_all_tokens) is not None:
        return None
    return accepted_item(normalized)


# ---- the rules every stored item keeps (extracted or written by the user) ---------------------
# The memory model writes short facts (`[좋아하는 가수: 아이유]`), so a longer item is
# degenerate output (or a remote backend's); the panel's edit form has the same limits.
MAX_MEMORY_KEY_CHARS = 30
MAX_MEMORY_VALUE_CHARS = 100
# Characters that would break the `[key: value]` form the prompts carry.
FORBIDDEN_CHARS = frozenset("[]:\n\r\t")

EMPTY_KEY = "기억의 이름이 비어 있어요."
EMPTY_VALUE = "기억의 내용이 비어 있어요."
KEY_TOO_LONG = f"기억의 이름은 {MAX_MEMORY_KEY_CHARS}자까지 쓸 수 있어요."
VALUE_TOO_LONG = f"기억의 내용은 {MAX_MEMORY_VALUE_CHARS}자까지 쓸 수 있어요."
BAD_CHARS = "대괄호 [ ], 쌍점 : 과 줄바꿈은 쓸 수 없어요."
NO_URLS = "주소(링크)는 기억할 수 없어요."
BAD_TEXT = "기억할 수 없는 글자나 표현이 들어 있어요."


def item_problem(key: str, value: str) -> str | None:
    """Why (key, value) may not be stored, in Korean for the user, or None when it may: the
    rules `memory_rejection_reason` applies to extracted output, plus the length caps. The
    caller strips the two first (a value with spaces around it is not a different value)."""
    if not key.strip():
        return EMPTY_KEY
    if not value.strip():
        return EMPTY_VALUE
    if len(key) > MAX_MEMORY_KEY_CHARS:
        return KEY_TOO_LONG
    if len(value) > MAX_MEMORY_VALUE_CHARS:
        return VALUE_TOO_LONG
    text = key + value
    if FORBIDDEN_CHARS & set(text):
        return BAD_CHARS
    if "http" in text.lower():
        return NO_URLS
    # The rest of extraction's rules (end-marker fragments, U+FFFD, space runs), on the
    # item as the prompts carry it: what passes parses back to the same item.
    if memory_rejection_reason(MemoryItem(key, value).render()) is not None:
        return BAD_TEXT
    return None
