"""Turning ethics-classifier scores into sanction categories (reference §5.2).

The classifier itself (an S-BERT) lives elsewhere; this module only holds the
thresholds and the decision rule so they can be tested without a model.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.rules.sanctions import Category

LOVE_NAME = "사랑 고백/만남"
NORMAL_NAME = "일반"
POLITICS_NAME = "정치"
PAEDRIP_NAME = "패드립"
# The strings the prompt is compared with, in upstream order.
ETHICS_CATEGORIES: tuple[str, ...] = (LOVE_NAME, NORMAL_NAME, POLITICS_NAME, PAEDRIP_NAME)

CATEGORY_BY_NAME: Mapping[str, Category] = {
    LOVE_NAME: Category.LOVE,
    POLITICS_NAME: Category.POLITICS,
    PAEDRIP_NAME: Category.PAEDRIP,
}

# Milder categories need higher confidence; thresholds are inclusive (>=).
UPSTREAM_THRESHOLDS: Mapping[str, float] = {
    LOVE_NAME: 0.98,
    POLITICS_NAME: 0.95,
    PAEDRIP_NAME: 0.90,
}
# A 일반 score at or above this vetoes every sanction.
NORMAL_VETO = 0.5
# Love/politics only count if Oh-LoRA herself declined, i.e. the answer says one of these.
DECLINE_WORDS: tuple[str, ...] = ("미안", "부담")
# Categories that additionally require a declining answer.
_NEEDS_DECLINE: frozenset[Category] = frozenset({Category.LOVE, Category.POLITICS})


def answer_declines(answer: str) -> bool:
    """True if the generated answer shows Oh-LoRA refusing (미안 / 부담)."""
    return any(word in answer for word in DECLINE_WORDS)


def triggered_categories(
    scores: Mapping[str, float],
    thresholds: Mapping[str, float],
    answer: str,
    normal_veto: float = NORMAL_VETO,
) -> list[Category]:
    """Categories sanctioned this turn, in the order love, politics, paedrip.

    ``scores`` and ``thresholds`` are keyed by the Korean category names; a missing
    score counts as 0 and a missing threshold falls back to UPSTREAM_THRESHOLDS.
    """
    if scores.get(NORMAL_NAME, 0.0) >= normal_veto:
        return []
    declined = answer_declines(answer)
    triggered: list[Category] = []
    for name, category in CATEGORY_BY_NAME.items():
        threshold = thresholds.get(name, UPSTREAM_THRESHOLDS[name])
        if scores.get(name, 0.0) < threshold:
            continue
        if category in _NEEDS_DECLINE and not declined:
            continue
        triggered.append(category)
    return triggered
