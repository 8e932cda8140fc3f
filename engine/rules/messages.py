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
    "`/memory` 오로라가 기억하는 나에 대한 것: 보기, 고치기, 고정(📌), 지우기, 바뀐 기록\n"
    "`/forget` 기억 하나 또는 전부(all) 지우기\n"
    "`/reset` 이 채널의 대화 요약 지우기\n"
    "`/mystatus` 내 경고와 차단, 만료 시각\n"
    "`/forget-me` 나에 대한 기억과 대화 기록 모두 지우기 (경고·차단 기록은 남아요)\n"
    "`/appeal` 차단이 잘못되었다고 생각될 때 이의 신청하기\n"
    "`/export-my-data` 오로라에 저장된 나의 모든 데이터를 JSON 파일로 받기\n"
    "오로라의 답변 아래 🔄 는 같은 말에 다시 답하기, 👍 / 👎 는 답변 평가예요. "
    "답변 메시지의 메뉴(앱) → **왜 이렇게 답했어?** 로 어떤 기억을 썼는지 볼 수 있어요.\n"
    "사랑 고백/만남 요구, 정치 발언, 패드립은 경고나 차단을 받을 수 있어요."
)
CONSOLE_HELP = (
    "명령어: /memory (기억 보기; edit|pin|unpin|delete 번호, history), "
    "/forget [항목|all] (기억 지우기), "
    "/reset (대화 요약 지우기), /mystatus (내 경고와 차단), "
    "/forget-me (기억과 대화 기록 모두 지우기), /regenerate (다시 답하기), "
    "/rate up|down (답변 평가), /why (이유), /export [파일] (내 데이터), /quit (끝내기)"
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
    case: int | None = None,
) -> str:
    """`⛔ 정치 2단계 · 3일 차단 · 만료 2026.11.28 14:00:00 (차단 중)`; `where` (for the global
    admins, who see every server's decisions) names the server it was decided in, or DM;
    `case` prefixes the decision's case number (`#12 ⛔ …`)."""
    icon = "⛔" if record.is_block else "⚠️"
    if case is not None:
        icon = f"#{case} {icon}"
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


def status_lines(
    history: Sequence[SanctionLike],
    tz: tzinfo,
    now: datetime,
    decay: Sequence[DecayLike] = (),
) -> str:
    """`/mystatus`: the newest decision first; with decay on, when each level falls away."""
    text = listing([sanction_line(r, tz, now) for r in reversed(history)], NO_SANCTIONS)
    return "\n".join([text, *decay_lines(decay, tz)]) if history else text


# ---- moderation: cases, lifts, appeals, server settings (issue 19) ---------------------------
APPEAL_HINT = "잘못된 차단이라고 생각되면 `/appeal` 로 이의를 신청할 수 있어요."
SPOILER = "||{text}||"  # Discord hides it until clicked
CASE_NOT_FOUND = "그런 사건 번호가 없거나, 이 서버에서 볼 수 없는 사건이에요."
APPEAL_NOT_FOUND = "그런 이의 신청이 없거나, 이 서버에서 볼 수 없는 신청이에요."
NEEDS_SERVER = "서버 설정은 그 서버 안에서 바꿔 주세요."
CONFIG_REFUSED = (
    "서버 설정은 전역 관리자나 '멤버 관리(Moderate Members)' 권한이 있는 사람만 바꿀 수 있어요. "
    "아무것도 바뀌지 않았어요."
)
LIFT_BUTTON = "차단 해제"
HISTORY_BUTTON = "기록 보기"
ACCEPT_BUTTON = "수락"
DENY_BUTTON = "거절"
LIFT_MODAL_TITLE = "차단 해제"
LIFT_REASON_LABEL = "해제 사유"
APPEAL_MODAL_TITLE = "차단 이의 신청"
APPEAL_REASON_LABEL = "왜 차단이 잘못되었다고 생각하나요?"
DECIDE_MODAL_TITLE = "이의 신청 결정"
DECIDE_NOTE_LABEL = "결정 사유 (사용자에게 DM으로 전해져요)"
CASES_TITLE = "**사건 기록**"
NO_CASES = "조건에 맞는 사건이 없어요."
NO_MOD_ROLES = (
    "설정된 관리자 역할이 없어요. ('멤버 관리' 권한이 있는 사람과 전역 관리자만 관리해요)"
)
NOTHING_CHANGED = "이미 그렇게 설정되어 있어요. 아무것도 바뀌지 않았어요."

