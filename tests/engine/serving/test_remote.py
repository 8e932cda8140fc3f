"""The OpenAI-compatible generation backend: request shape, failures, and selection by setting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.pipeline import Engine, TurnKind
from engine.rules import messages, prompts
from engine.runtime.lm import Generated
from engine.runtime.presets import ROLES
from engine.serving.remote import (
    CONNECT_RETRIES,
    CompletionsGenerator,
    Endpoint,
    RemoteGenerationError,
)
from engine.serving.worker import ModelWorker
from storage import Repository, TurnStatus
from tests.engine.completions_server import OVERSIZE_CHUNK_BYTES, CompletionsServer, Mode

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Asia/Seoul"))
WAIT_S = 30.0  # a bound for "it returned at all": the broken behaviour never returns
SHORT_DEADLINE_S = 0.5
ENGINE_DEADLINE_S = 3.0  # long beside an empty-message turn, short beside WAIT_S
ROLE = "summary"


class CharTokenizer:
    """One token per character: enough for budgets and counts without the demo models."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(map(chr, ids))


class CannedRoles:
    """The server's "model" for mechanics tests: a fixed short answer per prompt."""

    def generate(self, role: str, prompts: list[str], **_: Any) -> list[Generated]:
        return [Generated("좋아요", 3, False) for _ in prompts]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def toy_server() -> AsyncIterator[CompletionsServer]:
    srv = CompletionsServer(CannedRoles())
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def toy_generator() -> Iterator[Callable[..., CompletionsGenerator]]:
    """Builds generators on char tokenizers (every role on ``url``); closes them afterwards."""
    made: list[CompletionsGenerator] = []

    def make(url: str, **options: Any) -> CompletionsGenerator:
        generator = CompletionsGenerator(
            {role: Endpoint(url.rstrip("/"), role) for role in ROLES},
            {role: CharTokenizer() for role in ROLES},  # type: ignore[misc]
            {role: prompts.SUMMARY_END for role in ROLES},
            **options,
        )
        made.append(generator)
        return generator

    yield make
    for generator in made:
        close = getattr(generator, "close", None)
        if close is not None:
            close()


async def ask(
    generator: CompletionsGenerator, prompt: str = "안녕", max_new_tokens: int = 8
) -> Generated:
    """One row of `ROLE`, off the event loop (the test server runs on it)."""
    [g] = await asyncio.wait_for(
        asyncio.to_thread(
            generator.generate, ROLE, [prompt], temperature=0.6, max_new_tokens=max_new_tokens
        ),
        WAIT_S,
    )
    return g


@pytest.fixture
async def server(toy_backend: Any) -> AsyncIterator[CompletionsServer]:
    srv = CompletionsServer(toy_backend.roles)
    await srv.start()
    yield srv
    await srv.stop()


@asynccontextmanager
async def _engine_on(
    server: CompletionsServer, repo: Repository, toy_backend: Any, toy_preset: Any, **options: Any
) -> AsyncIterator[Engine]:
    """The tiny models' engine with generation on `server` (the S-BERTs stay local)."""
    generator = CompletionsGenerator.from_preset(
        toy_preset, {"kanana": server.url, "polyglot": server.url}, **options
    )
    worker = ModelWorker()
    worker.start()
    engine = Engine(
        repo,
        replace(toy_backend, roles=generator),
        worker,
        clock=lambda: NOW,
        max_prompt_tokens=48,
        max_message_chars=2000,
    )
    try:
        yield engine
        await engine.drain()
    finally:
        await worker.stop()
        generator.close()


@pytest.fixture
async def remote_engine(
    repo: Repository, toy_backend: Any, toy_preset: Any, server: CompletionsServer
) -> AsyncIterator[Engine]:
    async with _engine_on(server, repo, toy_backend, toy_preset, api_key="sk-test") as engine:
        yield engine


