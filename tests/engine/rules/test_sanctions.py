"""Sanction ladder, period formatting and messages (reference §1, §5.2)."""

from datetime import datetime, timedelta

import pytest

from engine.rules.sanctions import (
    MAX_BLOCK,
    Category,
    SanctionDecision,
    SanctionEntry,
    SanctionLadder,
    block_message,
    block_notice,
    format_period,
    period_for,
    warning_message,
)

EMOJI = "\U0001f471\u200d\u2640\ufe0f"
H = timedelta(hours=1)
D = timedelta(days=1)
ZERO = timedelta(0)

# Reference §5.2 table, levels 1..7.
TABLE = {
    Category.LOVE: [ZERO, H, D, 14 * D, 1461 * D, 1461 * D, 1461 * D],
    Category.POLITICS: [ZERO, 3 * D, 7 * D, 30 * D, 365 * D, 365 * D, 365 * D],
    Category.PAEDRIP: [7 * D, 30 * D, 1461 * D, 1461 * D, 1461 * D, 1461 * D, 1461 * D],
}


def test_category_values_labels_and_reasons() -> None:
    assert [c.value for c in Category] == ["love", "politics", "paedrip"]
    assert Category.LOVE == "love"
    assert [c.label for c in Category] == ["사랑 고백/만남", "정치", "패드립"]
    assert Category.LOVE.refusal_reason == f"오로라 {EMOJI} 에게 사랑 고백/만남 요구"
    assert Category.POLITICS.refusal_reason == "정치 발언"
    assert Category.PAEDRIP.refusal_reason == "패드립"


@pytest.mark.parametrize("category", list(Category))
@pytest.mark.parametrize("level", range(1, 8))
def test_period_table(category: Category, level: int) -> None:
    assert period_for(category, level) == TABLE[category][level - 1]
    assert period_for(category.value, level) == TABLE[category][level - 1]


@pytest.mark.parametrize("level", [0, -1])
def test_period_for_rejects_bad_level(level: int) -> None:
    with pytest.raises(ValueError):
        period_for(Category.LOVE, level)


def test_period_for_rejects_unknown_category() -> None:
    with pytest.raises(ValueError):
        period_for("spam", 1)


@pytest.mark.parametrize("category", list(Category))
@pytest.mark.parametrize("previous", range(0, 7))
def test_decide_single_category_walks_the_ladder(category: Category, previous: int) -> None:
    decision = SanctionLadder().decide([category], {category.value: previous} if previous else {})
    expected = TABLE[category][previous]
    assert decision.entries == (SanctionEntry(category, previous + 1, expected),)
    assert decision.total == expected
    assert decision.is_block is (expected > ZERO)


def test_first_love_is_warning_first_paedrip_is_block() -> None:
    ladder = SanctionLadder()
    assert ladder.decide(["love"], {}).is_block is False
    assert ladder.decide(["paedrip"], {}).is_block is True


def test_levels_are_per_category() -> None:
    decision = SanctionLadder().decide(
        [Category.POLITICS, Category.LOVE], {"love": 2, "politics": 0, "paedrip": 5}
    )
    assert decision.entries == (
        SanctionEntry(Category.LOVE, 3, D),
        SanctionEntry(Category.POLITICS, 1, ZERO),
    )
    assert decision.total == D


def test_sum_of_two_categories() -> None:
    decision = SanctionLadder().decide(["love", "politics"], {"love": 1, "politics": 1})
    assert decision.total == H + 3 * D
    assert decision.categories == (Category.LOVE, Category.POLITICS)


def test_every_category_gets_an_entry_deduplicated_in_stable_order() -> None:
    decision = SanctionLadder().decide(
        ["paedrip", "love", Category.PAEDRIP, "politics", "love"], {}
    )
    assert decision.categories == (Category.LOVE, Category.POLITICS, Category.PAEDRIP)
    assert [e.level for e in decision.entries] == [1, 1, 1]
    assert decision.total == 7 * D


