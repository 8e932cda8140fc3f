"""The engine's public API: everything a front end (`bot/`, `main.py`) imports from the engine.

Front ends never import `storage` or the engine's layers directly (an import-linter contract):
they build the service with `build_engine`, call `OhLoraService`, and render what it returns
with the `messages` catalogue. The model runtime is loaded only by `build_engine`
without an injected backend, and by `model_load_errors`.
"""

from __future__ import annotations

from engine.build import MaintenanceFactory, build_engine, prepare_storage
from engine.feedback import (
    MAX_REGENERATIONS,
    Explanation,
    Feedback,
    Rating,
    Regenerated,
    RegenerateOutcome,
)
from engine.memories import (
    MEMORY_HISTORY_LIMIT,
    MEMORY_PAGE_SIZE,
    InvalidMemoryItem,
    MemoryPage,
    MemoryPanel,
)
from engine.metrics import MetricsUnavailable
from engine.moderation import (
    APPEAL_WINDOW,
    MAX_APPEALS_PER_BLOCK,
    MAX_APPEALS_PER_DAY,
    MAX_REASON_CHARS,
    ROUTING_CACHE_S,
    AdminAction,
    AppealDecision,
    AppealNotFound,
    AppealOutcome,
    AppealResult,
    CaseNotFound,
    ChatChannels,
    ChatRouting,
    ConfigChange,
    DecideOutcome,
    LevelDecay,
    LiftResult,
    Listed,
    Moderation,
    Moderator,
    NeedsServer,
    NotAllowed,
    Reach,
    UnbanOutcome,
    UnbanResult,
    case_guilds,
)
from engine.pipeline import BackgroundResult, TurnKind, TurnResult
from engine.rules import messages, messages_feedback, messages_memory
from engine.rules.commands import FORGET_ALL, ForgetTarget, parse_forget_target
from engine.rules.expression import EYES, MOUTH, POSE, Expression, parse_expression
from engine.rules.memory_items import MAX_MEMORY_KEY_CHARS, MAX_MEMORY_VALUE_CHARS
from engine.rules.sanctions import OHLORA_EMOJI
from engine.rules.sanitize import cap_raw
from engine.service import (
    ForgetCheck,
    Maintenance,
    MemoryView,
    OhLoraService,
)
from engine.settings import Settings, describe_error
from storage.records import (
    AppealRecord,
    AppealStatus,
    AuditRecord,
    CaseKind,
    CaseRecord,
    DeletionReport,
    GuildSettingsRecord,
    MemoryAction,
    MemoryEventRecord,
    MemoryRecord,
    MemorySource,
    SanctionRecord,
)

__all__ = [
    "APPEAL_WINDOW",
    "EYES",
    "FORGET_ALL",
    "MAX_APPEALS_PER_BLOCK",
    "MAX_APPEALS_PER_DAY",
    "MAX_MEMORY_KEY_CHARS",
    "MAX_MEMORY_VALUE_CHARS",
    "MAX_REASON_CHARS",
    "MAX_REGENERATIONS",
    "MEMORY_HISTORY_LIMIT",
    "MEMORY_PAGE_SIZE",
    "MOUTH",
    "OHLORA_EMOJI",
    "POSE",
    "ROUTING_CACHE_S",
    "AdminAction",
    "AppealDecision",
    "AppealNotFound",
    "AppealOutcome",
    "AppealRecord",
    "AppealResult",
    "AppealStatus",
    "AuditRecord",
    "BackgroundResult",
    "CaseKind",
    "CaseNotFound",
    "CaseRecord",
    "ChatChannels",
    "ChatRouting",
    "ConfigChange",
    "DecideOutcome",
    "DeletionReport",
    "Explanation",
    "Expression",
    "Feedback",
    "ForgetCheck",
    "ForgetTarget",
    "GuildSettingsRecord",
    "InvalidMemoryItem",
    "LevelDecay",
    "LiftResult",
    "Listed",
    "Maintenance",
    "MaintenanceFactory",
    "MemoryAction",
    "MemoryEventRecord",
    "MemoryPage",
    "MemoryPanel",
    "MemoryRecord",
    "MemorySource",
    "MemoryView",
    "MetricsUnavailable",
    "Moderation",
    "Moderator",
    "NeedsServer",
    "NotAllowed",
    "OhLoraService",
    "Rating",
    "Reach",
    "RegenerateOutcome",
    "Regenerated",
    "SanctionRecord",
    "Settings",
    "TurnKind",
    "TurnResult",
    "UnbanOutcome",
    "UnbanResult",
    "build_engine",
    "cap_raw",
    "case_guilds",
    "describe_error",
    "messages",
    "messages_feedback",
    "messages_memory",
    "model_load_errors",
    "parse_expression",
    "parse_forget_target",
    "prepare_storage",
]


def model_load_errors() -> tuple[type[Exception], ...]:
    """What loading the models raises for missing or unreadable model files (imports the
    model runtime, so call it only where models are loaded anyway)."""
    from engine.backends import ModelLoadError
    from engine.runtime.lm import MissingAdapter, MissingBaseModel

    return (MissingBaseModel, MissingAdapter, ModelLoadError)
