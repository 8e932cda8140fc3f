"""Time tag and weekday-hallucination rules (reference §7)."""

from datetime import datetime

import pytest

from engine.rules.timetag import (
    AFTERNOON,
    EVENING,
    MORNING,
    TIME_TAG_PATTERN,
    TIME_WORDS,
    WEEKDAYS,
    TimeOfDay,
    add_time_tag,
    has_weekday_hallucination,
    time_of_day,
    time_tag_of,
)

# 2025-06-02 is a Monday; DAY[c] is a date in that week falling on weekday c.
DAY = {c: 2 + i for i, c in enumerate(WEEKDAYS)}


def at(weekday: str, hour: int, minute: int = 0) -> datetime:
    """Local wall time on the given weekday of the reference week."""
    return datetime(2025, 6, DAY[weekday], hour, minute)


def test_reference_week_is_monday_based() -> None:
    assert [at(c, 12).weekday() for c in WEEKDAYS] == list(range(7))
    assert WEEKDAYS == "월화수목금토일"
    assert TIME_WORDS == ("오늘", "내일", "지금", "요일", "이따", "휴일")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at("수", 3, 59), TimeOfDay("화", "저녁")),
        (at("수", 4, 0), TimeOfDay("수", "오전")),
        (at("수", 0, 0), TimeOfDay("화", "저녁")),
        (at("수", 11, 59), TimeOfDay("수", "오전")),
        (at("수", 12, 0), TimeOfDay("수", "오후")),
        (at("금", 16, 59), TimeOfDay("금", "오후")),
        (at("금", 17, 0), TimeOfDay("금", "저녁")),
        (at("목", 17, 0), TimeOfDay("목", "오후")),
        (at("목", 17, 59), TimeOfDay("목", "오후")),
        (at("목", 18, 0), TimeOfDay("목", "저녁")),
        (at("토", 17, 30), TimeOfDay("토", "오후")),
        (at("토", 18, 0), TimeOfDay("토", "저녁")),
        (at("토", 2, 0), TimeOfDay("금", "저녁")),
        (at("월", 1, 0), TimeOfDay("일", "저녁")),
        (at("일", 23, 59), TimeOfDay("일", "저녁")),
    ],
)
def test_time_of_day_boundaries(now: datetime, expected: TimeOfDay) -> None:
    assert time_of_day(now) == expected


@pytest.mark.parametrize(
    ("now", "tag"),
    [
        (at("수", 3, 59), "(지금은 화요일 저녁) "),
        (at("수", 4, 0), "(지금은 수요일 오전) "),
        (at("수", 11, 59), "(지금은 수요일 오전) "),
        (at("수", 12, 0), "(지금은 수요일 오후) "),
        (at("금", 16, 59), "(지금은 금요일 오후) "),
        (at("금", 17, 0), "(지금은 금요일 저녁) "),
        (at("화", 17, 59), "(지금은 화요일 오후) "),
        (at("화", 18, 0), "(지금은 화요일 저녁) "),
        (at("토", 2, 0), "(지금은 금요일 저녁) "),
        (at("월", 1, 0), "(지금은 일요일 저녁) "),
    ],
)
def test_add_time_tag_boundaries(now: datetime, tag: str) -> None:
    text = "오늘 뭐 해?"
    assert add_time_tag(text, now) == tag + text


@pytest.mark.parametrize(
    "text",
    [
        "오늘도 힘들다",
        "내일 시험이야",
        "지금은 뭐 해?",
        "월요일에 만나",
        "이따 봐",
        "휴일이 좋아",
        "너 지금 어디야",
    ],
)
def test_each_time_word_triggers_as_substring(text: str) -> None:
    assert add_time_tag(text, at("수", 13)) == "(지금은 수요일 오후) " + text


@pytest.mark.parametrize("text", ["너는 누구야?", "밥 먹었어?", "", "요 일단 해볼게", "오 늘 좋다"])
def test_text_without_time_word_is_unchanged(text: str) -> None:
    assert add_time_tag(text, at("수", 13)) == text


