"""Cleaning, acceptance and finalisation of reply and summary candidates (§1 steps 5, 8)."""

from __future__ import annotations

from datetime import datetime

from engine.rules.prompts import REPLY_END, SUMMARY_END, SUMMARY_REJECT_NEW_TOKENS
from engine.rules.sanitize import model_text
from engine.rules.timetag import has_weekday_hallucination

ZERO_WIDTH_SPACE = "\u200b"
NO_BREAK_SPACE = "\u00a0"
# Particle mistakes the model makes after these nouns.
_CORRECTIONS: tuple[tuple[str, str], ...] = (("오늘는", "오늘은"), ("내일는", "내일은"))
# Fragments of an end marker that survived removal of the exact marker.
_REPLY_END_FRAGMENTS = ("답변 종료", "답변종료")
_SUMMARY_END_FRAGMENTS = ("요약 종료", "요약종료")
# Spotted with spaces removed: the model is echoing the summary-prompt scaffolding.
_PROMPT_MARKERS = ("(사용자", "요약)")
URL_MARK = "http"
SUMMARY_MIN_CHARS = 2


def _strip_invisible(text: str) -> str:
    return text.replace(ZERO_WIDTH_SPACE, "").replace(NO_BREAK_SPACE, "")


def clean_candidate(text: str) -> str:
    """Delete invisible spaces and fix the 오늘는/내일는 particle errors."""
    text = _strip_invisible(text)
    for wrong, right in _CORRECTIONS:
        text = text.replace(wrong, right)
    return text


def reply_rejection_reason(candidate: str, now: datetime | None) -> str | None:
    """Why a cleaned reply candidate must be regenerated, or None to accept it.

    ``now=None`` skips the weekday-hallucination check (the caller does that on
    the last attempt so that something can still be accepted).
    """
    without_end = candidate.replace(REPLY_END, "")
    if without_end.replace("\n", "").replace(" ", "") == "":
        return "empty"
    if any(fragment in without_end for fragment in _REPLY_END_FRAGMENTS):
        return "end marker fragment"
    compact = candidate.replace(" ", "")
    if any(marker in compact for marker in _PROMPT_MARKERS):
        return "prompt marker"
    if URL_MARK in candidate:
        return "url"
    if now is not None and has_weekday_hallucination(candidate, now):
        return "weekday hallucination"
    return None


def finalize_reply(candidate: str) -> str:
    """Accepted reply text: end marker removed, surrounding whitespace stripped, and defused
    like user text, since the reply re-enters the summary and expression prompts.

    Upstream kept a leading space; we strip it deliberately (prompts re-add it).
    """
    return model_text(candidate.replace(REPLY_END, ""))


def clean_summary_candidate(text: str) -> str:
    """Delete invisible spaces and strip, as upstream does to summary candidates."""
    return _strip_invisible(text).strip()


def summary_rejection_reason(candidate: str, new_tokens: int) -> str | None:
    """Why a summary candidate must be regenerated, or None to accept it.

    ``new_tokens`` is the number of generated tokens; near the budget the
    summary was most likely cut off or rambling.
    """
    candidate = clean_summary_candidate(candidate)
    without_end = candidate.replace(SUMMARY_END, "")
    if any(fragment in without_end for fragment in _SUMMARY_END_FRAGMENTS):
        return "end marker fragment"
    if new_tokens >= SUMMARY_REJECT_NEW_TOKENS:
        return "too long"
    if len(without_end.strip()) < SUMMARY_MIN_CHARS:
        return "too short"
    if URL_MARK in candidate:
        return "url"
    return None


def finalize_summary(candidate: str) -> str:
    """Accepted summary text with the end marker removed and whitespace stripped, defused
    like user text: the summary is the next turn's `(오로라 답변 요약)` prefix."""
    return model_text(clean_summary_candidate(candidate).replace(SUMMARY_END, ""))
