"""The memory panel's Korean strings and listings (`/memory` on Discord, `/memory …` in the
console): the same catalogue for both front ends, as `engine.rules.messages` is for the rest.

Torch-free and storage-free: listings take anything shaped like the repository's records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Protocol

from engine.rules.memory_items import MAX_MEMORY_KEY_CHARS, MAX_MEMORY_VALUE_CHARS
from engine.rules.messages import MAX_ANSWER_CHARS, NOTHING_REMEMBERED, fitting

PIN_MARK = "📌"
SELECTED_MARK = "▶"
HISTORY_TIME_FORMAT = "%m-%d %H:%M"
ELLIPSIS = "…"

# ---- the panel's controls ---------------------------------------------------------------------
PANEL_TITLE = "**오로라가 기억하는 것**"
SELECT_PLACEHOLDER = "기억을 하나 골라 주세요"
PREVIOUS_LABEL = "이전"
NEXT_LABEL = "다음"
DELETE_LABEL = "삭제"
EDIT_LABEL = "수정"
PIN_LABEL = "고정"
UNPIN_LABEL = "고정 해제"
HISTORY_LABEL = "기록"
CONFIRM_DELETE_LABEL = "지우기"
CANCEL_LABEL = "취소"
EDIT_MODAL_TITLE = "기억 수정"
KEY_INPUT_LABEL = f"이름 (최대 {MAX_MEMORY_KEY_CHARS}자)"
VALUE_INPUT_LABEL = f"내용 (최대 {MAX_MEMORY_VALUE_CHARS}자)"

# ---- answers ----------------------------------------------------------------------------------
SELECT_FIRST = "먼저 아래 목록에서 기억을 하나 골라 주세요."
ITEM_GONE = "그 기억은 이제 없어요. 목록을 새로 고쳤어요."
DELETE_CANCELLED = "취소했어요. 아무것도 지우지 않았어요."
NO_HISTORY = "기록이 아직 없어요."
HISTORY_TITLE = "**기억이 바뀐 기록** (최근 것부터)"
PINNED_NOTE = (
    f"{PIN_MARK} 고정한 기억은 대화로 바뀌지 않고, 날짜가 지나도, 자리가 모자라도 잊히지 않아요."
)


class MemoryLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def pinned(self) -> bool: ...
    def render(self) -> str: ...


class PageLike(Protocol):
    @property
    def items(self) -> Sequence[MemoryLike]: ...
    @property
    def page(self) -> int: ...
    @property
    def pages(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def cap(self) -> int: ...
    @property
    def evicted(self) -> int: ...
    @property
    def offset(self) -> int: ...


class EventLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def old_value(self) -> str | None: ...
    @property
    def new_value(self) -> str | None: ...
    @property
    def turn_id(self) -> int | None: ...
    @property
    def at(self) -> datetime: ...


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def item_line(item: MemoryLike) -> str:
    """One item as listed: `📌 [key: value]` when pinned."""
    return f"{PIN_MARK} {item.render()}" if item.pinned else item.render()


def option_label(number: int, item: MemoryLike, limit: int) -> str:
    """The select menu's label for an item (Discord allows `limit` characters)."""
    return clip(f"{number}. {item_line(item)}", limit)


def panel_text(
    page: PageLike, *, selected_id: int | None = None, budget: int = MAX_ANSWER_CHARS
) -> str:
    """The panel's message (and the console's `/memory`): the cap, what it made her forget,
    the page's items numbered across pages, the chosen one marked, the page number."""
    head = [
        f"{PANEL_TITLE} (지금 {page.total}개 · 최대 {page.cap}개)",
        "꽉 차면 가장 오래 안 쓴 기억부터 잊혀요. " + PINNED_NOTE,
    ]
    if page.evicted:
        head.append(f"자리가 모자라서 오래 안 쓴 기억 {page.evicted}개를 잊었어요.")
    if not page.items:
        return "\n".join([NOTHING_REMEMBERED, *head[2:]])
    lines = []
    for number, item in enumerate(page.items, start=page.offset + 1):
        mark = f"{SELECTED_MARK} " if item.id == selected_id else ""
        lines.append(f"{mark}{number}. {item_line(item)}")
    tail = [f"({page.page + 1}/{page.pages}쪽)"] if page.pages > 1 else []
    more = f"… 외 {len(lines)}개"
    spent = len("\n".join([*head, *tail])) + len(more) + 2
    shown = fitting(lines, budget - spent)
    rest = [f"… 외 {len(lines) - len(shown)}개"] if len(shown) < len(lines) else []
    return "\n".join([*head, *shown, *rest, *tail])