def test_total_capped_at_1461_days() -> None:
    decision = SanctionLadder().decide(["love", "paedrip"], {"love": 4, "paedrip": 2})
    assert [e.period for e in decision.entries] == [1461 * D, 1461 * D]
    assert decision.total == MAX_BLOCK == 1461 * D


def test_category_keys_are_accepted_in_previous_levels() -> None:
    decision = SanctionLadder().decide(["politics"], {Category.POLITICS: 1})
    assert decision.entries[0].level == 2
    assert decision.total == 3 * D


def test_empty_categories_rejected() -> None:
    with pytest.raises(ValueError):
        SanctionLadder().decide([], {})


def test_unknown_category_rejected() -> None:
    with pytest.raises(ValueError):
        SanctionLadder().decide(["spam"], {})


def test_decision_is_frozen() -> None:
    decision = SanctionLadder().decide(["love"], {})
    with pytest.raises(AttributeError):
        decision.total = D  # type: ignore[misc]


@pytest.mark.parametrize(
    ("period", "text"),
    [
        (ZERO, "0분"),
        (timedelta(minutes=59), "59분"),
        (timedelta(minutes=59, seconds=59), "59분"),
        (H, "1시간"),
        (23 * H, "23시간"),
        (timedelta(hours=23, minutes=59), "23시간"),
        (D, "1일"),
        (3 * D, "3일"),
        (364 * D, "364일"),
        (365 * D, "1년"),
        (729 * D, "1년"),
        (1461 * D, "4년"),
    ],
)
def test_format_period(period: timedelta, text: str) -> None:
    assert format_period(period) == text


def test_warning_message_exact() -> None:
    decision = SanctionLadder().decide(["love", "politics"], {})
    assert warning_message(decision) == (
        f"🚨 사랑 고백/만남,정치 발언으로 Oh-LoRA {EMOJI} (오로라) 에게 경고를 받았습니다. 🚨\n"
        f"동일/유사 발언 반복 시 Oh-LoRA {EMOJI} (오로라) 관련 모든 AI 사용이 일정 기간 차단될 수 있습니다."
    )


def test_block_message_exact() -> None:
    decision = SanctionLadder().decide(["politics"], {"politics": 1})
    assert block_message(decision) == (
        f"⛔ 정치 발언으로 Oh-LoRA {EMOJI} (오로라) 에게 차단되었습니다. ⛔\n"
        f"3일 동안 Oh-LoRA {EMOJI} (오로라) 관련 모든 AI 사용이 불가합니다."
    )


def test_block_message_lists_all_reasons_and_capped_total() -> None:
    decision = SanctionLadder().decide(["paedrip", "love"], {"love": 9, "paedrip": 9})
    assert block_message(decision) == (
        f"⛔ 사랑 고백/만남,패드립 발언으로 Oh-LoRA {EMOJI} (오로라) 에게 차단되었습니다. ⛔\n"
        f"4년 동안 Oh-LoRA {EMOJI} (오로라) 관련 모든 AI 사용이 불가합니다."
    )


def test_message_kind_mismatch_raises() -> None:
    warning = SanctionDecision((SanctionEntry(Category.LOVE, 1, ZERO),), ZERO)
    block = SanctionDecision((SanctionEntry(Category.LOVE, 2, H),), H)
    with pytest.raises(ValueError):
        block_message(warning)
    with pytest.raises(ValueError):
        warning_message(block)


def test_block_notice_exact() -> None:
    notice = block_notice(datetime(2025, 6, 4, 9, 5, 7), ["paedrip", "love"])
    assert notice == (
        f"Oh-LoRA {EMOJI} 가 대화를 거부하였습니다.\n"
        "만료일: 2025.06.04 09:05:07\n"
        f"사유: 오로라 {EMOJI} 에게 사랑 고백/만남 요구, 패드립"
    )


def test_block_notice_single_reason() -> None:
    notice = block_notice(datetime(2026, 12, 31, 23, 59, 59), [Category.POLITICS])
    assert notice.splitlines() == [
        f"Oh-LoRA {EMOJI} 가 대화를 거부하였습니다.",
        "만료일: 2026.12.31 23:59:59",
        "사유: 정치 발언",
    ]
