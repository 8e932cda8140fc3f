"""Short Korean lines for the slash commands' listings (sanctions, audit entries, memories)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from bot.config import MAX_LIST_LINES
from bot.text import DISCORD_MESSAGE_LIMIT
from engine.rules.sanctions import EXPIRY_FORMAT, Category, format_period
from storage import AuditRecord, MemoryRecord, SanctionRecord

NOTHING_REMEMBERED = "아직 기억하고 있는 것이 없어요."
NO_SANCTIONS = "경고나 차단 기록이 없어요. 😊"


def _when(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime(EXPIRY_FORMAT)


def category_label(value: str) -> str:
    try:
        return Category(value).label
    except ValueError:
        return value


def sanction_state(record: SanctionRecord, now: datetime) -> str:
    if record.lifted_at is not None:
        return "해제됨"
    if record.expires_at <= now:
        return "만료"
    return "차단 중" if record.is_block else "경고 유효"


def sanction_line(
    record: SanctionRecord,
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


def audit_line(entry: AuditRecord, tz: tzinfo, *, where: str | None = None) -> str:
    target = f" → <@{entry.target_user_id}>" if entry.target_user_id else ""
    actor = "시스템" if entry.actor_id == "system" else f"<@{entry.actor_id}>"
    detail = f" ({entry.detail})" if entry.detail else ""
    place = f" · {where}" if where else ""
    return f"📝 {_when(entry.at, tz)} {actor} {entry.action}{target}{detail}{place}"


def memory_lines(
    items: Sequence[MemoryRecord],
    *,
    cap: int,
    evicted: int = 0,
    budget: int = DISCORD_MESSAGE_LIMIT,
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
