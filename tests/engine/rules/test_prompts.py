"""Prompt markers, budgets and final-input assembly (reference §1, §2)."""

import pytest

from engine.rules import prompts
from engine.rules.prompts import (
    ANSWER_SEP,
    EXPRESSION_END,
    EXPRESSION_START,
    LEFT_ON_READ,
    QUESTION_PREFIX,
    REPLY_END,
    REPLY_START,
    RESPONSE_TEMPLATE,
    SUMMARY_END,
    SUMMARY_PREFIX,
    SUMMARY_START,
    build_final_input,
    expression_prompt,
    memory_prompt,
    reply_prompt,
    reply_temperature,
    summary_prompt,
)

PROMPT = "(지금은 수요일 오후) 아 오늘 약속 있는데 어떡하지?"


def test_markers_exact() -> None:
    assert REPLY_START == " (답변 시작)"
    assert REPLY_END == "(답변 종료)"
    assert SUMMARY_START == " (요약 시작)"
    assert SUMMARY_END == "(요약 종료)"
    assert EXPRESSION_START == " (표정 출력 시작)"
    assert EXPRESSION_END == "(표정 출력 종료)"
    assert ANSWER_SEP == " (오로라 답변)"
    assert SUMMARY_PREFIX == "(오로라 답변 요약) "
    assert QUESTION_PREFIX == " (사용자 질문) "
    assert RESPONSE_TEMPLATE == "### 답변:"
    assert LEFT_ON_READ == "(읽씹)"


def test_budgets_and_attempts() -> None:
    assert (prompts.REPLY_ATTEMPTS, prompts.SUMMARY_ATTEMPTS) == (5, 3)
    assert (prompts.MEMORY_ATTEMPTS, prompts.EXPRESSION_ATTEMPTS) == (5, 5)
    assert prompts.REPLY_MAX_LENGTH == 128
    assert prompts.SUMMARY_MAX_NEW_TOKENS == 64
    assert prompts.SUMMARY_REJECT_NEW_TOKENS == 60
    assert prompts.MEMORY_MAX_NEW_TOKENS == 24
    assert prompts.EXPRESSION_MAX_NEW_TOKENS == 36
    assert prompts.PROMPT_MAX_TOKENS == 48
    assert prompts.EXPRESSION_TEMPERATURE == 1.0
    assert prompts.SUMMARY_TEMPERATURE == prompts.MEMORY_TEMPERATURE == 0.6


@pytest.mark.parametrize(("n", "temp"), [(0, 0.6), (1, 0.7), (2, 0.8), (4, 1.0)])
def test_reply_temperature(n: int, temp: float) -> None:
    assert reply_temperature(n) == pytest.approx(temp)


def test_reply_temperature_rejects_negative() -> None:
    with pytest.raises(ValueError):
        reply_temperature(-1)


def test_final_input_memory_wins_over_summary() -> None:
    result = build_final_input(PROMPT, "[오늘 날씨: 비]", "오로라와 약속 이야기")
    assert result == "[오늘 날씨: 비] (지금은 수요일 오후) 아 오늘 약속 있는데 어떡하지?"


def test_final_input_summary_form() -> None:
    result = build_final_input(PROMPT, None, "오로라 자기소개")
    assert (
        result
        == "(오로라 답변 요약) 오로라 자기소개 (사용자 질문) (지금은 수요일 오후) 아 오늘 약속 있는데 어떡하지?"
    )


@pytest.mark.parametrize(("memory", "summary"), [(None, None), (None, ""), ("", ""), (None, "   ")])
def test_final_input_prompt_alone(memory: str | None, summary: str | None) -> None:
    assert build_final_input("너는 누구야?", memory, summary) == "너는 누구야?"


def test_role_prompts_match_training_format() -> None:
    final_input = "너는 누구야?"
    answer = "난 오로라야! 가상 인간이지!😊"
    assert reply_prompt(final_input) == "너는 누구야? (답변 시작)"
    assert memory_prompt(final_input) == "너는 누구야? (요약 시작)"
    assert (
        summary_prompt(final_input, answer)
        == "너는 누구야? (오로라 답변) 난 오로라야! 가상 인간이지!😊 (요약 시작)"
    )
    assert expression_prompt(answer) == "난 오로라야! 가상 인간이지!😊 (표정 출력 시작)"
