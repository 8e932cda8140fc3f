"""Settings: defaults, parsing, and one clear line for a bad value that never leaks the token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from engine.settings import DEFAULT_MAX_PROMPT_TOKENS, Settings, describe_error

SECRET = "MTAxMDEwMTAxMDEw.SECRET-TOKEN-VALUE"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "DISCORD_TOKEN",
        "DATABASE_URL",
        "OHLORA_TIMEZONE",
        "OHLORA_ADMIN_IDS",
        "OHLORA_MODEL_PRESET",
        "OHLORA_DATA_DIR",
        "OHLORA_MAX_PROMPT_TOKENS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def _error(**env: str) -> str:
    mp = pytest.MonkeyPatch()
    try:
        for k, v in env.items():
            mp.setenv(k, v)
        with pytest.raises(ValidationError) as info:
            Settings()
        return describe_error(info.value)
    finally:
        mp.undo()


def test_defaults() -> None:
    s = Settings()
    assert s.discord_token is None
    assert s.model_preset == "tiny"
    assert s.max_prompt_tokens == DEFAULT_MAX_PROMPT_TOKENS == 48
    assert s.admin_ids == frozenset()
    assert s.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert s.resolved_database_url.endswith("/var/ohlora.db")
    assert s.local_now().tzinfo is not None


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"DISCORD_TOKEN={SECRET}\nOHLORA_TIMEZONE=Asia/Seoul\nOHLORA_ADMIN_IDS=123, 456\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///x.db")
    s = Settings()
    assert s.discord_token is not None and s.discord_token.get_secret_value() == SECRET
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
    assert s.admin_ids == frozenset({123, 456})
    assert s.resolved_database_url == "sqlite+aiosqlite:///x.db"
    assert s.local_now().utcoffset() == timedelta(hours=9)


def test_model_layout_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.model_processes == 2 and s.merge_adapters is True
    monkeypatch.setenv("OHLORA_MODEL_PROCESSES", "3")
    monkeypatch.setenv("OHLORA_MERGE_ADAPTERS", "false")
    s = Settings()
    assert s.model_processes == 3 and s.merge_adapters is False


def test_blank_token_means_console() -> None:
    assert Settings(DISCORD_TOKEN="  ").discord_token is None


@pytest.mark.parametrize(
    ("env", "named", "says"),
    [
        ({"OHLORA_TIMEZONE": "Mars/Olympus"}, "OHLORA_TIMEZONE", "unknown time zone"),
        ({"OHLORA_ADMIN_IDS": "12,abc"}, "OHLORA_ADMIN_IDS", "not a Discord id"),
        ({"OHLORA_CHAT_CHANNEL_IDS": "#general"}, "OHLORA_CHAT_CHANNEL_IDS", "not a Discord id"),
        ({"OHLORA_SHOW_EXPRESSION": "maybe"}, "OHLORA_SHOW_EXPRESSION", "boolean"),
        ({"OHLORA_MODEL_PRESET": "huge"}, "OHLORA_MODEL_PRESET", "tiny"),
        ({"OHLORA_GENERATION_BACKEND": "openai"}, "OHLORA_OPENAI_BASE_URL", "needs"),
        (
            {"OHLORA_GENERATION_BACKEND": "openai", "OHLORA_OPENAI_BASE_URL": "gpu:8000"},
            "invalid settings",
            "not an http(s) URL",
        ),
        ({"OHLORA_BATCH_MAX_SIZE": "0"}, "OHLORA_BATCH_MAX_SIZE", "greater than or equal"),
        ({"OHLORA_MAX_PROMPT_TOKENS": "-3"}, "OHLORA_MAX_PROMPT_TOKENS", "greater than or equal"),
        ({"OHLORA_MEMORY_THRESHOLD": "1.5"}, "OHLORA_MEMORY_THRESHOLD", "less than or equal"),
        ({"OHLORA_MODEL_PROCESSES": "4"}, "OHLORA_MODEL_PROCESSES", "less than or equal to 3"),
        ({"OHLORA_MERGE_ADAPTERS": "sometimes"}, "OHLORA_MERGE_ADAPTERS", "boolean"),
    ],
)
def test_bad_value_gives_one_line_naming_the_setting(
    env: dict[str, str], named: str, says: str
) -> None:
    line = _error(**env)
    assert "\n" not in line
    assert named in line and says in line


def test_token_never_in_the_error() -> None:
    line = _error(DISCORD_TOKEN=SECRET, OHLORA_TIMEZONE="Nowhere/Land")
    assert SECRET not in line and "OHLORA_TIMEZONE" in line


@pytest.fixture
def server_in_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's own zone (what tzlocal reads: TZ first), reloaded on both sides."""
    import tzlocal

    monkeypatch.setenv("TZ", "America/New_York")
    tzlocal.reload_localzone()
    yield
    monkeypatch.undo()
    tzlocal.reload_localzone()


def test_the_default_zone_is_the_servers_iana_zone_and_follows_dst(server_in_new_york) -> None:
    """Not a fixed offset taken at start-up: January and July differ in New York."""
    zone = Settings().tz
    assert zone == ZoneInfo("America/New_York")
    assert zone.utcoffset(datetime(2026, 1, 15, 12)) == timedelta(hours=-5)
    assert zone.utcoffset(datetime(2026, 7, 15, 12)) == timedelta(hours=-4)


def test_an_explicit_zone_wins_over_the_servers(
    server_in_new_york, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OHLORA_TIMEZONE", " Asia/Seoul ")
    s = Settings()
    assert s.tz == ZoneInfo("Asia/Seoul")
    assert s.local_now().utcoffset() == timedelta(hours=9)