@pytest.mark.parametrize("weekday", list(WEEKDAYS))
@pytest.mark.parametrize("hour", [10, 14, 20])
def test_a_written_tag_reads_back(weekday: str, hour: int) -> None:
    """Every tag `add_time_tag` writes is found again, with its weekday and part of day."""
    now = at(weekday, hour)
    tagged = add_time_tag("오늘 뭐 해?", now)
    tod = time_of_day(now)
    assert time_tag_of(tagged) == tagged.removesuffix(" 오늘 뭐 해?")
    found = TIME_TAG_PATTERN.search("요약 " + tagged)
    assert found is not None and (found.group(1), found.group(2)) == (tod.weekday, tod.part)
    assert tod.part in (MORNING, AFTERNOON, EVENING)


@pytest.mark.parametrize(
    "text", [None, "", "오늘 뭐 해?", "(지금은 수요일 밤) 오늘", "오늘 (지금은 수요일 오후) 뭐 해?"]
)
def test_text_not_starting_with_a_tag_has_none(text: str | None) -> None:
    assert time_tag_of(text) is None


# ---------------------------------------------------------------- hallucination
# (phrase, weekdays on which it is correct)
PHRASE_RULES = [
    ("내일 주말이야", "목금토"),
    ("내일은 주말이야", "목금토"),
    ("오늘 주말이라 좋아", "금토일"),
    ("오늘은 주말이라 좋아", "금토일"),
    ("내일부터 주말이야!", "목금"),
    ("오늘부터 주말이야!", "금토"),
    ("내일 불금이다", "목"),
    ("내일은 불금이다", "목"),
    ("오늘 불금이다", "금"),
    ("오늘은 불금이다", "금"),
    ("내일부터 한 주 시작이네", "토일"),
    ("오늘부터 한 주 시작이네", "일월"),
]


@pytest.mark.parametrize(("phrase", "valid_days"), PHRASE_RULES)
@pytest.mark.parametrize("weekday", list(WEEKDAYS))
def test_weekend_phrase_rules(phrase: str, valid_days: str, weekday: str) -> None:
    expected = weekday not in valid_days
    assert has_weekday_hallucination(phrase, at(weekday, 13)) is expected


@pytest.mark.parametrize("form", ["오늘 {}요일", "오늘은 {}요일", "오늘도 {}요일"])
@pytest.mark.parametrize("today", list(WEEKDAYS))
@pytest.mark.parametrize("said", list(WEEKDAYS))
def test_today_weekday_claims(form: str, today: str, said: str) -> None:
    answer = form.format(said) + "이야!"
    assert has_weekday_hallucination(answer, at(today, 10)) is (said != today)


@pytest.mark.parametrize("form", ["내일 {}요일", "내일은 {}요일", "내일도 {}요일"])
@pytest.mark.parametrize("today", list(WEEKDAYS))
@pytest.mark.parametrize("said", list(WEEKDAYS))
def test_tomorrow_weekday_claims(form: str, today: str, said: str) -> None:
    tomorrow = WEEKDAYS[(WEEKDAYS.index(today) + 1) % 7]
    answer = "음… " + form.format(said) + "이네"
    assert has_weekday_hallucination(answer, at(today, 10)) is (said != tomorrow)


def test_tomorrow_wraps_from_sunday_to_monday() -> None:
    assert has_weekday_hallucination("내일은 월요일이야", at("일", 20)) is False
    assert has_weekday_hallucination("내일은 화요일이야", at("일", 20)) is True


def test_check_uses_four_am_shift() -> None:
    # Saturday 02:00 still counts as Friday evening.
    sat_2am = at("토", 2)
    assert has_weekday_hallucination("오늘은 금요일이야", sat_2am) is False
    assert has_weekday_hallucination("오늘은 토요일이야", sat_2am) is True
    assert has_weekday_hallucination("오늘 불금이다", sat_2am) is False
    assert has_weekday_hallucination("내일은 토요일이야", sat_2am) is False
    # From 04:00 it is Saturday.
    sat_4am = at("토", 4)
    assert has_weekday_hallucination("오늘은 토요일이야", sat_4am) is False
    assert has_weekday_hallucination("오늘 불금이다", sat_4am) is True


def test_neutral_answers_pass() -> None:
    for weekday in WEEKDAYS:
        assert has_weekday_hallucination("오늘 날씨 좋다! 요일은 상관없어", at(weekday, 9)) is False
