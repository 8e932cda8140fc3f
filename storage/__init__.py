"""Storage: SQLAlchemy async models, Alembic migrations and the repository API (SQL only)."""

from storage.db import Database, DatabaseOptions
from storage.moderation import ModerationRepository
from storage.records import (
    ActiveBlock,
    AgingReport,
    AppealRecord,
    AppealStatus,
    AuditRecord,
    CaseKind,
    CaseRecord,
    DailyRun,
    DeletionReport,
    GuildSettingsRecord,
    MemoryAction,
    MemoryEventRecord,
    MemoryRecord,
    MemorySource,
    RecordedDecision,
    SanctionRecord,
    TurnRecord,
    TurnStatus,
)
from storage.repository import Repository

__all__ = [
    "ActiveBlock",
    "AgingReport",
    "AppealRecord",
    "AppealStatus",
    "AuditRecord",
    "CaseKind",
    "CaseRecord",
    "DailyRun",
    "Database",
    "DatabaseOptions",
    "DeletionReport",
    "GuildSettingsRecord",
    "MemoryAction",
    "MemoryEventRecord",
    "MemoryRecord",
    "MemorySource",
    "ModerationRepository",
    "RecordedDecision",
    "Repository",
    "SanctionRecord",
    "TurnRecord",
    "TurnStatus",
]
