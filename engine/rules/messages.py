"""What Oh-LoRA's service says outside her own replies: one catalogue of the Korean strings
and listings every front end shows (the bot and the console give the same answers).

Torch-free and storage-free: listings take plain values or anything shaped like the
repository's records (the Protocols below).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

from engine.rules.commands import ForgetTarget
from engine.rules.sanctions import EXPIRY_FORMAT, OHLORA_EMOJI, Category, format_period

# One answer fits one Discord message without Nitro; the console shows the same text.
MAX_ANSWER_CHARS = 2000
MAX_LIST_LINES = 25  # rows per listing (my status)
SYSTEM_ACTOR = "system"  # the audit log's actor for what the service did by itself

# ---- turns -------------------------------------------------------------------------------
# Upstream's length-guard message (§1 step 2), without the console's "[SYSTEM MESSAGE]" tag.
TOO_LONG = (
    f"너무 긴 질문은 오로라{OHLORA_EMOJI} 에게 부담 돼요! "
    "그런 질문은 오로라의 절친 혜나 🌹 (LLM Hyena) 에게 해 주세요! 😢"
)
EMPTY = f"오로라 {OHLORA_EMOJI} 에게 하고 싶은 말을 글로 적어 주세요! 😊"
APOLOGY = (
    f"미안해요, 지금은 오로라 {OHLORA_EMOJI} 가 대답하기 어려워요. "
    "잠시 후에 다시 말을 걸어 주세요! 🙏"
)
GOODBYE = f"오로라와의 대화가 끝났습니다. {OHLORA_EMOJI}👋 다음에도 오로라와 함께해 주실 거죠?"
ATTACHMENTS_ONLY = (
    f"사진이나 파일은 아직 오로라 {OHLORA_EMOJI} 가 볼 수 없어요. 글로 말해 주세요! 😊"
)
STICKER_ONLY = f"스티커도 귀엽지만, 오로라 {OHLORA_EMOJI} 는 글로 된 말을 더 잘 알아들어요! 😊"
RATE_LIMITED = (
    f"조금만 천천히 말해 주세요! 오로라 {OHLORA_EMOJI} 가 따라가기 벅차요. 😅 "
    "1분쯤 뒤에 다시 말을 걸어 주세요."
)

# ---- help --------------------------------------------------------------------------------
HELP = (
    f"**오로라 {OHLORA_EMOJI} 와 대화하는 법**\n"
    "• DM으로 말을 걸거나, 서버에서는 오로라를 멘션하거나 오로라의 메시지에 답장해 주세요.\n"
    "• 오로라는 대화에서 알게 된 것(일정, 좋아하는 것 등)을 기억해요.\n"
    "**명령어**\n"
    "`/memory` 오로라가 기억하는 나에 대한 것 보기\n"
    "`/forget` 기억 하나 또는 전부(all) 지우기\n"
    "`/reset` 이 채널의 대화 요약 지우기\n"
    "`/mystatus` 내 경고와 차단, 만료 시각\n"
    "`/forget-me` 나에 대한 기억과 대화 기록 모두 지우기 (경고·차단 기록은 남아요)\n"
    "사랑 고백/만남 요구, 정치 발언, 패드립은 경고나 차단을 받을 수 있어요."
)
CONSOLE_HELP = (
    "명령어: /memory (기억 보기), /forget [항목|all] (기억 지우기), "
    "/reset (대화 요약 지우기), /mystatus (내 경고와 차단), "
    "/forget-me (기억과 대화 기록 모두 지우기), /quit (끝내기)"
)
CONSOLE_GREETING = f"오로라 {OHLORA_EMOJI} 와 대화를 시작합니다. {CONSOLE_HELP}"
CONSOLE_PROMPT = "👤 나 : "
CONSOLE_SPEAKER = f"{OHLORA_EMOJI} 오로라 : "
CONSOLE_SYSTEM = "[SYSTEM] "

# ---- commands everyone has ---------------------------------------------------------------
NOTHING_REMEMBERED = "아직 기억하고 있는 것이 없어요."
FORGET_USAGE = "사용법: /forget 항목이름  또는  /forget all"
RESET_DONE = "이 채널의 대화 요약을 지웠어요. 새로 시작해요! 😊"
CANCELLED = "취소했어요. 아무것도 지우지 않았어요."
NOT_YOURS = "이 버튼은 명령어를 쓴 사람만 누를 수 있어요."
FORGET_ME_QUESTION = (
    "오로라가 기억하는 것과 대화 기록을 모두 지울까요? (경고·차단 기록은 지워지지 않아요)"
)
NO_SANCTIONS = "경고나 차단 기록이 없어요. 😊"
REFUSED = "이 명령어는 관리자만 쓸 수 있어요. 아무것도 바뀌지 않았어요."
COMMAND_FAILED = "명령어를 처리하지 못했어요. 잠시 후에 다시 해 주세요. 🙏"

# ---- moderators --------------------------------------------------------------------------
NOT_ON_YOURSELF = (
    "자기 자신의 차단은 풀 수 없어요. 다른 관리자에게 부탁해 주세요. 아무것도 바뀌지 않았어요."
)
LIFTED = "{name} 의 차단 {count}건을 해제했어요."
STILL_BLOCKED_ELSEWHERE = "다른 곳에서 받은 차단이 남아 있어요."
NOTHING_DECIDED_HERE = "{name} 은(는) 이 서버에서 받은 차단이 없어요."
ONLY_GLOBAL_ADMINS = "다른 곳에서 받은 차단은 그곳의 관리자나 전역 관리자만 풀 수 있어요."
NOT_BLOCKED = "{name} 은(는) 차단 중이 아니에요."
AUDITED = " (감사 기록에 남겼어요)"
NO_MORE = "더 없음"
NONE_YET = "없음"
IN_DM = "DM"
HISTORY_TITLE = "**{name}** 의 기록"
LOG_TITLE = "**제재 기록**"
LOG_DECISIONS = "**최근 제재**"
LOG_ACTIONS = "**관리자 조치**"


def unknown_server(guild_id: str) -> str:
    return f"서버 {guild_id}"


def page_title(header: str, index: int) -> str:
    """A listing's header, with the page number from the second page on."""
    return header + (f" · {index + 1}쪽" if index else "")