async def test_every_role_asks_its_model_with_its_stop_marker_budget_and_temperature(
    remote_engine: Engine, server: CompletionsServer, toy_backend: Any
) -> None:
    result = await remote_engine.handle("u1", "c1", "너는 누구야?")
    assert result.kind is TurnKind.REPLY and result.reply
    assert result.background is not None and await result.background is not None
    first = {}
    for body in server.requests:
        first.setdefault(body["model"], body)
    assert set(first) == {"output_message", "summary", "memory", "eyes_mouth_pose"}
    reply = first["output_message"]
    assert (
        reply["stop"] == [prompts.REPLY_END]
        and reply["temperature"] == prompts.REPLY_BASE_TEMPERATURE
    )
    prompt_tokens = toy_backend.roles.count_tokens(reply["prompt"][0])
    assert reply["max_tokens"] == prompts.REPLY_MAX_LENGTH - prompt_tokens  # total budget 128
    assert reply["prompt"] == [prompts.reply_prompt("너는 누구야?")]
    expected = {
        "summary": (
            prompts.SUMMARY_END,
            prompts.SUMMARY_MAX_NEW_TOKENS,
            prompts.SUMMARY_TEMPERATURE,
        ),
        "memory": (prompts.SUMMARY_END, prompts.MEMORY_MAX_NEW_TOKENS, prompts.MEMORY_TEMPERATURE),
        "eyes_mouth_pose": (
            prompts.EXPRESSION_END,
            prompts.EXPRESSION_MAX_NEW_TOKENS,
            prompts.EXPRESSION_TEMPERATURE,
        ),
    }
    for role, (stop, max_tokens, temperature) in expected.items():
        body = first[role]
        assert (body["stop"], body["max_tokens"], body["temperature"]) == (
            [stop],
            max_tokens,
            temperature,
        )
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


def test_an_unreachable_server_is_a_clear_error(toy_preset: Any) -> None:
    generator = CompletionsGenerator.from_preset(
        toy_preset,
        {"kanana": "http://127.0.0.1:9/v1", "polyglot": "http://127.0.0.1:9/v1"},
        timeout_s=2,
    )
    with pytest.raises(RemoteGenerationError, match=r"127\.0\.0\.1:9"):
        generator.generate("summary", ["안녕"], temperature=0.6, max_new_tokens=8)


def test_a_server_without_the_stop_string_in_its_output_still_ends_rows(toy_preset: Any) -> None:
    generator = CompletionsGenerator.from_preset(
        toy_preset, {"kanana": "http://x/v1", "polyglot": "http://x/v1"}
    )
    g = generator._generated(
        "output_message", {"text": "안녕! 반가워", "finish_reason": "stop"}, prompts.REPLY_END, 64
    )
    assert g.hit_end and g.text == "안녕! 반가워" + prompts.REPLY_END
    cut = generator._generated(
        "output_message", {"text": "길고 긴", "finish_reason": "length"}, prompts.REPLY_END, 64
    )
    assert not cut.hit_end and cut.text == "길고 긴"


