"""Sanction ladder, period formatting and user-facing sanction messages (§1, §5.2).

Kept free of storage and Discord so the escalation rules can be unit tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

OHLORA_EMOJI = "\U0001f471\u200d\u2640\ufe0f"  # 👱‍♀️ (with ZWJ and VS16, as upstream)


class Category(StrEnum):
    """Sanction categories; the values are what the block log stores."""

    LOVE = "love"
    POLITICS = "politics"
    PAEDRIP = "paedrip"

    @property
    def label(self) -> str:
        """Korean label used in warning/block messages."""
        return _LABELS[self]

    @property
    def refusal_reason(self) -> str:
        """Reason text of the start-up refusal notice."""
        return _REFUSAL_REASONS[self]


_LABELS: dict[Category, str] = {
    Category.LOVE: "사랑 고백/만남",
    Category.POLITICS: "정치",
    Category.PAEDRIP: "패드립",
}
_REFUSAL_REASONS: dict[Category, str] = {
    Category.LOVE: f"오로라 {OHLORA_EMOJI} 에게 사랑 고백/만남 요구",
    Category.POLITICS: "정치 발언",
    Category.PAEDRIP: "패드립",
}
# Canonical order for entries and message reasons.
CATEGORY_ORDER: tuple[Category, ...] = (Category.LOVE, Category.POLITICS, Category.PAEDRIP)

MAX_BLOCK = timedelta(days=1461)  # about 4 years; cap on one combined block
NO_BLOCK = timedelta(0)  # level with this period is only a warning

# Period per level (index 0 = level 1); levels beyond the tuple use LADDER_DEFAULT.
LADDER: Mapping[Category, tuple[timedelta, ...]] = {
    Category.LOVE: (
        NO_BLOCK,
        timedelta(hours=1),
        timedelta(days=1),
        timedelta(days=14),
        timedelta(days=1461),
    ),
    Category.POLITICS: (
        NO_BLOCK,
        timedelta(days=3),
        timedelta(days=7),
        timedelta(days=30),
        timedelta(days=365),
    ),
    Category.PAEDRIP: (
        timedelta(days=7),
        timedelta(days=30),
        timedelta(days=1461),
    ),
}
LADDER_DEFAULT: Mapping[Category, timedelta] = {
    Category.LOVE: timedelta(days=1461),
    Category.POLITICS: timedelta(days=365),
    Category.PAEDRIP: timedelta(days=1461),
}


def period_for(category: Category | str, level: int) -> timedelta:
    """Block period for ``category`` at ``level`` (1-based); 0 means warning only."""
    if level < 1:
        raise ValueError(f"level must be >= 1, got {level}")
    cat = Category(category)
    table = LADDER[cat]
    return table[level - 1] if level <= len(table) else LADDER_DEFAULT[cat]


@dataclass(frozen=True)
class SanctionEntry:
    """One triggered category with its new level and that level's own period."""

    category: Category
    level: int
    period: timedelta


@dataclass(frozen=True)
class SanctionDecision:
    """All entries of one turn; ``total`` is the capped sum of their periods."""

    entries: tuple[SanctionEntry, ...]
    total: timedelta

    @property
    def is_block(self) -> bool:
        """A positive total blocks the user; zero is a warning."""
        return self.total > NO_BLOCK

    @property
    def categories(self) -> tuple[Category, ...]:
        """Triggered categories in canonical order."""
        return tuple(entry.category for entry in self.entries)


def _ordered_unique(categories: Iterable[Category | str]) -> tuple[Category, ...]:
    """Deduplicate and sort categories into CATEGORY_ORDER (invalid values raise)."""
    present = {Category(c) for c in categories}
    return tuple(c for c in CATEGORY_ORDER if c in present)


class SanctionLadder:
    """Escalation rule: each repeat in a category moves one level up the ladder."""

    def decide(
        self,
        categories: Iterable[Category | str],
        previous_levels: Mapping[str, int],
    ) -> SanctionDecision:
        """Decide this turn's sanction.

        ``previous_levels`` maps a category value (``'love'`` …) to the highest level
        already logged for it. Every triggered category gets its own entry (upstream
        kept only the last one), and the combined total is capped at MAX_BLOCK.
        """
        ordered = _ordered_unique(categories)
        if not ordered:
            raise ValueError("at least one category is required")
        entries = []
        for cat in ordered:
            level = max(int(previous_levels.get(cat.value, 0)), 0) + 1
            entries.append(SanctionEntry(cat, level, period_for(cat, level)))
        total = min(sum((e.period for e in entries), NO_BLOCK), MAX_BLOCK)
        return SanctionDecision(tuple(entries), total)


_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_DAYS_PER_YEAR = 365


def format_period(td: timedelta) -> str:
    """Render a period as N분 / N시간 / N일 / N년 (integer division, as upstream)."""
    if td < _HOUR:
        return f"{td // _MINUTE}분"
    if td < _DAY:
        return f"{td // _HOUR}시간"
    if td < timedelta(days=_DAYS_PER_YEAR):
        return f"{td // _DAY}일"
    return f"{(td // _DAY) // _DAYS_PER_YEAR}년"


def _reasons(decision: SanctionDecision) -> str:
    return ",".join(c.label for c in decision.categories)


def warning_message(decision: SanctionDecision) -> str:
    """Two-line warning shown before the answer when the total is 0."""
    if decision.is_block:
        raise ValueError("decision is a block, not a warning")
    return (
        f"🚨 {_reasons(decision)} 발언으로 Oh-LoRA {OHLORA_EMOJI} (오로라) 에게 경고를 받았습니다. 🚨\n"
        f"동일/유사 발언 반복 시 Oh-LoRA {OHLORA_EMOJI} (오로라) 관련 모든 AI 사용이 일정 기간 차단될 수 있습니다."
    )


def block_message(decision: SanctionDecision) -> str:
    """Two-line block message; the answer of that turn is never shown."""
    if not decision.is_block:
        raise ValueError("decision is a warning, not a block")
    return (
        f"⛔ {_reasons(decision)} 발언으로 Oh-LoRA {OHLORA_EMOJI} (오로라) 에게 차단되었습니다. ⛔\n"
        f"{format_period(decision.total)} 동안 Oh-LoRA {OHLORA_EMOJI} (오로라) 관련 모든 AI 사용이 불가합니다."
    )


EXPIRY_FORMAT = "%Y.%m.%d %H:%M:%S"


def block_notice(expires_at: datetime, categories: Iterable[Category | str]) -> str:
    """Three-line refusal shown while a block is active.

    ``expires_at`` is rendered as given, so pass local wall time.
    """
    ordered = _ordered_unique(categories)
    if not ordered:
        raise ValueError("at least one category is required")
    reasons = ", ".join(c.refusal_reason for c in ordered)
    return (
        f"Oh-LoRA {OHLORA_EMOJI} 가 대화를 거부하였습니다.\n"
        f"만료일: {expires_at.strftime(EXPIRY_FORMAT)}\n"
        f"사유: {reasons}"
    )
