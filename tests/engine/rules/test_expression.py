"""Expression output parsing (reference §6)."""

import pytest

from engine.rules.expression import (
    EYES,
    FALLBACK_EXPRESSION,
    MOUTH,
    POSE,
    Expression,
    parse_expression,
)


def test_vocabularies() -> None:
    assert EYES == ("작게", "보통", "크게", "아주 크게")
    assert MOUTH == ("보통", "크게", "아주 크게")
    assert POSE == ("없음", "보통", "많이")


def test_render_and_fallback() -> None:
    assert (
        Expression("크게", "아주 크게", "많이").render()
        == "(눈 크게, 입 아주 크게, 고개 돌림 많이)"
    )
    assert Expression("보통", "보통", "없음") == FALLBACK_EXPRESSION


@pytest.mark.parametrize("eyes", EYES)
@pytest.mark.parametrize("mouth", MOUTH)
@pytest.mark.parametrize("pose", POSE)
def test_round_trip_every_combination(eyes: str, mouth: str, pose: str) -> None:
    expression = Expression(eyes, mouth, pose)
    assert parse_expression(expression.render()) == expression


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("😊 (눈 보통, 입 크게, 고개 돌림 없음) ㅋㅋ", Expression("보통", "크게", "없음")),
        (
            "(눈 아주 크게, 입 아주 크게, 고개 돌림 많이)(표정 출력 종료)",
            Expression("아주 크게", "아주 크게", "많이"),
        ),
        ("(눈 크게요, 입 보통!, 고개 돌림 보통)", Expression("크게", "보통", "보통")),
        ("눈 작게, 입 보통, 고개 돌림 없음", Expression("작게", "보통", "없음")),
        ("(눈 보통)(입 보통)(고개 돌림 없음)", Expression("보통", "보통", "없음")),
    ],
)
def test_parse_tolerates_junk(text: str, expected: Expression) -> None:
    assert parse_expression(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "(눈 (또는 입, …",
        "(눈 (또는 입, 입 보통, 고개 돌림 없음)",
        "",
        "표정 없음",
        "(눈 초롱초롱, 입 보통, 고개 돌림 없음)",  # eyes invalid
        "(눈 보통, 입 작게, 고개 돌림 없음)",  # mouth invalid ("작게" is eyes-only)
        "(눈 보통, 입 보통, 고개 돌림 조금)",  # pose invalid
        "(눈 보통, 입 보통)",  # pose missing
        "(입 보통, 고개 돌림 없음)",  # eyes missing
        "(눈 보통, 고개 돌림 없음)",  # mouth missing
        "(눈 아주, 입 보통, 고개 돌림 없음)",  # truncated 아주 크게
        "(눈  보통, 입 보통, 고개 돌림 없음)",  # piece must start with the word
    ],
)
def test_parse_rejects(text: str) -> None:
    assert parse_expression(text) is None