_CASE_KINDS = {
    "warning": "경고",
    "block": "차단",
    "lift": "차단 해제",
    "lift_refused": "해제 거부 (자기 차단)",
    "appeal_accepted": "이의 신청 수락",
    "appeal_denied": "이의 신청 거절",
    "mod_role_added": "관리자 역할 추가",
    "mod_role_removed": "관리자 역할 제거",
    "settings_changed": "서버 설정 변경",
}
_APPEAL_ANSWERS = {
    "filed": (
        "이의 신청을 접수했어요 (사건 #{case}). 관리자가 검토한 뒤 DM으로 결과를 알려 드릴게요."
    ),
    "not_blocked": "지금은 차단 중이 아니라서 이의 신청할 것이 없어요. 😊",
    "already_open": "이 차단(사건 #{case})에 대한 이의 신청이 이미 검토 중이에요. 조금만 기다려 주세요.",
    "rate_limited": "이의 신청은 하루에 {per_day}번까지 할 수 있어요. 내일 다시 해 주세요.",
    "limit_for_block": "이 차단(사건 #{case})에는 이의 신청을 더 할 수 없어요 (최대 {per_block}번).",
}
_DECIDE_ANSWERS = {
    "accepted": "이의 신청 #{appeal} 을 수락했어요. 차단 {lifted}건을 해제했어요. (사건 #{case})",
    "denied": "이의 신청 #{appeal} 을 거절했어요. (사건 #{case})",
    "already_decided": "이의 신청 #{appeal} 은 이미 결정되었어요. 아무것도 바뀌지 않았어요.",
    "self_refused": (
        "자기 자신의 이의 신청은 결정할 수 없어요. 다른 관리자에게 부탁해 주세요. "
        "아무것도 바뀌지 않았어요."
    ),
    "not_in_reach": (
        "다른 곳에서 받은 차단의 이의 신청은 그곳의 관리자나 전역 관리자만 결정할 수 있어요. "
        "아무것도 바뀌지 않았어요."
    ),
}


class CaseLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def guild_id(self) -> str | None: ...
    @property
    def actor_id(self) -> str: ...
    @property
    def ref_case_id(self) -> int | None: ...
    @property
    def categories(self) -> Sequence[str]: ...
    @property
    def levels(self) -> Sequence[int]: ...
    @property
    def period(self) -> timedelta | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def excerpt(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def detail(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


class AppealLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def case_id(self) -> int: ...
    @property
    def user_id(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def note(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


def case_kind_label(kind: str) -> str:
    return _CASE_KINDS.get(str(kind), str(kind))


def case_title(case: CaseLike) -> str:
    """`사건 #12 · 차단`"""
    return f"사건 #{case.id} · {case_kind_label(case.kind)}"


def _actor(actor_id: str) -> str:
    return f"오로라 {OHLORA_EMOJI}" if actor_id == SYSTEM_ACTOR else f"<@{actor_id}>"


def spoiler(text: str) -> str:
    """Hidden until clicked; the text's own `||` cannot end the spoiler early."""
    return SPOILER.format(text=text.replace("|", "∣"))


def _levels(case: CaseLike) -> str:
    return ", ".join(
        f"{category_label(c)} {level}단계"
        for c, level in zip(case.categories, case.levels, strict=False)
    ) or ", ".join(category_label(c) for c in case.categories)


def case_fields(case: CaseLike, tz: tzinfo, *, in_guild: str | None) -> list[tuple[str, str]]:
    """A case's embed fields. The message excerpt (behind a spoiler) is shown only in the
    server where the message was written: a DM's or another server's words stay there."""
    out: list[tuple[str, str]] = []
    if case.user_id is not None:
        out.append(("대상", f"<@{case.user_id}>"))
    out.append(("처리", _actor(case.actor_id)))
    if case.categories:
        out.append(("분류", _levels(case)))
    if case.period is not None and case.kind in ("warning", "block"):
        what = f"{format_period(case.period)} 차단" if case.kind == "block" else "경고"
        out.append(("기간", what))
    if case.expires_at is not None and case.kind == "block":
        out.append(("만료", _when(case.expires_at, tz)))
    if case.ref_case_id is not None:
        out.append(("관련 사건", f"#{case.ref_case_id}"))
    if case.reason:
        out.append(("사유", case.reason))
    if case.kind in ("mod_role_added", "mod_role_removed") and case.detail.startswith("role="):
        out.append(("역할", f"<@&{case.detail.removeprefix('role=')}>"))
    elif case.kind == "settings_changed" and case.detail:
        out.append(("변경", case.detail))
    if case.excerpt and in_guild is not None and case.guild_id == in_guild:
        out.append(("메시지", spoiler(case.excerpt)))
    out.append(("장소", IN_DM if case.guild_id is None else unknown_server(case.guild_id)))
    out.append(("시각", _when(case.created_at, tz)))
    return out


def case_line(case: CaseLike, tz: tzinfo) -> str:
    """One row of `/sanction-log`: `#12 ⛔ 차단 · <@3> · 정치 2단계 · 3일 · 2026.11.28 14:00:00`."""
    icon = {"warning": "⚠️", "block": "⛔"}.get(str(case.kind), "📝")
    parts = [f"#{case.id} {icon} {case_kind_label(case.kind)}"]
    if case.user_id is not None:
        parts.append(f"<@{case.user_id}>")
    if case.categories:
        parts.append(_levels(case))
    if case.kind == "block" and case.period is not None:
        parts.append(format_period(case.period))
    if case.ref_case_id is not None:
        parts.append(f"→ #{case.ref_case_id}")
    if case.actor_id != SYSTEM_ACTOR:
        parts.append(f"by <@{case.actor_id}>")
    parts.append(_when(case.created_at, tz))
    return " · ".join(parts)


def appeal_title(appeal: AppealLike) -> str:
    return f"이의 신청 #{appeal.id} · 사건 #{appeal.case_id}"


def appeal_fields(
    appeal: AppealLike, block_case: CaseLike | None, tz: tzinfo
) -> list[tuple[str, str]]:
    """The embed posted to the mod-logs with the accept / deny buttons."""
    out = [("신청자", f"<@{appeal.user_id}>"), ("사유", appeal.reason)]
    if block_case is not None and block_case.categories:
        out.append(("차단", _levels(block_case)))
    if block_case is not None and block_case.expires_at is not None:
        out.append(("만료", _when(block_case.expires_at, tz)))
    out.append(("신청 시각", _when(appeal.created_at, tz)))
    return out


class AppealResultLike(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def block_case(self) -> CaseLike | None: ...


def appeal_answer(result: AppealResultLike, *, per_day: int, per_block: int) -> str:
    """What `/appeal` tells the user (privately)."""
    case = result.block_case.id if result.block_case is not None else "?"
    return _APPEAL_ANSWERS[str(result.outcome)].format(
        case=case, per_day=per_day, per_block=per_block
    )


def appeal_decided_dm(appeal: AppealLike, *, still_blocked: bool) -> str:
    """The user's DM after an admin decided their appeal."""
    note = f"\n사유: {appeal.note}" if appeal.note else ""
    if str(appeal.status) == "accepted":
        rest = (
            " 다른 차단이 아직 남아 있어요."
            if still_blocked
            else " 다시 오로라와 대화할 수 있어요!"
        )
        return (
            f"이의 신청 #{appeal.id} (사건 #{appeal.case_id}) 이 수락되어 차단이 해제되었어요.{rest}"
            f"{note}"
        )
    return (
        f"이의 신청 #{appeal.id} (사건 #{appeal.case_id}) 이 거절되었어요. 차단은 그대로예요.{note}"
    )


class DecisionLike(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def appeal(self) -> AppealLike: ...
    @property
    def case(self) -> CaseLike | None: ...
    @property
    def lifted(self) -> int: ...


def decide_answer(decision: DecisionLike) -> str:
    """What the admin who pressed accept / deny sees."""
    case = decision.case.id if decision.case is not None else "?"
    return _DECIDE_ANSWERS[str(decision.outcome)].format(
        appeal=decision.appeal.id, case=case, lifted=decision.lifted
    )


class LiftLike(Protocol):
    @property
    def lifted(self) -> int: ...
    @property
    def still_blocked(self) -> bool: ...
    @property
    def outcome(self) -> str: ...
    @property
    def case(self) -> CaseLike | None: ...


def lift_answer(name: str, result: LiftLike) -> str:
    """`unban_answer` for a lift (button or command), with the new case number."""
    if str(result.outcome) == "self_refused":
        return NOT_ON_YOURSELF
    text = unban_answer(name, lifted=result.lifted, still_blocked=result.still_blocked)
    return text + (f" (사건 #{result.case.id})" if result.case is not None else "")


class SettingsLike(Protocol):
    @property
    def modlog_channel_id(self) -> str | None: ...
    @property
    def dm_notice(self) -> bool: ...


class ChangeLike(Protocol):
    @property
    def changed(self) -> bool: ...
    @property
    def settings(self) -> SettingsLike: ...
    @property
    def case(self) -> CaseLike | None: ...


def settings_answer(settings: SettingsLike) -> str:
    channel = f"<#{settings.modlog_channel_id}>" if settings.modlog_channel_id else NONE_YET
    notice = "켜짐" if settings.dm_notice else "꺼짐"
    return f"**서버 설정**\n• 관리 기록(mod-log) 채널: {channel}\n• 경고·차단 DM 알림: {notice}"


def config_answer(change: ChangeLike) -> str:
    if not change.changed:
        return NOTHING_CHANGED
    number = f" (사건 #{change.case.id})" if change.case is not None else ""
    return f"설정을 바꿨어요{number}.\n{settings_answer(change.settings)}"


def mod_role_answer(role_id: str, change: ChangeLike, *, added: bool) -> str:
    if not change.changed:
        return NOTHING_CHANGED
    number = f" (사건 #{change.case.id})" if change.case is not None else ""
    what = "관리자 역할로 추가했어요" if added else "관리자 역할에서 뺐어요"
    return f"<@&{role_id}> 을(를) {what}{number}."


def mod_roles_answer(role_ids: Sequence[str]) -> str:
    if not role_ids:
        return NO_MOD_ROLES
    return "**관리자 역할**\n" + "\n".join(f"• <@&{r}>" for r in role_ids)


# ---- per-server chat channels and her face picture (issue 18) --------------------------------
NO_CHAT_CHANNELS = (
    "이 서버에는 채팅 채널이 없어요. 오로라를 멘션하거나 오로라의 메시지에 답장하면 대답해요."
)
CHAT_CHANNELS_TITLE = "**채팅 채널** (멘션 없이도 오로라가 대답하는 곳)"
ENV_DEFAULT_MARK = " (기본값)"
PICTURE_ON = "켜짐"
PICTURE_OFF = "꺼짐"


class ChatChannelsLike(Protocol):
    @property
    def channel_ids(self) -> Sequence[str]: ...
    @property
    def env_defaults(self) -> frozenset[str]: ...
    @property
    def turned_off(self) -> Sequence[str]: ...


def chat_channels_answer(channels: ChatChannelsLike) -> str:
    """`/config chat-channel list`: the effective channels, the environment's marked."""
    lines = [
        f"• <#{c}>{ENV_DEFAULT_MARK if c in channels.env_defaults else ''}"
        for c in channels.channel_ids
    ]
    text = f"{CHAT_CHANNELS_TITLE}\n" + "\n".join(lines) if lines else NO_CHAT_CHANNELS
    if channels.turned_off:
        off = ", ".join(f"<#{c}>" for c in channels.turned_off)
        text += f"\n이 서버에서 끈 기본 채팅 채널: {off}"
    return text


def chat_channel_answer(channel_id: str, change: ChangeLike, *, added: bool) -> str:
    """`/config chat-channel add|remove`: what changed, with the case number."""
    if not change.changed:
        return NOTHING_CHANGED
    number = f" (사건 #{change.case.id})" if change.case is not None else ""
    what = (
        "을(를) 채팅 채널로 추가했어요. 이제 멘션 없이도 대답해요"
        if added
        else "을(를) 채팅 채널에서 뺐어요. 이제 멘션하거나 답장할 때만 대답해요"
    )
    return f"<#{channel_id}> {what}{number}."


def picture_answer(change: ChangeLike, *, enabled: bool) -> str:
    """`/config picture on|off`."""
    if not change.changed:
        return NOTHING_CHANGED
    number = f" (사건 #{change.case.id})" if change.case is not None else ""
    state = "붙여요" if enabled else "붙이지 않아요"
    return f"이제 이 서버에서 오로라의 답장에 얼굴 그림을 {state}{number}."


def server_settings_answer(
    settings: SettingsLike, channels: ChatChannelsLike, *, picture: bool
) -> str:
    """`/config show`: the mod-log settings, her face picture and the chat channels."""
    shown = PICTURE_ON if picture else PICTURE_OFF
    return (
        f"{settings_answer(settings)}\n• 답장의 얼굴 그림: {shown}\n"
        f"{chat_channels_answer(channels)}"
    )


class DecayLike(Protocol):
    @property
    def category(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def at(self) -> datetime: ...


def decay_lines(decays: Sequence[DecayLike], tz: tzinfo) -> list[str]:
    """`/mystatus` with decay on: when each level stops counting toward the next one."""
    return [
        f"⏳ {category_label(d.category)} {d.level}단계는 {_when(d.at, tz)} 에 사라져요 "
        "(그 뒤에는 다시 1단계부터 시작해요)"
        for d in decays
    ]


# ---- moderation on Discord: what only the bot's cog says (issue 19, bot side) ----------------
BAD_DATE = "날짜는 `2026-11-25` 처럼 적어 주세요. 아무것도 바뀌지 않았어요."
CATEGORY_CHOICES: tuple[str, ...] = ("love", "politics", "paedrip")  # `/sanction-log category:`


def dm_notice(guild_name: str, notice: str) -> str:
    """The private copy of a warning or block given in a server channel."""
    return f"**{guild_name}** 에서 받은 알림이에요.\n{notice}"