def test_the_setting_selects_the_remote_backend(
    tiny_preset: Any, server: CompletionsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.backends import load_backend
    from engine.settings import Settings

    monkeypatch.setenv("OHLORA_MODELS_DIR", str(tiny_preset.artifacts.parent))
    monkeypatch.setenv("OHLORA_GENERATION_BACKEND", "openai")
    monkeypatch.setenv("OHLORA_OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OHLORA_OPENAI_BREAKER_FAILURES", "5")
    monkeypatch.setenv("OHLORA_OPENAI_BREAKER_COOLDOWN_S", "12")
    settings = Settings()
    backend = load_backend(settings)
    try:
        assert isinstance(backend.roles, CompletionsGenerator)
        assert backend.roles.endpoints["memory"].base_url == server.url
        [breaker] = backend.roles.breakers.values()
        assert (breaker.failures, breaker.cooldown_s) == (5, 12.0)
    finally:
        backend.close()


# ---- a broken server must not hold the model worker: deadline, size cap, breaker -------------
@pytest.fixture
async def hanging_engine(
    repo: Repository, toy_backend: Any, toy_preset: Any, server: CompletionsServer
) -> AsyncIterator[Engine]:
    """The remote engine with a short request deadline (the server misbehaves per test)."""
    async with _engine_on(
        server, repo, toy_backend, toy_preset, timeout_s=ENGINE_DEADLINE_S
    ) as engine:
        yield engine


@pytest.mark.parametrize("mode", [Mode.SILENT, Mode.TRICKLE])
async def test_a_hanging_server_gives_the_apology_by_the_deadline_and_others_are_served(
    hanging_engine: Engine, server: CompletionsServer, repo: Repository, mode: Mode
) -> None:
    """One user's request hangs on the server (accepted and never answered, or trickled byte
    by byte forever): that user gets the apology once the deadline passes, the event loop
    keeps answering meanwhile, and a turn queued behind the hung one is then answered."""
    server.mode, server.only_if = mode, "멈춰"
    hung = asyncio.create_task(hanging_engine.handle("u1", "c1", "멈춰 있어 봐"))
    await asyncio.wait_for(server.misbehaving.wait(), WAIT_S)  # the hung request is out
    queued = asyncio.create_task(hanging_engine.handle("u2", "c1", "안녕?"))
    empty = await asyncio.wait_for(hanging_engine.handle("u3", "c1", "   "), WAIT_S)
    assert empty.kind is TurnKind.EMPTY and not hung.done()  # served while u1's request hangs
    failed = await asyncio.wait_for(hung, WAIT_S)
    assert failed.kind is TurnKind.FAILED and failed.notice == messages.APOLOGY
    answered = await asyncio.wait_for(queued, WAIT_S)
    assert answered.kind is TurnKind.REPLY and answered.reply
    hung_requests = [b for b in server.requests if any("멈춰" in p for p in b["prompt"])]
    assert len(hung_requests) == 1  # no retry of the row on its own
    [turn] = await repo.turns("u1")
    assert turn.status == TurnStatus.FAILED and "no complete answer within" in (turn.error or "")


async def test_while_the_breaker_is_open_turns_get_the_apology_without_a_request(
    remote_engine: Engine, server: CompletionsServer
) -> None:
    from engine.serving.breaker import DEFAULT_BREAKER_FAILURES

    server.fail_next = 100  # the server is down
    for i in range(DEFAULT_BREAKER_FAILURES):
        failed = await remote_engine.handle(f"u{i}", "c1", "안녕?")
        assert failed.kind is TurnKind.FAILED
    sent = len(server.requests)
    refused = await remote_engine.handle("late", "c1", "안녕?")
    assert refused.kind is TurnKind.FAILED and refused.notice == messages.APOLOGY
    assert len(server.requests) == sent  # failed fast: nothing reached the server


@pytest.mark.parametrize("mode", [Mode.SILENT, Mode.TRICKLE])
async def test_a_server_that_never_finishes_its_answer_fails_the_call_by_its_deadline(
    toy_server: CompletionsServer, toy_generator: Callable[..., CompletionsGenerator], mode: Mode
) -> None:
    """A per-read timeout never trips on a server sending a byte every 50 ms; the deadline
    covers the whole answer."""
    toy_server.mode = mode
    generator = toy_generator(toy_server.url, timeout_s=SHORT_DEADLINE_S)
    with pytest.raises(RemoteGenerationError, match="no complete answer within"):
        await ask(generator)
    assert len(toy_server.requests) == 1


async def test_an_answer_over_the_size_cap_is_refused(
    toy_server: CompletionsServer, toy_generator: Callable[..., CompletionsGenerator]
) -> None:
    from engine.serving.remote import MAX_RESPONSE_BYTES

    toy_server.mode = Mode.OVERSIZED
    toy_server.oversize_bytes = MAX_RESPONSE_BYTES + OVERSIZE_CHUNK_BYTES
    with pytest.raises(RemoteGenerationError, match="bytes"):
        await ask(toy_generator(toy_server.url))


async def test_requests_reuse_one_connection(
    toy_server: CompletionsServer, toy_generator: Callable[..., CompletionsGenerator]
) -> None:
    generator = toy_generator(toy_server.url)
    assert (await ask(generator)).text == "좋아요"
    assert (await ask(generator)).text == "좋아요"
    assert len(toy_server.peers) == 2 and toy_server.peers[0] == toy_server.peers[1]


async def test_the_breaker_fails_fast_while_the_server_is_down_and_probes_after_the_cooldown(
    toy_server: CompletionsServer, toy_generator: Callable[..., CompletionsGenerator]
) -> None:
    from engine.serving.breaker import BreakerState, CircuitOpen

    clock = Clock()
    generator = toy_generator(
        toy_server.url, breaker_failures=2, breaker_cooldown_s=30.0, clock=clock
    )
    [breaker] = generator.breakers.values()
    toy_server.fail_next = 100
    for _ in range(2):
        with pytest.raises(RemoteGenerationError, match="HTTP 500"):
            await ask(generator)
    assert breaker.state is BreakerState.OPEN and len(toy_server.requests) == 2
    with pytest.raises(CircuitOpen):
        await ask(generator)
    clock.now += 29.0
    with pytest.raises(CircuitOpen):
        await ask(generator)
    assert len(toy_server.requests) == 2  # nothing reached the server while open

    clock.now += 1.0  # cooled down: one probe goes through; it fails, so open again at once
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(RemoteGenerationError, match="HTTP 500"):
        await ask(generator)
    assert len(toy_server.requests) == 3
    with pytest.raises(CircuitOpen):
        await ask(generator)

    clock.now += 30.0
    toy_server.fail_next = 0  # the server is back: the probe succeeds and closes the breaker
    assert (await ask(generator)).text == "좋아요"
    assert breaker.state is BreakerState.CLOSED
    assert (await ask(generator)).text == "좋아요"
    assert len(toy_server.requests) == 5


# ---- secrets ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(
    toy_server: CompletionsServer, toy_generator: Callable[..., CompletionsGenerator], status: int
) -> None:
    elsewhere = CompletionsServer(CannedRoles())
    await elsewhere.start()
    try:
        port = elsewhere.url.rsplit(":", 1)[1].split("/")[0]
        toy_server.mode = Mode.REDIRECT
        toy_server.redirect_status = status
        toy_server.redirect_to = f"http://localhost:{port}/elsewhere/v1/completions"
        generator = toy_generator(toy_server.url, api_key="sk-secret")
        with pytest.raises(RemoteGenerationError) as failed:
            await ask(generator)
        assert toy_server.headers[0]["Authorization"] == "Bearer sk-secret"
        assert elsewhere.headers == [] and elsewhere.requests == []
        assert "redirect, not followed" in str(failed.value)
    finally:
        await elsewhere.stop()


