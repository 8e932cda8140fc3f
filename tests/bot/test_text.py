"""Message text rules without a gateway: mentions, splitting, merging."""

from __future__ import annotations

import pytest

from bot.text import merge_texts, prompt_text, split_message

BOT_ID = 111111111111111111
FRIEND = 222222222222222222


def test_the_bots_mention_goes_and_others_become_neutral_placeholders() -> None:
    """Names are whatever their owner typed: neither the ethics check nor the prompt sees them."""
    text = prompt_text(f"<@{BOT_ID}>  안녕 <@!{FRIEND}> 이랑 <#333> 에서 <@&444> 봤어", BOT_ID)
    assert text == "안녕 @친구 이랑 #채널 에서 @역할 봤어"


def test_mass_mentions_cannot_ping_and_unknown_ids_do_not_leak() -> None:
    assert (
        prompt_text("@everyone @here 모여라 <@999999999999999999>", BOT_ID)
        == "everyone here 모여라 @친구"
    )


def test_mention_only_is_empty() -> None:
    assert prompt_text(f"<@{BOT_ID}>  ", BOT_ID) == ""


def test_mention_patterns_are_linear_on_a_flood() -> None:
    from tests.engine.rules.test_sanitize import CLEANING_DEADLINE_S, deadline

    flood = 200_000
    with deadline(CLEANING_DEADLINE_S):
        for text in (
            "<@" + "1" * flood,
            "<@!" * (flood // 3),
            "<#" + "9" * flood,
            "<@&" + "1" * flood + "<@",
            "@" * flood + "everyon",
        ):
            prompt_text(text, BOT_ID)


@pytest.mark.parametrize("length", [0, 1, 2000])
def test_short_text_is_one_piece(length: int) -> None:
    text = "가" * length
    assert split_message(text) == ([text] if text else [])


def test_long_text_is_cut_at_a_space_or_line_break() -> None:
    words = " ".join(["오로라"] * 800)  # 3,199 characters
    pieces = split_message(words)
    assert len(pieces) == 2 and all(len(p) <= 2000 for p in pieces)
    assert " ".join(pieces) == words
    lines = "첫 줄\n" + "나" * 1996 + "\n끝"
    assert split_message(lines) == ["첫 줄\n" + "나" * 1996, "끝"]


def test_text_without_spaces_is_cut_hard_and_nothing_is_lost() -> None:
    text = "ㅋ" * 4500
    pieces = split_message(text)
    assert [len(p) for p in pieces] == [2000, 2000, 500] and "".join(pieces) == text


def test_merged_messages_keep_their_order_and_skip_blanks() -> None:
    assert merge_texts(["안녕", "  ", "오늘 뭐 해?"], 2000) == "안녕 오늘 뭐 해?"


def test_a_merged_burst_is_capped_and_stays_too_long() -> None:
    """A burst over the limit is cut (cleaning it costs what one long message costs), yet is
    still over the limit, so the engine answers it with the too-long notice."""
    merged = merge_texts(["가" * 30_000] * 4, 2000)
    assert 2000 < len(merged) <= 4001
    assert merge_texts(["가" * 1000, "나" * 999], 2000) == "가" * 1000 + " " + "나" * 999
