"""Short Korean lines for the slash commands' listings (sanctions, audit entries, memories)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from bot.config import MAX_LIST_LINES
from engine.sanctions import EXPIRY_FORMAT, Category, format_period
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


def sanction_line(record: SanctionRecord, tz: tzinfo, now: datetime, *, with_user: bool = False) -> str:
    """`⛔ 정치 2단계 · 3일 차단 · 만료 2026.11.28 14:00:00 (차단 중)`."""
    icon = "⛔" if record.is_block else "⚠️"
    what = f"{format_period(record.block)} 차단" if record.is_block else "경고"
    who = f"<@{record.user_id}> " if with_user else ""
    line = (f"{icon} {who}{category_label(record.category)} {record.level}단계 · {what} · "
            f"만료 {_when(record.expires_at, tz)} ({sanction_state(record, now)})")
    if record.lifted_at is not None:
        line += f" · 해제 {_when(record.lifted_at, tz)}: {record.lift_reason or ''}"
    return line


def audit_line(entry: AuditRecord, tz: tzinfo) -> str:
    target = f" → <@{entry.target_user_id}>" if entry.target_user_id else ""
    actor = "시스템" if entry.actor_id == "system" else f"<@{entry.actor_id}>"
    detail = f" ({entry.detail})" if entry.detail else ""
    return f"📝 {_when(entry.at, tz)} {actor} {entry.action}{target}{detail}"


def memory_lines(items: Sequence[MemoryRecord]) -> str:
    if not items:
        return NOTHING_REMEMBERED
    return "\n".join(f"• {m.render()}" for m in items)


def listing(lines: Sequence[str], empty: str, limit: int = MAX_LIST_LINES) -> str:
    """At most `limit` lines, saying how many more there are."""
    if not lines:
        return empty
    shown = list(lines[:limit])
    if len(lines) > limit:
        shown.append(f"… 외 {len(lines) - limit}건")
    return "\n".join(shown)
