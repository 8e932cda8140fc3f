"""Ethics decision rule on classifier scores (reference §5.2)."""

import pytest

from engine.rules.ethics_rules import (
    CATEGORY_BY_NAME,
    ETHICS_CATEGORIES,
    NORMAL_VETO,
    UPSTREAM_THRESHOLDS,
    triggered_categories,
)
from engine.rules.sanctions import Category

DECLINE = "미안, 그건 좀 곤란해."
BURDEN = "그런 말은 부담스러워 ㅠㅠ"
AGREE = "좋아! 나도 그렇게 생각해!"


def scores(
    love: float = 0.0, normal: float = 0.0, politics: float = 0.0, paedrip: float = 0.0
) -> dict[str, float]:
    return {"사랑 고백/만남": love, "일반": normal, "정치": politics, "패드립": paedrip}


def test_constants() -> None:
    assert ETHICS_CATEGORIES == ("사랑 고백/만남", "일반", "정치", "패드립")
    assert dict(UPSTREAM_THRESHOLDS) == {"사랑 고백/만남": 0.98, "정치": 0.95, "패드립": 0.90}
    assert NORMAL_VETO == 0.5
    assert dict(CATEGORY_BY_NAME) == {
        "사랑 고백/만남": Category.LOVE,
        "정치": Category.POLITICS,
        "패드립": Category.PAEDRIP,
    }


@pytest.mark.parametrize("answer", [DECLINE, BURDEN])
def test_love_needs_score_and_declining_answer(answer: str) -> None:
    assert triggered_categories(scores(love=0.99), UPSTREAM_THRESHOLDS, answer) == [Category.LOVE]
    assert triggered_categories(scores(love=0.99), UPSTREAM_THRESHOLDS, AGREE) == []
    assert triggered_categories(scores(love=0.97), UPSTREAM_THRESHOLDS, answer) == []


@pytest.mark.parametrize("answer", [DECLINE, BURDEN])
def test_politics_needs_score_and_declining_answer(answer: str) -> None:
    assert triggered_categories(scores(politics=0.96), UPSTREAM_THRESHOLDS, answer) == [
        Category.POLITICS
    ]
    assert triggered_categories(scores(politics=0.96), UPSTREAM_THRESHOLDS, AGREE) == []
    assert triggered_categories(scores(politics=0.94), UPSTREAM_THRESHOLDS, answer) == []


def test_paedrip_needs_no_answer_condition() -> None:
    assert triggered_categories(scores(paedrip=0.91), UPSTREAM_THRESHOLDS, AGREE) == [
        Category.PAEDRIP
    ]
    assert triggered_categories(scores(paedrip=0.89), UPSTREAM_THRESHOLDS, AGREE) == []


@pytest.mark.parametrize(
    ("name", "threshold"), [("사랑 고백/만남", 0.98), ("정치", 0.95), ("패드립", 0.90)]
)
def test_thresholds_are_inclusive(name: str, threshold: float) -> None:
    s = {name: threshold}
    assert triggered_categories(s, UPSTREAM_THRESHOLDS, DECLINE) == [CATEGORY_BY_NAME[name]]


@pytest.mark.parametrize("normal", [0.5, 0.8])
def test_normal_vetoes_everything(normal: float) -> None:
    s = scores(love=1.0, normal=normal, politics=1.0, paedrip=1.0)
    assert triggered_categories(s, UPSTREAM_THRESHOLDS, DECLINE) == []


def test_normal_below_veto_does_not_veto() -> None:
    s = scores(love=1.0, normal=0.49, politics=1.0, paedrip=1.0)
    assert triggered_categories(s, UPSTREAM_THRESHOLDS, DECLINE) == [
        Category.LOVE,
        Category.POLITICS,
        Category.PAEDRIP,
    ]


def test_custom_veto_and_thresholds() -> None:
    s = scores(normal=0.6, paedrip=0.8)
    assert triggered_categories(s, {"패드립": 0.75}, AGREE, normal_veto=0.7) == [Category.PAEDRIP]
    assert triggered_categories(s, {"패드립": 0.75}, AGREE) == []
    # A missing threshold falls back to the upstream value.
    assert triggered_categories(scores(paedrip=0.8), {}, AGREE) == []


def test_missing_scores_count_as_zero() -> None:
    assert triggered_categories({}, UPSTREAM_THRESHOLDS, DECLINE) == []
    assert triggered_categories({"패드립": 0.95}, UPSTREAM_THRESHOLDS, AGREE) == [Category.PAEDRIP]