def unban_answer(name: str, *, lifted: int, still_blocked: bool) -> str:
    """What a moderator's `/unban` did: lifted some (others may remain), lifted nothing of
    theirs while a block made elsewhere remains, or there was nothing to lift."""
    if lifted:
        text = LIFTED.format(name=name, count=lifted)
        return text + (f" {STILL_BLOCKED_ELSEWHERE}" if still_blocked else "")
    if still_blocked:
        return f"{NOTHING_DECIDED_HERE.format(name=name)} {ONLY_GLOBAL_ADMINS}{AUDITED}"
    return NOT_BLOCKED.format(name=name) + AUDITED


# ---- /forget, /forget-me -------------------------------------------------------------------
def forget_missing(key: str) -> str:
    return f"[{key}] 이라는 기억은 없어요. `/memory` 로 확인해 주세요."


def forget_question(target: ForgetTarget, count: int) -> str:
    """Asked before anything is deleted (the bot's confirmation)."""
    if target.everything:
        return f"기억 {count}개를 모두 지울까요? (경고·차단 기록은 지워지지 않아요)"
    return f"[{target.key}] 기억을 지울까요?"


def forget_done(target: ForgetTarget, removed: int) -> str:
    """After the deletion: how many items went, or that the item was already gone."""
    if target.everything:
        return f"기억 {removed}개를 지웠어요."
    return f"[{target.key}] 기억을 지웠어요." if removed else f"[{target.key}] 기억은 이미 없어요."


class DeletionLike(Protocol):
    @property
    def memories(self) -> int: ...
    @property
    def turns(self) -> int: ...
    @property
    def conversations(self) -> int: ...


def forget_me_done(report: DeletionLike) -> str:
    return (
        f"지웠어요: 기억 {report.memories}개, 대화 {report.turns}개, "
        f"요약 {report.conversations}개. 경고·차단 기록은 남아 있어요."
    )


# ---- listings ------------------------------------------------------------------------------
class MemoryLike(Protocol):
    def render(self) -> str: ...


