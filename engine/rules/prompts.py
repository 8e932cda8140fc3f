"""Prompt markers, generation budgets and final-input assembly (reference §1, §2.3).

The markers must match the fine-tuning text byte for byte, so they live here as
named constants instead of being spelled out at each call site.
"""

from __future__ import annotations

# --- role markers (§2.2 / §2.3) -------------------------------------------------
# Start markers carry their leading space: the prompt is ``input + START``.
REPLY_START = " (답변 시작)"
REPLY_END = "(답변 종료)"
SUMMARY_START = " (요약 시작)"  # shared by the summary and the memory roles
SUMMARY_END = "(요약 종료)"
EXPRESSION_START = " (표정 출력 시작)"
EXPRESSION_END = "(표정 출력 종료)"
ANSWER_SEP = " (오로라 답변)"
SUMMARY_PREFIX = "(오로라 답변 요약) "
QUESTION_PREFIX = " (사용자 질문) "
# Completion-only training template; the runtime never appends it to prompts.
RESPONSE_TEMPLATE = "### 답변:"

# --- attempts (§1 steps 5, 7, 8, 9) -------------------------------------------
REPLY_ATTEMPTS = 5
SUMMARY_ATTEMPTS = 3
MEMORY_ATTEMPTS = 5
EXPRESSION_ATTEMPTS = 5

# --- token budgets ----------------------------------------------------------
PROMPT_MAX_TOKENS = 48  # length guard on the tagged user prompt (§1 step 2)
REPLY_MAX_LENGTH = 128  # *total* tokens, prompt included (max_length)
SUMMARY_MAX_NEW_TOKENS = 64
SUMMARY_REJECT_NEW_TOKENS = 60  # a summary with >= this many new tokens is rejected
MEMORY_MAX_NEW_TOKENS = 24  # using all of them means the item was truncated
EXPRESSION_MAX_NEW_TOKENS = 36

# --- temperatures -------------------------------------------------------------
REPLY_BASE_TEMPERATURE = 0.6
REPLY_TEMPERATURE_STEP = 0.1  # added per weekday hallucination seen in this turn
SUMMARY_TEMPERATURE = 0.6
MEMORY_TEMPERATURE = 0.6
EXPRESSION_TEMPERATURE = 1.0

# Reply used when every attempt was rejected ("left on read").
LEFT_ON_READ = "(읽씹)"


def reply_temperature(hallucinations: int) -> float:
    """Sampling temperature for the next reply attempt.

    Each weekday hallucination raises the temperature so that the retry is
    less likely to repeat the same wrong claim.
    """
    if hallucinations < 0:
        raise ValueError("hallucinations must be >= 0")
    return round(REPLY_BASE_TEMPERATURE + REPLY_TEMPERATURE_STEP * hallucinations, 6)


def build_final_input(tagged_prompt: str, memory_item: str | None, summary: str | None) -> str:
    """Assemble the model input for this turn (§1 step 4).

    A retrieved memory item wins and the summary is then *not* used; otherwise a
    non-empty previous-turn summary is prefixed; otherwise the prompt stands alone.
    ``tagged_prompt`` already carries the time tag, so it ends up after the prefix.
    """
    if memory_item:
        return f"{memory_item} {tagged_prompt}"
    if summary and summary.strip():
        return f"{SUMMARY_PREFIX}{summary}{QUESTION_PREFIX}{tagged_prompt}"
    return tagged_prompt


def summary_in(final_input: str | None) -> str | None:
    """The previous summary `build_final_input` put in a final input (its summary form), or
    None (a memory item or nothing was used)."""
    if not final_input or not final_input.startswith(SUMMARY_PREFIX):
        return None
    summary, sep, _question = final_input[len(SUMMARY_PREFIX) :].partition(QUESTION_PREFIX)
    return summary if sep and summary.strip() else None


def reply_prompt(final_input: str) -> str:
    """Prompt for the ``output_message`` role: final input plus the start marker."""
    return final_input + REPLY_START


def memory_prompt(final_input: str) -> str:
    """Prompt for the ``memory`` role; it sees the final input, not the reply."""
    return final_input + SUMMARY_START


def summary_prompt(final_input: str, answer: str) -> str:
    """Prompt for the ``summary`` role, matching ``I (오로라 답변) O (요약 시작)``.

    Our finalised answers carry no leading space (upstream's did), so the single
    space of the training format is inserted here.
    """
    return f"{final_input}{ANSWER_SEP} {answer.strip()}{SUMMARY_START}"


def expression_prompt(answer: str) -> str:
    """Prompt for the ``eyes_mouth_pose`` role, matching ``O (표정 출력 시작)``."""
    return answer.strip() + EXPRESSION_START
