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