class SanctionLike(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def block(self) -> timedelta: ...
    @property
    def is_block(self) -> bool: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def lifted_at(self) -> datetime | None: ...
    @property
    def lift_reason(self) -> str | None: ...


class AuditLike(Protocol):
    @property
    def at(self) -> datetime: ...
    @property
    def actor_id(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def target_user_id(self) -> str | None: ...
    @property
    def detail(self) -> str: ...


def _when(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime(EXPIRY_FORMAT)


def category_label(value: str) -> str:
    try:
        return Category(value).label
    except ValueError:
        return value


def sanction_state(record: SanctionLike, now: datetime) -> str:
    if record.lifted_at is not None:
        return "해제됨"
    if record.expires_at <= now:
        return "만료"
    return "차단 중" if record.is_block else "경고 유효"


def sanction_line(
    record: SanctionLike,
    tz: tzinfo,
    now: datetime,
    *,
    with_user: bool = False,
    where: str | None = None,
) -> str:
    """`⛔ 정치 2단계 · 3일 차단 · 만료 2026.11.28 14:00:00 (차단 중)`; `where` (for the global
    admins, who see every server's decisions) names the server it was decided in, or DM."""
    icon = "⛔" if record.is_block else "⚠️"
    what = f"{format_period(record.block)} 차단" if record.is_block else "경고"
    who = f"<@{record.user_id}> " if with_user else ""
    place = f" · {where}" if where else ""
    line = (
        f"{icon} {who}{category_label(record.category)} {record.level}단계 · {what} · "
        f"만료 {_when(record.expires_at, tz)} ({sanction_state(record, now)}){place}"
    )
    if record.lifted_at is not None:
        line += f" · 해제 {_when(record.lifted_at, tz)}: {record.lift_reason or ''}"
    return line


def audit_line(entry: AuditLike, tz: tzinfo, *, where: str | None = None) -> str:
    target = f" → <@{entry.target_user_id}>" if entry.target_user_id else ""
    actor = "시스템" if entry.actor_id == SYSTEM_ACTOR else f"<@{entry.actor_id}>"
    detail = f" ({entry.detail})" if entry.detail else ""
    place = f" · {where}" if where else ""
    return f"📝 {_when(entry.at, tz)} {actor} {entry.action}{target}{detail}{place}"


def memory_lines(
    items: Sequence[MemoryLike],
    *,
    cap: int,
    evicted: int = 0,
    budget: int = MAX_ANSWER_CHARS,
) -> str:
    """`/memory`: the cap and what it made Oh-LoRA forget first (so a long list cut at the
    message limit still says it), then the items that fit, with how many more there are."""
    head = [
        f"기억은 최대 {cap}개까지예요. 꽉 차면 가장 오래 안 쓴 기억부터 잊혀요. "
        f"(지금 {len(items)}개)"
    ]
    if evicted:
        head.append(f"자리가 모자라서 오래 안 쓴 기억 {evicted}개를 잊었어요.")
    if not items:
        return "\n".join([NOTHING_REMEMBERED, *head[1:]])
    lines = [f"• {m.render()}" for m in items]
    more = f"… 외 {len(lines)}개"  # the longest the "more" line can be
    shown = fitting(lines, budget - len("\n".join(head)) - len(more) - 2)
    rest = [f"… 외 {len(lines) - len(shown)}개"] if len(shown) < len(lines) else []
    return "\n".join([*head, *shown, *rest])


def fitting(lines: Sequence[str], budget: int) -> list[str]:
    """The leading lines that fit in `budget` characters joined by newlines (at least one,
    clipped if it alone is too long), so a page never loses rows to the message limit."""
    shown: list[str] = []
    used = 0
    for line in lines:
        cost = len(line) + (1 if shown else 0)
        if used + cost > budget:
            break
        shown.append(line)
        used += cost
    if not shown and lines:
        shown.append(lines[0][: max(budget - 1, 0)] + "…")
    return shown


def listing(lines: Sequence[str], empty: str, limit: int = MAX_LIST_LINES) -> str:
    """At most `limit` lines, saying how many more there are."""
    if not lines:
        return empty
    shown = list(lines[:limit])
    if len(lines) > limit:
        shown.append(f"… 외 {len(lines) - limit}건")
    return "\n".join(shown)


def status_lines(history: Sequence[SanctionLike], tz: tzinfo, now: datetime) -> str:
    """`/mystatus`: the newest decision first."""
    return listing([sanction_line(r, tz, now) for r in reversed(history)], NO_SANCTIONS)
