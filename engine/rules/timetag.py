"""Current-time tag and day-of-week hallucination check (reference §7).

The model was trained with ``(지금은 X요일 오전|오후|저녁) `` tags, so the tag
rules must reproduce upstream exactly, including the 4 a.m. day shift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

# Substrings of the raw user text that make the time relevant (요일 covers every day name).
TIME_WORDS: tuple[str, ...] = ("오늘", "내일", "지금", "요일", "이따", "휴일")
# Indexed by ``datetime.weekday()`` (Monday = 0).
WEEKDAYS = "월화수목금토일"

MORNING, AFTERNOON, EVENING = "오전", "오후", "저녁"
# Hours before this belong to the previous day's evening.
DAY_SHIFT_HOUR = 4
NOON_HOUR = 12
FRIDAY_EVENING_HOUR = 17  # Friday evening starts an hour earlier
EVENING_HOUR = 18
FRIDAY = "금"

TIME_TAG_TEMPLATE = "(지금은 {weekday}요일 {part}) "


def _time_tag_pattern() -> re.Pattern[str]:
    """`TIME_TAG_TEMPLATE` (without its trailing space) as a regex: group 1 the weekday,
    group 2 the part of day."""
    head, rest = TIME_TAG_TEMPLATE.rstrip().split("{weekday}")
    middle, tail = rest.split("{part}")
    return re.compile(
        re.escape(head)
        + f"([{WEEKDAYS}])"
        + re.escape(middle)
        + f"({MORNING}|{AFTERNOON}|{EVENING})"
        + re.escape(tail)
    )


# A time tag as `add_time_tag` writes it, for reading one back.
TIME_TAG_PATTERN = _time_tag_pattern()


@dataclass(frozen=True)
class TimeOfDay:
    """Shifted weekday (one of WEEKDAYS) and part of day (오전/오후/저녁)."""

    weekday: str
    part: str


def time_of_day(now: datetime) -> TimeOfDay:
    """Classify local wall time ``now`` the way upstream's ``add_time_info`` does.

    00:00-03:59 counts as the previous day's evening; the Friday rule is
    applied to the weekday *after* that shift.
    """
    if now.hour < DAY_SHIFT_HOUR:
        return TimeOfDay(WEEKDAYS[(now - timedelta(days=1)).weekday()], EVENING)
    weekday = WEEKDAYS[now.weekday()]
    if now.hour < NOON_HOUR:
        part = MORNING
    elif now.hour < (FRIDAY_EVENING_HOUR if weekday == FRIDAY else EVENING_HOUR):
        part = AFTERNOON
    else:
        part = EVENING
    return TimeOfDay(weekday, part)


def add_time_tag(text: str, now: datetime) -> str:
    """Prefix the time tag when ``text`` mentions time; otherwise return it unchanged.

    ``now`` is local wall time. Matching is a plain substring test, as upstream.
    """
    if not any(word in text for word in TIME_WORDS):
        return text
    tod = time_of_day(now)
    return TIME_TAG_TEMPLATE.format(weekday=tod.weekday, part=tod.part) + text


def time_tag_of(tagged_prompt: str | None) -> str | None:
    """The time tag `add_time_tag` put before a prompt (`(지금은 수요일 오후)`), or None."""
    found = TIME_TAG_PATTERN.match(tagged_prompt or "")
    return found.group(0) if found else None


# (phrases, weekdays on which the phrase is true). A phrase said on any other
# (shifted) weekday is a hallucination.
_PHRASE_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("내일 주말", "내일은 주말"), "목금토"),
    (("오늘 주말", "오늘은 주말"), "금토일"),
    (("내일부터 주말이",), "목금"),
    (("오늘부터 주말이",), "금토"),
    (("내일 불금", "내일은 불금"), "목"),
    (("오늘 불금", "오늘은 불금"), "금"),
    (("내일부터 한 주 시작",), "토일"),
    (("오늘부터 한 주 시작",), "일월"),
)
_TODAY_FORMS = ("오늘 {}요일", "오늘은 {}요일", "오늘도 {}요일")
_TOMORROW_FORMS = ("내일 {}요일", "내일은 {}요일", "내일도 {}요일")


def has_weekday_hallucination(answer: str, now: datetime) -> bool:
    """True if ``answer`` makes a day-of-week claim that is wrong at ``now``.

    Uses the same shifted weekday as the time tag, so at 02:00 on Saturday
    "오늘은 금요일" is accepted.
    """
    today = time_of_day(now).weekday
    index = WEEKDAYS.index(today)
    tomorrow = WEEKDAYS[(index + 1) % len(WEEKDAYS)]

    for phrases, valid_days in _PHRASE_RULES:
        if today not in valid_days and any(p in answer for p in phrases):
            return True
    for day in WEEKDAYS:
        if day != today and any(form.format(day) in answer for form in _TODAY_FORMS):
            return True
        if day != tomorrow and any(form.format(day) in answer for form in _TOMORROW_FORMS):
            return True
    return False
