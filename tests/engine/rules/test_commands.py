"""`/forget`'s argument, parsed once for the bot and the console."""

from __future__ import annotations

import pytest

from engine.rules.commands import ForgetTarget, parse_forget_target


@pytest.mark.parametrize(
    "typed",
    ["좋아하는 가수", " [좋아하는 가수] ", "[좋아하는 가수: 아이유]", "좋아하는 가수 : 아이유"],
)
def test_an_item_is_named_by_its_key_however_it_is_written(typed: str) -> None:
    assert parse_forget_target(typed) == ForgetTarget(key="좋아하는 가수")


@pytest.mark.parametrize("typed", ["all", "ALL", " [all] "])
def test_all_names_every_item(typed: str) -> None:
    assert parse_forget_target(typed) == ForgetTarget(everything=True)


@pytest.mark.parametrize("typed", ["", "   ", "[]", "[ : 아이유]"])
def test_nothing_named_is_none(typed: str) -> None:
    assert parse_forget_target(typed) is None
