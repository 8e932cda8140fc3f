"""Service settings from the environment and `.env`; a bad value stops start-up with one line."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from tzlocal import get_localzone

log = logging.getLogger(__name__)

ENV_PREFIX = "OHLORA_"
DEFAULT_DATA_DIR = Path("var")
DATABASE_FILE = "ohlora.db"

# Limits users can meet; each is a setting so an operator can move it.
DEFAULT_MAX_PROMPT_TOKENS = 48  # upstream's length guard on the tagged prompt
MAX_PROMPT_TOKENS_CEILING = 512
DEFAULT_MAX_MESSAGE_CHARS = 2000  # a Discord message without Nitro
DEFAULT_BLOCK_NOTICE_COOLDOWN_S = 600
DEFAULT_RATE_LIMIT_PER_MINUTE = 12
# Memory items kept per user; a new one beyond this evicts the least recently used or updated.
# Each item is a short fact (`[좋아하는 가수: 아이유]`) and retrieval scores every one per turn.
DEFAULT_MAX_MEMORY_ITEMS = 50
MAX_MEMORY_ITEMS_CEILING = 1000
DEFAULT_TURN_RETENTION_DAYS = 30
# Days after which an ended sanction no longer counts toward the next level (None: never, as
# upstream's ladder); at most about ten years, longer than any block.
MAX_SANCTION_DECAY_DAYS = 3660
DEFAULT_BATCH_MAX_SIZE = 16  # rows per model batch (cross-user)
MAX_BATCH_SIZE = 256
DEFAULT_BATCH_WINDOW_MS = (
    0  # extra wait to gather a batch; rows also gather while the worker is busy
)
DEFAULT_BATCH_CHUNK_TOKENS = 8  # measured best of 8-24 for the tiny preset on 2 CPU cores
MAX_CHUNK_TOKENS = 4096
DEFAULT_MODEL_PROCESSES = 2  # the two model groups (Kanana; Polyglot + S-BERTs) in two processes
MAX_MODEL_PROCESSES = 3  # 3: the Kanana roles in a child too, away from the event loop

Preset = Literal["tiny", "production"]
GenerationBackend = Literal["local", "openai"]
DEFAULT_REMOTE_TIMEOUT_S = 60.0  # a completions request's overall deadline
DEFAULT_REMOTE_BREAKER_FAILURES = 3  # failed calls in a row before calls fail fast
DEFAULT_REMOTE_BREAKER_COOLDOWN_S = 30.0  # then, how long until one call probes the server
MAX_BREAKER_COOLDOWN_S = 3600.0
DEFAULT_MODEL_CALL_TIMEOUT_S = 300.0  # a model child silent this long on a call is hung: restarted
MAX_MODEL_CALL_TIMEOUT_S = 3600.0
# Scale-out (several processes on one PostgreSQL database): connections each process keeps for
# the per-user turn lock (storage.locks; each holds one user's lock through a turn, so this is
# the users with a turn in flight at once in one process), and Discord's shard limits.
DEFAULT_DB_LOCK_POOL_SIZE = 32
MAX_DB_LOCK_POOL_SIZE = 1000
MAX_SHARD_COUNT = 10_000
# The database's connection pool and timeouts (a server database: PostgreSQL; SQLite has one
# writer and ignores them); storage.db.DatabaseOptions takes them.
DEFAULT_DB_POOL_SIZE = 5
DEFAULT_DB_MAX_OVERFLOW = 10
MAX_DB_POOL_SIZE = 1000
DEFAULT_DB_POOL_TIMEOUT_S = 30.0
DEFAULT_DB_STATEMENT_TIMEOUT_S = 60.0
MAX_DB_TIMEOUT_S = 3600.0
DEFAULT_METRICS_HOST = "127.0.0.1"  # metrics and health stay on this machine unless opened up
MAX_PORT = 65_535


class Settings(BaseSettings):
    """Everything an operator may set. Secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    discord_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DISCORD_TOKEN", "OHLORA_DISCORD_TOKEN")
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "OHLORA_DATABASE_URL")
    )
    data_dir: Path = DEFAULT_DATA_DIR
    timezone: str | None = Field(default=None, description="IANA zone; default: the server's")
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    chat_channel_ids: Annotated[frozenset[int], NoDecode] = Field(
        default=frozenset(), description="guild channels where Oh-LoRA answers without a mention"
    )
    show_expression: bool = Field(default=True, description="show each reply's expression")
    # Her face (a small picture of the parsed expression) on each reply's embed; each server
    # may turn it on or off (`/config picture`), this is the default.
    expression_picture: bool = Field(
        default=True, description="attach her face picture to replies (servers may override)"
    )
    model_preset: Preset = "tiny"
    models_dir: Path | None = None
    memory_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="None: the memory model's own calibration"
    )
    max_prompt_tokens: int = Field(
        default=DEFAULT_MAX_PROMPT_TOKENS, ge=1, le=MAX_PROMPT_TOKENS_CEILING
    )
    max_message_chars: int = Field(default=DEFAULT_MAX_MESSAGE_CHARS, ge=1, le=100_000)
    block_notice_cooldown_s: int = Field(default=DEFAULT_BLOCK_NOTICE_COOLDOWN_S, ge=0)
    rate_limit_per_minute: int = Field(default=DEFAULT_RATE_LIMIT_PER_MINUTE, ge=1)
    max_memory_items: int = Field(
        default=DEFAULT_MAX_MEMORY_ITEMS, ge=1, le=MAX_MEMORY_ITEMS_CEILING
    )
    turn_retention_days: int = Field(default=DEFAULT_TURN_RETENTION_DAYS, ge=1)
    sanction_decay_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SANCTION_DECAY_DAYS,
        description="days after its end a sanction stops counting toward the next level",
    )
    batch_max_size: int = Field(default=DEFAULT_BATCH_MAX_SIZE, ge=1, le=MAX_BATCH_SIZE)
    batch_window_ms: int = Field(default=DEFAULT_BATCH_WINDOW_MS, ge=0, le=1000)
    # Decoding steps per batch call: an unfinished row continues in the next batch of its role,
    # with rows that arrived meanwhile (chunked continuous batching); 0 decodes rows to the end.
    batch_chunk_tokens: int = Field(default=DEFAULT_BATCH_CHUNK_TOKENS, ge=0, le=MAX_CHUNK_TOKENS)
    # 2: the Polyglot roles and S-BERTs run in a child process beside the Kanana roles, so both
    # model groups compute at once (engine.serving.processes); 1: every model in this process; 3: the
    # Kanana roles in a second child, so no model Python shares the event loop's GIL.
    model_processes: int = Field(default=DEFAULT_MODEL_PROCESSES, ge=1, le=MAX_MODEL_PROCESSES)
    # Role adapters folded into one copy per role of the weights they adapt (engine.runtime.merged):
    # faster, above all for reply+summary batches; false keeps peft's adapters (less memory).
    merge_adapters: bool = True
    # Generation on an OpenAI-compatible completions server (vLLM) instead of in-process.
    generation_backend: GenerationBackend = "local"
    openai_base_url: str | None = Field(default=None, description="e.g. http://gpu:8000/v1")
    openai_polyglot_base_url: str | None = Field(
        default=None, description="server of the Polyglot roles; default: openai_base_url"
    )
    openai_api_key: SecretStr | None = None
    openai_model_prefix: str = ""
    # Each request's overall deadline (connect, wait and the whole answer), in seconds.
    openai_timeout_s: float = Field(default=DEFAULT_REMOTE_TIMEOUT_S, gt=0, le=600)
    # The circuit breaker: after this many failed calls in a row, calls fail at once (the
    # apology) for the cool-down, then one call probes the server again.
    openai_breaker_failures: int = Field(default=DEFAULT_REMOTE_BREAKER_FAILURES, ge=1, le=100)
    openai_breaker_cooldown_s: float = Field(
        default=DEFAULT_REMOTE_BREAKER_COOLDOWN_S, gt=0, le=MAX_BREAKER_COOLDOWN_S
    )
    # A model child process that does not answer one batched call within this is killed and
    # restarted, and that call fails (its users get the apology).
    model_call_timeout_s: float = Field(
        default=DEFAULT_MODEL_CALL_TIMEOUT_S, gt=0, le=MAX_MODEL_CALL_TIMEOUT_S
    )
    # Prometheus `/metrics` and `/healthz` on this port (engine.metrics); unset: not served,
    # 0: any free port.
    metrics_port: int | None = Field(default=None, ge=0, le=MAX_PORT)
    metrics_host: str = Field(default=DEFAULT_METRICS_HOST, min_length=1)
    # The database pool of each process (PostgreSQL): connections kept open, extra ones under
    # load, how long a request waits for a free one; a statement running longer than the
    # statement timeout (a lock wait included) is cancelled by the server (unset: no limit).
    db_pool_size: int = Field(default=DEFAULT_DB_POOL_SIZE, ge=1, le=MAX_DB_POOL_SIZE)
    db_max_overflow: int = Field(default=DEFAULT_DB_MAX_OVERFLOW, ge=0, le=MAX_DB_POOL_SIZE)
    db_pool_timeout_s: float = Field(default=DEFAULT_DB_POOL_TIMEOUT_S, gt=0, le=MAX_DB_TIMEOUT_S)
    db_statement_timeout_s: float | None = Field(
        default=DEFAULT_DB_STATEMENT_TIMEOUT_S, gt=0, le=MAX_DB_TIMEOUT_S
    )
    db_lock_pool_size: int = Field(
        default=DEFAULT_DB_LOCK_POOL_SIZE, ge=1, le=MAX_DB_LOCK_POOL_SIZE
    )
    # Discord shards (discord.py's AutoShardedBot): unset, Discord's recommended count, all in
    # this process; with a count, `shard_ids` picks this process's share (default: all of them).
    # Discord sends DMs to shard 0 only: the process holding shard 0 serves DMs.
    shard_count: int | None = Field(default=None, ge=1, le=MAX_SHARD_COUNT)
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = Field(
        default=None, description="comma list of this process's shards, each below shard_count"
    )

    @field_validator("discord_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("db_statement_timeout_s", mode="before")
    @classmethod
    def _blank_statement_timeout_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _blank_port_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("shard_count", mode="before")
    @classmethod
    def _blank_shard_count_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _comma_separated_shards(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            for part in parts:
                if not part.isdigit():
                    raise ValueError(f"{part!r} is not a shard id (digits only)")
            return tuple(sorted({int(p) for p in parts})) or None
        return value

    @model_validator(mode="after")
    def _shards_within_the_count(self) -> Settings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("OHLORA_SHARD_IDS needs OHLORA_SHARD_COUNT")
        outside = [i for i in self.shard_ids if i >= self.shard_count]
        if outside:
            raise ValueError(
                f"shard ids {outside} are not below OHLORA_SHARD_COUNT={self.shard_count}"
            )
        return self

    @field_validator("sanction_decay_days", mode="before")
    @classmethod
    def _blank_decay_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Asia/Seoul)"
            ) from None
        return value.strip()

    @field_validator("admin_ids", "chat_channel_ids", mode="before")
    @classmethod
    def _comma_separated_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            for part in parts:
                if not part.isdigit():
                    raise ValueError(f"{part!r} is not a Discord id (digits only)")
            return frozenset(int(p) for p in parts)
        return value

    @model_validator(mode="after")
    def _remote_needs_a_server(self) -> Settings:
        if self.generation_backend == "openai" and not self.openai_base_url:
            raise ValueError("OHLORA_GENERATION_BACKEND=openai needs OHLORA_OPENAI_BASE_URL")
        for url in (self.openai_base_url, self.openai_polyglot_base_url):
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return self

    @property
    def remote_base_urls(self) -> dict[str, str]:
        """Completions server per base model (kanana, polyglot)."""
        assert self.openai_base_url is not None
        return {
            "kanana": self.openai_base_url,
            "polyglot": self.openai_polyglot_base_url or self.openai_base_url,
        }

    @property
    def sanction_decay(self) -> timedelta | None:
        days = self.sanction_decay_days
        return None if days is None else timedelta(days=days)

    @property
    def tz(self) -> tzinfo:
        """The zone for time tags and schedules: the setting, else the server's IANA zone."""
        if self.timezone:
            return ZoneInfo(self.timezone)
        return server_zone()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / DATABASE_FILE).resolve()}"

    def local_now(self) -> datetime:
        return datetime.now(self.tz)


def server_zone() -> tzinfo:
    """The server's IANA zone (TZ, then the system's setting), so time tags and the 04:00 job
    follow daylight saving time; a fixed offset taken from `datetime.now()` would not. A
    configuration tzlocal cannot read falls back to UTC, as the C library does."""
    try:
        return get_localzone()
    except (ZoneInfoNotFoundError, ValueError) as exc:
        log.warning("cannot read the server's time zone (%s); using UTC", exc)
        return UTC


def env_name(field: str) -> str:
    """The environment variable an operator sets for a field (its first alias, else prefixed)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{field}".upper()


def _field_of(loc: tuple[Any, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and name in alias.choices:
            return field
    return name


def describe_error(exc: ValidationError) -> str:
    """One line naming the first bad setting; never echoes a secret's value."""
    err = exc.errors(include_url=False, include_input=False)[0]
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if not err.get("loc"):  # a rule across settings; its message names them
        return f"설정 오류 / invalid settings: {message}{more}"
    field = _field_of(tuple(err["loc"]))
    if field == "discord_token":
        message = "invalid value"
    return f"설정 오류 / invalid setting {env_name(field)}: {message}{more}"