def selected_text(item: MemoryLike) -> str:
    return f"골랐어요: {item_line(item)}"


def delete_question(item: MemoryLike) -> str:
    return f"{item.render()} 기억을 지울까요? 지우면 되돌릴 수 없어요 (기록에는 남아요)."


def deleted(item: MemoryLike) -> str:
    return f"{item.render()} 기억을 지웠어요."


def edited(item: MemoryLike) -> str:
    return f"고쳤어요: {item_line(item)}"


def unchanged(item: MemoryLike) -> str:
    return f"바뀐 것이 없어요: {item_line(item)}"


def pinned(item: MemoryLike) -> str:
    return f"{PIN_MARK} 고정했어요: {item.render()} (대화로 바뀌거나 잊히지 않아요)"


def unpinned(item: MemoryLike) -> str:
    return f"고정을 풀었어요: {item.render()}"


def key_taken(key: str) -> str:
    return f"[{key}] 이라는 기억이 이미 있어요. 다른 이름을 써 주세요."


def invalid_item(reason: str, key: str, value: str) -> str:
    """A rejected edit: why, that nothing changed, and what was typed (not lost: the answer
    repeats it, and the panel's next 수정 form starts from it)."""
    typed = clip(f"{key} / {value}", MAX_MEMORY_KEY_CHARS + MAX_MEMORY_VALUE_CHARS + 3)
    return f"{reason} 아무것도 바뀌지 않았어요.\n입력한 내용: {typed}"


_ACTIONS = {
    "added": "추가",
    "changed": "변경",
    "deleted": "삭제",
    "pinned": "고정",
    "unpinned": "고정 해제",
}


def _by(event: EventLike) -> str:
    if event.source == "turn":
        return f"대화 #{event.turn_id}" if event.turn_id is not None else "대화"
    return {
        "user": "내가 직접",
        "expiry": "날짜가 바뀌어서",
        "cap": "자리가 모자라서",
    }.get(event.source, event.source)


def _what(event: EventLike) -> str:
    if event.action == "changed":
        return f"{event.old_value} → {event.new_value}"
    if event.action == "deleted":
        return f"(있던 내용: {event.old_value})" if event.old_value is not None else ""
    return event.new_value or ""


def history_line(event: EventLike, tz: tzinfo) -> str:
    """`• 11-25 14:00 [좋아하는 가수] 변경: 아이유 → 뉴진스 (대화 #12)`."""
    when = event.at.astimezone(tz).strftime(HISTORY_TIME_FORMAT)
    action = _ACTIONS.get(event.action, event.action)
    what = _what(event)
    body = f"{action}: {what}" if what else action
    return f"• {when} [{event.key}] {body} ({_by(event)})"


def history_text(
    events: Sequence[EventLike],
    tz: tzinfo,
    *,
    key: str | None = None,
    budget: int = MAX_ANSWER_CHARS,
) -> str:
    """The history (newest first) of one key or of every key, within one message."""
    title = f"**[{key}] 기억이 바뀐 기록** (최근 것부터)" if key is not None else HISTORY_TITLE
    if not events:
        return f"{title}\n{NO_HISTORY}"
    lines = [history_line(e, tz) for e in events]
    shown = fitting(lines, budget - len(title) - 1)
    return "\n".join([title, *shown])


# ---- the console -------------------------------------------------------------------------
CONSOLE_MEMORY_USAGE = (
    "사용법: /memory (번호와 함께 보기), /memory edit 번호 이름: 내용, /memory pin 번호, "
    "/memory unpin 번호, /memory delete 번호, /memory history [번호]"
)
CONSOLE_RATE_USAGE = "사용법: /rate up  또는  /rate down"
CONSOLE_NOTHING_TO_RATE = "평가할 오로라의 답변이 없어요."


def no_such_number(number: str) -> str:
    return f"{number}번 기억은 없어요. `/memory` 로 번호를 확인해 주세요."