async def test_errors_and_logs_name_the_server_without_its_credentials_or_query(
    toy_server: CompletionsServer,
    toy_generator: Callable[..., CompletionsGenerator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The message ends up in turns.error: no password or query token in it, nor in the log."""
    toy_server.fail_next = 100
    host_port = toy_server.url.split("//", 1)[1].split("/")[0]
    generator = toy_generator(f"http://user:hunter2@{host_port}/v1?api-key=hunter3")
    errors: list[Exception] = []
    with caplog.at_level(logging.INFO):
        for _ in range(4):  # three failures, then the open breaker's refusal
            with pytest.raises(Exception) as failed:
                await ask(generator)
            errors.append(failed.value)
    logged = [
        r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp")
    ]  # not the test server's access log
    for text in [repr(e) for e in errors] + logged:
        assert "hunter2" not in text and "hunter3" not in text and "user:" not in text, text
    assert host_port in str(errors[0]) and host_port in str(errors[-1])
    assert "circuit open" in str(errors[-1])


def test_a_key_over_plain_http_to_another_machine_is_warned_about_once(
    toy_generator: Callable[..., CompletionsGenerator], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="engine.serving.remote"):
        toy_generator("http://gpu.example:8000/v1", api_key="sk-secret")
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "gpu.example" in warning.getMessage() and "sk-secret" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine.serving.remote"):
        toy_generator("https://gpu.example/v1", api_key="sk-secret")
        toy_generator("http://127.0.0.1:8000/v1", api_key="sk-secret")
        toy_generator("http://localhost:8000/v1", api_key="sk-secret")
        toy_generator("http://gpu.example:8000/v1")  # no key to leak
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []


# ---- the role's budget --------------------------------------------------------------------------
async def test_a_server_answering_past_the_budget_is_cut_to_it(
    toy_server: CompletionsServer, toy_generator: Callable[..., CompletionsGenerator]
) -> None:
    toy_server.mode = Mode.OVER_BUDGET  # 24 tokens for a budget of 8
    g = await ask(toy_generator(toy_server.url), max_new_tokens=8)
    assert len(CharTokenizer()(g.text)["input_ids"]) <= 8 and g.new_tokens <= 8
    assert g.text == "가" * 8 and not g.hit_end


def test_a_refused_connection_is_tried_a_bounded_number_of_times(
    toy_generator: Callable[..., CompletionsGenerator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a connection is retried (nothing was sent, so nothing can run twice), a
    bounded number of times; then the call fails as a server that is down."""
    import httpcore._backends.sync as sync_backend

    attempts: list[tuple[str, int]] = []

    def refuse(address: tuple[str, int], *_: Any, **__: Any) -> Any:
        attempts.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(sync_backend.socket, "create_connection", refuse)
    generator = toy_generator("http://127.0.0.1:8000/v1", timeout_s=WAIT_S)
    with pytest.raises(RemoteGenerationError, match="ConnectError"):
        generator.generate(ROLE, ["안녕"], temperature=0.6, max_new_tokens=8)
    assert len(attempts) == 1 + CONNECT_RETRIES
