"""The OpenAI-compatible generation backend: request shape, failures, and selection by setting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine import prompts
from engine.pipeline import Engine, TurnKind
from engine.remote import CompletionsGenerator, RemoteGenerationError
from engine.worker import ModelWorker
from storage import Repository, TurnStatus
from tests.engine.completions_server import CompletionsServer

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Asia/Seoul"))


@pytest.fixture
async def server(tiny_backend: Any) -> AsyncIterator[CompletionsServer]:
    srv = CompletionsServer(tiny_backend.roles)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def remote_engine(repo: Repository, tiny_backend: Any, tiny_preset: Any,
                        server: CompletionsServer) -> AsyncIterator[Engine]:
    generator = CompletionsGenerator.from_preset(
        tiny_preset, {"kanana": server.url, "polyglot": server.url}, api_key="sk-test")
    worker = ModelWorker()
    worker.start()
    engine = Engine(repo, replace(tiny_backend, roles=generator), worker, clock=lambda: NOW,
                    max_prompt_tokens=48, max_message_chars=2000)
    yield engine
    await engine.drain()
    await worker.stop()


async def test_every_role_asks_its_model_with_its_stop_marker_budget_and_temperature(
    remote_engine: Engine, server: CompletionsServer, tiny_backend: Any
) -> None:
    result = await remote_engine.handle("u1", "c1", "너는 누구야?")
    assert result.kind is TurnKind.REPLY and result.reply
    assert result.background is not None and await result.background is not None
    first = {}
    for body in server.requests:
        first.setdefault(body["model"], body)
    assert set(first) == {"output_message", "summary", "memory", "eyes_mouth_pose"}
    reply = first["output_message"]
    assert reply["stop"] == [prompts.REPLY_END] and reply["temperature"] == prompts.REPLY_BASE_TEMPERATURE
    prompt_tokens = tiny_backend.roles.count_tokens(reply["prompt"][0])
    assert reply["max_tokens"] == prompts.REPLY_MAX_LENGTH - prompt_tokens  # total budget 128
    assert reply["prompt"] == [prompts.reply_prompt("너는 누구야?")]
    expected = {
        "summary": (prompts.SUMMARY_END, prompts.SUMMARY_MAX_NEW_TOKENS, prompts.SUMMARY_TEMPERATURE),
        "memory": (prompts.SUMMARY_END, prompts.MEMORY_MAX_NEW_TOKENS, prompts.MEMORY_TEMPERATURE),
        "eyes_mouth_pose": (prompts.EXPRESSION_END, prompts.EXPRESSION_MAX_NEW_TOKENS,
                            prompts.EXPRESSION_TEMPERATURE),
    }
    for role, (stop, max_tokens, temperature) in expected.items():
        body = first[role]
        assert (body["stop"], body["max_tokens"], body["temperature"]) == ([stop], max_tokens, temperature)
        assert body["top_k"] == 50 and body["include_stop_str_in_output"] is True


async def test_a_dead_server_gives_that_user_an_apology_and_the_next_turn_works(
    remote_engine: Engine, server: CompletionsServer, repo: Repository
) -> None:
    server.fail_next = 1
    failed = await remote_engine.handle("u1", "c1", "안녕?")
    assert failed.kind is TurnKind.FAILED and failed.notice and "미안해요" in failed.notice
    [turn] = await repo.turns("u1")
    assert turn.status == TurnStatus.FAILED and "engine dead" not in (turn.reply or "")
    assert "completions server" in (turn.error or "")
    ok = await remote_engine.handle("u2", "c1", "안녕?")
    assert ok.kind is TurnKind.REPLY


def test_an_unreachable_server_is_a_clear_error(tiny_preset: Any) -> None:
    generator = CompletionsGenerator.from_preset(
        tiny_preset, {"kanana": "http://127.0.0.1:9/v1", "polyglot": "http://127.0.0.1:9/v1"},
        timeout_s=2)
    with pytest.raises(RemoteGenerationError, match="127.0.0.1:9"):
        generator.generate("summary", ["안녕"], temperature=0.6, max_new_tokens=8)


def test_a_server_without_the_stop_string_in_its_output_still_ends_rows(tiny_preset: Any) -> None:
    generator = CompletionsGenerator.from_preset(tiny_preset, {"kanana": "http://x/v1", "polyglot": "http://x/v1"})
    g = generator._generated("output_message", {"text": "안녕! 반가워", "finish_reason": "stop"},
                             prompts.REPLY_END)
    assert g.hit_end and g.text == "안녕! 반가워" + prompts.REPLY_END
    cut = generator._generated("output_message", {"text": "길고 긴", "finish_reason": "length"},
                               prompts.REPLY_END)
    assert not cut.hit_end and cut.text == "길고 긴"


def test_the_setting_selects_the_remote_backend(tiny_preset: Any, server: CompletionsServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.hub import load_backend
    from engine.settings import Settings

    monkeypatch.setenv("OHLORA_MODELS_DIR", str(tiny_preset.artifacts.parent))
    monkeypatch.setenv("OHLORA_GENERATION_BACKEND", "openai")
    monkeypatch.setenv("OHLORA_OPENAI_BASE_URL", server.url)
    settings = Settings()
    backend = load_backend(settings)
    assert isinstance(backend.roles, CompletionsGenerator)
    assert backend.roles.endpoints["memory"].base_url == server.url
