"""The Korean strings of regenerate (🔄), ratings (👍 / 👎), "왜 이렇게 답했어?" and the data
export, shared by the bot and the console.

Torch-free and storage-free: `explanation_lines` takes anything shaped like
`engine.feedback.Explanation`; outcomes are looked up by their string values (the enum lives
in `engine.feedback`, which this layer may not import).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Protocol

from engine.rules.sanctions import EXPIRY_FORMAT, OHLORA_EMOJI

# ---- the controls under her reply ---------------------------------------------------------
REGENERATE_LABEL = "🔄"
RATE_UP_LABEL = "👍"
RATE_DOWN_LABEL = "👎"
WHY_MENU_NAME = "왜 이렇게 답했어?"  # the message context menu (at most 32 characters)

# ---- regenerate -----------------------------------------------------------------------------
REGENERATE_NOT_YOURS = "다른 사람에게 한 답변은 다시 만들 수 없어요. 🙅"
# RegenerateOutcome value -> what the user is told (DONE shows the new reply instead).
REGENERATE_REFUSALS: dict[str, str] = {
    "not_found": "이 답변을 찾을 수 없어요. 이미 지워졌을 수 있어요.",
    "not_yours": REGENERATE_NOT_YOURS,
    "not_latest": "가장 최근 답변만 다시 만들 수 있어요. 🔄",
    "not_answered": "이 메시지는 다시 만들 수 있는 답변이 아니에요.",
    "limit": "이 답변은 더 이상 다시 만들 수 없어요. 새로 말을 걸어 주세요! 😊",
    "banned": f"지금은 차단되어 있어서 오로라 {OHLORA_EMOJI} 가 답할 수 없어요.",
    "unchanged": f"오로라 {OHLORA_EMOJI} 가 다른 답을 떠올리지 못했어요. 😅 잠시 후에 다시 해 주세요.",
    "failed": f"미안해요, 지금은 오로라 {OHLORA_EMOJI} 가 다시 답하기 어려워요. 잠시 후에 다시 해 주세요! 🙏",
}
REGENERATE_UNKNOWN = "다시 만들 수 없어요."


def regenerate_refused(outcome: str) -> str:
    """The answer to a regenerate that did not give a new reply."""
    return REGENERATE_REFUSALS.get(str(outcome), REGENERATE_UNKNOWN)


def regenerated_footer(draw: int) -> str:
    """Under a regenerated reply: which draw it is (draw 0 is the first reply)."""
    return f"🔄 {draw + 1}번째 답변"


# ---- ratings ----------------------------------------------------------------------------------
RATED_UP = "좋은 답변이라고 알려 주셔서 고마워요! 👍 오로라가 더 잘 배울게요."
RATED_DOWN = "알려 주셔서 고마워요. 👎 다음에는 더 좋은 답을 해 볼게요."
RATE_NOT_YOURS = "다른 사람에게 한 답변은 평가할 수 없어요. 🙅"


def rated(up: bool) -> str:
    return RATED_UP if up else RATED_DOWN


# ---- why this reply -----------------------------------------------------------------------------
EXPLAIN_NOT_YOURS = "이 답변은 다른 사람에게 한 답변이라 이유를 보여 드릴 수 없어요. 🙅"
EXPLAIN_NOT_HERS = f"오로라 {OHLORA_EMOJI} 의 답변에만 쓸 수 있어요."
EXPLAIN_TITLE = f"**오로라 {OHLORA_EMOJI} 가 이렇게 답한 이유**"
NO_TIME_TAG = "없음 (시간에 관한 말이 없었어요)"
NOTHING_USED = "기억이나 이전 대화 요약 없이 답했어요."
SCORE_DIGITS = 3
TIMING_DIGITS = 2


class ExplanationLike(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def time_tag(self) -> str | None: ...
    @property
    def memory_used(self) -> str | None: ...
    @property
    def summary_used(self) -> str | None: ...
    @property
    def ethics_scores(self) -> Mapping[str, float] | None: ...
    @property
    def timings(self) -> Mapping[str, float] | None: ...
    @property
    def draws(self) -> int: ...


def _pairs(values: Mapping[str, float], digits: int, unit: str = "") -> str:
    return " · ".join(f"{k} {v:.{digits}f}{unit}" for k, v in values.items()) or "없음"


def explanation_lines(e: ExplanationLike, tz: tzinfo) -> str:
    """The context menu's private answer; the admin lines only when the explanation has them."""
    lines = [
        EXPLAIN_TITLE,
        f"• 말한 때: {e.created_at.astimezone(tz).strftime(EXPIRY_FORMAT)}",
        f"• 시간 태그: {e.time_tag or NO_TIME_TAG}",
    ]
    if e.memory_used:
        lines.append(f"• 참고한 기억: {e.memory_used}")
    elif e.summary_used:
        lines.append(f"• 참고한 이전 대화 요약: {e.summary_used}")
    else:
        lines.append(f"• {NOTHING_USED}")
    if e.draws > 1:
        lines.append(f"• 🔄 다시 만든 답변이에요 ({e.draws}번째 답변)")
    if e.ethics_scores is not None:
        lines.append(f"• 윤리 점수 (관리자): {_pairs(e.ethics_scores, SCORE_DIGITS)}")
    if e.timings is not None:
        lines.append(f"• 단계별 시간 (관리자): {_pairs(e.timings, TIMING_DIGITS, '초')}")
    return "\n".join(lines)


# ---- export my data ------------------------------------------------------------------------------
EXPORT_FILENAME = "ohlora-my-data.json"
EXPORT_CAPTION = (
    f"오로라 {OHLORA_EMOJI} 가 저장한 나에 대한 데이터예요: 기억과 그 변경 기록, 대화 요약, "
    "대화 기록, 답변 평가, 경고·차단과 나에 대한 관리자 조치. "
    "다른 사람의 정보는 들어 있지 않아요 (관리자는 'moderator'로 표시돼요)."
)
EXPORT_TOO_LARGE = "데이터가 너무 커서 파일로 보낼 수 없어요. 관리자에게 문의해 주세요."
CONSOLE_EXPORTED = "내 데이터를 {path} 에 저장했어요."
CONSOLE_NO_TURN = "아직 오로라의 답변이 없어요."


def console_exported(path: str) -> str:
    return CONSOLE_EXPORTED.format(path=path)
