"""Storage: SQLAlchemy async models, Alembic migrations and the repository API (SQL only)."""

from storage.db import Database
from storage.records import (
    ActiveBlock,
    AgingReport,
    AuditRecord,
    DailyRun,
    DeletionReport,
    MemoryRecord,
    RecordedDecision,
    SanctionRecord,
    TurnRecord,
    TurnStatus,
)
from storage.repository import Repository

__all__ = [
    "ActiveBlock",
    "AgingReport",
    "AuditRecord",
    "DailyRun",
    "Database",
    "DeletionReport",
    "MemoryRecord",
    "RecordedDecision",
    "Repository",
    "SanctionRecord",
    "TurnRecord",
    "TurnStatus",
]
