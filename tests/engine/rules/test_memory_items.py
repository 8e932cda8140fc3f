"""Memory-output normalisation, acceptance and parsing (reference §4.2)."""

import pytest

from engine.rules.memory_items import (
    MemoryItem,
    memory_rejection_reason,
    normalize_memory_output,
    parse_memory_item,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[오늘 일정: 시험]", "[오늘 일정: 시험]"),
        ("(오늘 일정: 시험)", "[오늘 일정: 시험]"),
        ("{a : b}", "[a: b]"),
        ("오늘 일정: 시험", "[오늘 일정: 시험]"),
        ("[a: b] trailing [c: d]", "[a: b]"),
        ("junk [a: b] tail", "[a: b]"),
        ("[상태:힘듦]", "[상태: 힘듦]"),
        ("[상태: 힘듦] (요약 종료)", "[상태: 힘듦]"),
        ("[상태: 힘듦](요약 종료)", "[상태: 힘듦]"),
        (" [오늘\u200b 날씨:\u00a0비] ", "[오늘 날씨: 비]"),
        ("오늘 일정:시험", "[오늘 일정: 시험]"),
        ("", ""),
        ("   ", ""),
        ("(요약 종료)", ""),
        ("그냥 대화", "그냥 대화"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize_memory_output(raw) == expected


@pytest.mark.parametrize("text", ["", " ", "     "])
def test_empty_is_accepted(text: str) -> None:
    assert memory_rejection_reason(text) is None


def test_valid_item_is_accepted() -> None:
    assert memory_rejection_reason("[오늘 일정: 친구랑 카페 방문]") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[상태: 요약 종료]", "end marker fragment"),
        ("[상태: 요약종료]", "end marker fragment"),
        ("[상태: 힘\ufffd듦]", "replacement character"),
        ("[상태:     힘듦]", "space run"),
        ("[링크: https://x.y]", "url"),
        ("상태: 힘듦", "not bracketed"),
        ("[상태: 힘듦", "not bracketed"),
        ("상태: 힘듦]", "not bracketed"),
        ("[상태: 힘듦] 끝", "not bracketed"),
        ("[[상태: 힘듦]", "malformed"),
        ("[상태: 힘듦]]", "malformed"),
        ("[상태: 힘: 듦]", "malformed"),
        ("[상태 힘듦]", "malformed"),
        ("[: 힘듦]", "empty key"),
        ("[  : 힘듦]", "empty key"),
        ("[상태: ]", "empty value"),
        ("[상태:]", "empty value"),
    ],
)
def test_rejections(text: str, reason: str) -> None:
    assert memory_rejection_reason(text) == reason


def test_used_all_tokens_rejects_even_valid_items() -> None:
    assert memory_rejection_reason("[오늘 일정: 시험]", used_all_tokens=True) == "used all tokens"
    assert parse_memory_item("[오늘 일정: 시험]", used_all_tokens=True) is None


@pytest.mark.parametrize(
    ("raw", "key", "value"),
    [
        ("[오늘 일정: 시험]", "오늘 일정", "시험"),
        ("(내일 일정 : 친구랑 영화)", "내일 일정", "친구랑 영화"),
        ("[상태:힘듦] (요약 종료)", "상태", "힘듦"),
        ("좋아하는 꽃: 백합", "좋아하는 꽃", "백합"),
    ],
)
def test_parse_returns_key_and_value(raw: str, key: str, value: str) -> None:
    item = parse_memory_item(raw)
    assert item == MemoryItem(key, value)
    assert item is not None and item.render() == f"[{key}: {value}]"


@pytest.mark.parametrize(
    "raw", ["", "  ", "(요약 종료)", "그냥 대화", "[상태: ]", "[a: b: c]", "[링크: http://a]"]
)
def test_parse_returns_none_for_empty_or_invalid(raw: str) -> None:
    assert parse_memory_item(raw) is None


def test_memory_item_render() -> None:
    assert MemoryItem("좋아하는 꽃", "백합").render() == "[좋아하는 꽃: 백합]"
