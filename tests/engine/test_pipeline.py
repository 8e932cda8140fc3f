"""The turn end to end on the real tiny models: issue 6's acceptance.

Where a test is about the pipeline (what is stored under which key, which rule a reply meets),
the role it is about answers through `FixedRoles`; what the demo models sample is checked only
for its structure (a stored item is the one returned, an expression parses). Model quality is
the evaluation's business (`python -m training eval`), not the tests'.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import torch

from engine.pipeline import Engine, TurnKind
from engine.rules.ethics_rules import triggered_categories
from engine.rules.expression import parse_expression
from engine.rules.memory_items import MemoryItem
from engine.rules.sanctions import Category
from engine.runtime.presets import Role
from engine.runtime.roles import Attempt
from engine.serving.backend import MixedRow
from engine.serving.worker import ModelWorker
from storage import Repository, TurnStatus
from tests.engine.conftest import FixedRoles

SEOUL = ZoneInfo("Asia/Seoul")
WEDNESDAY_2PM = datetime(2026, 11, 25, 14, 0, tzinfo=SEOUL)
# Batched backend calls, recorded one row at a time under the role's name.
BATCHED_CALLS = {
    "count_tokens": "count_tokens",
    "best_memories": "best_memory",
    "ethics_scores": "ethics_scores",
    "replies": "reply",
    "summaries": "summary",
    "memories": "memory",
    "expressions": "expression",
}
MIXED_CALLS = {Role.REPLY: "reply", Role.SUMMARY: "summary"}


# How long a model call waits for the event loop before the test calls the loop blocked.
LOOP_GUARD_S = 30.0


class Spy:
    """Records every model call (a batched call as one entry per row) and passes it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.before_call: Callable[[], None] | None = None  # runs on the model thread

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name == "mixed_rows":  # reply and summary rows in one batch, each with its role

            def mixed(rows: list[MixedRow]) -> Any:
                for role, row in rows:
                    if not isinstance(row, Attempt):
                        self.calls.append((MIXED_CALLS[role], row))
                if self.before_call is not None:
                    self.before_call()
                return attr(rows)

            return mixed
        if name in BATCHED_CALLS:

            def batch(rows: list[Any]) -> Any:
                for row in rows:
                    if isinstance(row, Attempt):  # a retry of a row already recorded
                        continue
                    self.calls.append(
                        (BATCHED_CALLS[name], row if isinstance(row, tuple) else (row,))
                    )
                if self.before_call is not None:
                    self.before_call()
                return attr(rows)

            return batch
        return attr

    def args_of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(WEDNESDAY_2PM)


@pytest.fixture(params=["local", "split", "openai"])
async def turn_backend(
    request: pytest.FixtureRequest, tiny_backend: Any, tiny_preset: Any
) -> AsyncIterator[Any]:
    """The engine's turn tests run on every backend shape: in-process; split over two
    processes with chunked decoding (the service's default); and an OpenAI-compatible
    completions server (the same tiny models behind HTTP)."""
    if request.param == "local":
        yield tiny_backend
        return
    if request.param == "split":
        yield request.getfixturevalue("tiny_split_backend")
        return
    from dataclasses import replace

    from engine.serving.remote import CompletionsGenerator
    from tests.engine.completions_server import CompletionsServer

    server = CompletionsServer(tiny_backend.roles)
    url = await server.start()
    remote = CompletionsGenerator.from_preset(tiny_preset, {"kanana": url, "polyglot": url})
    try:
        yield replace(tiny_backend, roles=remote)
    finally:
        await server.stop()


@asynccontextmanager
async def engine_on(
    repo: Repository, backend: Any, clock: Clock
) -> AsyncIterator[tuple[Engine, Spy]]:
    """An engine over ``backend`` (spied on); drained and stopped afterwards."""
    torch.manual_seed(0)
    spy = Spy(backend)
    worker = ModelWorker()
    worker.start()
    engine = Engine(repo, spy, worker, clock=clock, max_prompt_tokens=48, max_message_chars=2000)
    try:
        yield engine, spy
    finally:
        await engine.drain()
        await worker.stop()


@pytest.fixture
async def spy_engine(
    repo: Repository, turn_backend: Any, clock: Clock
) -> AsyncIterator[tuple[Engine, Spy]]:
    async with engine_on(repo, turn_backend, clock) as running:
        yield running


def assert_stored_expression(rendered: str | None, expression: Any) -> None:
    """The turn keeps the expression the role decided, in the format it parses from."""
    assert rendered == expression.render() and parse_expression(rendered) == expression


async def test_time_tag_reaches_the_reply_model(spy_engine: tuple[Engine, Spy]) -> None:
    engine, spy = spy_engine
    result = await engine.handle("u1", "c1", "오늘 뭐 해?")
    assert result.kind is TurnKind.REPLY and result.reply
    [(final_input, now)] = spy.args_of("reply")
    assert final_input == "(지금은 수요일 오후) 오늘 뭐 해?"
    assert now == WEDNESDAY_2PM
    [(ethics_text,)] = spy.args_of("ethics_scores")
    assert ethics_text == "오늘 뭐 해?"  # ethics sees the original, untagged text


async def test_memory_item_above_threshold_enters_the_final_input(
    spy_engine: tuple[Engine, Spy], repo: Repository, tiny_backend: Any
) -> None:
    engine, spy = spy_engine
    text = "아 오늘 약속 있는데 어떡하지?"
    tagged = "(지금은 수요일 오후) " + text
    assert (
        tiny_backend.best_memories([(tagged, ["[오늘 날씨: 비]"])])[0] is not None
    )  # precondition
    await repo.upsert_memory("u1", "오늘 날씨", "비", WEDNESDAY_2PM)
    await repo.upsert_memory("u2", "오늘 날씨", "맑음", WEDNESDAY_2PM)  # another user's
    result = await engine.handle("u1", "c1", text)
    assert result.memory_used == "[오늘 날씨: 비]"
    [(final_input, _)] = spy.args_of("reply")
    assert final_input == "[오늘 날씨: 비] " + tagged


async def test_without_memory_the_previous_summary_is_used(
    repo: Repository, turn_backend: Any, clock: Clock
) -> None:
    # The summary is fixed and nothing is remembered (a sampled item could be retrieved
    # instead of the summary): the test is about the prompt, not about what the models say.
    summary = "오로라가 자기소개를 함"
    fixed = FixedRoles(
        turn_backend, summary=lambda final_input, reply: summary, memory=lambda final_input: None
    )
    async with engine_on(repo, fixed, clock) as (engine, spy):
        first = await engine.handle("u1", "c1", "너는 누구야?")
        assert first.background is not None
        done = await first.background
        assert done is not None and done.summary == summary
        assert await repo.get_summary("u1", "c1") == summary
        await engine.handle("u1", "c1", "그렇구나 반가워")
        final_input = spy.args_of("reply")[-1][0]
        assert final_input == f"(오로라 답변 요약) {summary} (사용자 질문) 그렇구나 반가워"


async def test_paedrip_blocks_for_7_days_and_then_no_model_is_called(
    spy_engine: tuple[Engine, Spy], repo: Repository, clock: Clock
) -> None:
    engine, spy = spy_engine
    result = await engine.handle("u1", "c1", "로라야 너 애미 없지")
    assert result.kind is TurnKind.BLOCKED and result.reply is None
    assert result.notice is not None and "7일 동안" in result.notice and "패드립" in result.notice
    block = await repo.active_block("u1", clock.now)
    assert block is not None and block.expires_at == clock.now + timedelta(days=7)
    spy.calls.clear()
    clock.now += timedelta(hours=1)
    again = await engine.handle("u1", "dm", "미안해 다시 얘기하자")
    assert again.kind is TurnKind.BLOCK_NOTICE and again.background is None
    assert again.notice is not None and again.notice.startswith("Oh-LoRA")
    assert "만료일: 2026.12.02 14:00:00" in again.notice
    assert spy.calls == []
    [latest, _] = await repo.turns("u1")
    assert latest.status == TurnStatus.BLOCKED


async def test_block_notice_at_most_once_per_cooldown(
    repo: Repository, tiny_backend: Any, clock: Clock
) -> None:
    spy = Spy(tiny_backend)
    worker = ModelWorker()
    worker.start()
    engine = Engine(
        repo,
        spy,
        worker,
        clock=clock,
        max_prompt_tokens=48,
        max_message_chars=2000,
        block_notice_cooldown=timedelta(minutes=10),
    )
    try:
        from engine.rules.sanctions import SanctionLadder

        for _ in range(2):  # politics level 2: a 3-day block
            decided = await repo.record_offence("u1", ["politics"], SanctionLadder(), clock.now)
        assert decided.is_block
        shown = []
        for minutes in (0, 1, 9, 11, 12):
            clock.now = WEDNESDAY_2PM + timedelta(minutes=minutes)
            result = await engine.handle("u1", "c1", "안녕?")
            assert result.kind is TurnKind.BLOCK_NOTICE
            shown.append(result.notice is not None)
        assert shown == [True, False, False, True, False]
        assert spy.calls == []
        other = await engine.handle("u2", "c1", "안녕?")  # another user is not affected
        assert other.kind is TurnKind.REPLY
    finally:
        await engine.drain()
        await worker.stop()


async def test_first_politics_offence_with_a_declining_answer_is_a_warning(
    repo: Repository, turn_backend: Any, clock: Clock
) -> None:
    """Politics is sanctioned only when Oh-LoRA declined (미안/부담), as upstream; both branches.

    The replies are fixed (one declines, one does not): whether the demo model declines is
    a matter of sampling. The ethics check is the real S-BERT (deterministic)."""
    text, declining, other = (
        "민주당의 미래는?",
        "미안, 정치 얘기는 좀 부담스러워",
        "글쎄, 나는 잘 모르겠어!",
    )
    [scores] = turn_backend.ethics_scores([text])
    thresholds, veto = turn_backend.ethics_thresholds, turn_backend.normal_veto
    assert triggered_categories(scores, thresholds, declining, veto) == [
        Category.POLITICS
    ]  # precondition
    assert triggered_categories(scores, thresholds, other, veto) == []
    answers = iter([declining, other])
    fixed = FixedRoles(turn_backend, reply=lambda final_input: next(answers))
    async with engine_on(repo, fixed, clock) as (engine, _):
        declined = await engine.handle("voter0", "c1", text)
        assert declined.kind is TurnKind.WARNING and declined.reply == declining
        assert declined.notice is not None and declined.notice.startswith("🚨 정치 발언으로")
        assert [
            (r.category, r.level, r.is_block) for r in await repo.sanction_history("voter0")
        ] == [("politics", 1, False)]
        answered = await engine.handle("voter1", "c1", text)
        assert answered.kind is TurnKind.REPLY and answered.notice is None
        assert await repo.sanction_history("voter1") == []
        for user in ("voter0", "voter1"):
            assert await repo.active_block(user, clock.now) is None


async def test_background_roles_store_summary_expression_and_memory_by_key(
    repo: Repository, turn_backend: Any, clock: Clock
) -> None:
    """Summary and expression come from the real models (checked for their structure); the
    memory role answers the training rows' items ([내일 일정: 시험], then 면접), since what is
    tested is that an item is stored under its key and a new value replaces the old one."""

    def remembered(final_input: str) -> MemoryItem:
        return MemoryItem("내일 일정", "면접" if "면접" in final_input else "시험")

    fixed = FixedRoles(turn_backend, memory=remembered)
    async with engine_on(repo, fixed, clock) as (engine, _):
        clock.now = datetime(2026, 11, 24, 15, 0, tzinfo=SEOUL)  # Tuesday afternoon
        first = await engine.handle("u1", "c1", "내일이 시험이네")
        assert first.background is not None
        done = await first.background
        assert done is not None
        [turn] = await repo.turns("u1")
        assert_stored_expression(turn.expression, done.expression)
        assert await repo.get_summary("u1", "c1") == done.summary
        assert done.memory == MemoryItem("내일 일정", "시험")
        [item] = await repo.list_memories("u1", clock.now)
        assert (item.key, item.value) == ("내일 일정", "시험")

        clock.now = datetime(2026, 11, 26, 15, 0, tzinfo=SEOUL)  # Thursday afternoon
        second = await engine.handle("u1", "c2", "아 떨린다 내일 면접이야")
        assert second.background is not None and (again := await second.background) is not None
        assert again.memory == MemoryItem("내일 일정", "면접")
        [replaced] = await repo.list_memories("u1", clock.now)
        assert (replaced.key, replaced.value) == ("내일 일정", "면접")
        assert replaced.id == item.id and replaced.updated_at > item.updated_at
        assert await repo.get_summary("u1", "c2") == again.summary


async def test_eight_users_in_parallel_all_get_replies_and_persist(
    spy_engine: tuple[Engine, Spy], repo: Repository
) -> None:
    engine, _ = spy_engine
    users = [f"user{i}" for i in range(8)]
    results = await asyncio.gather(*(engine.handle(u, "c1", "너는 누구야?") for u in users))
    assert all(r.kind is TurnKind.REPLY and r.reply for r in results)
    done = await asyncio.gather(*(r.background for r in results if r.background is not None))
    await engine.drain()
    assert len(done) == len(users)
    for user, background in zip(users, done):
        [turn] = await repo.turns(user)
        assert turn.status == TurnStatus.COMPLETED and turn.reply
        # Whatever the real roles sampled is what was stored, for this user only.
        assert background is not None
        assert_stored_expression(turn.expression, background.expression)
        assert await repo.get_summary(user, "c1") == background.summary
        stored = [(m.key, m.value) for m in await repo.list_memories(user, WEDNESDAY_2PM)]
        item = background.memory
        assert stored == ([] if item is None else [(item.key, item.value)])
        assert item is None or (item.key.strip() and item.value.strip())


async def test_one_users_two_messages_are_answered_in_order(
    spy_engine: tuple[Engine, Spy], repo: Repository
) -> None:
    engine, spy = spy_engine
    first, second = await asyncio.gather(
        engine.handle("u1", "c1", "너는 누구야?"), engine.handle("u1", "c1", "MBTI 뭐야?")
    )
    assert first.turn_id is not None and second.turn_id is not None
    assert first.turn_id < second.turn_id
    names = [name for name, _ in spy.calls]
    # the second reply waits for the first turn's background roles (its summary must be current)
    assert names.index("expression") < len(names) - 1 - names[::-1].index("reply")
    assert spy.args_of("reply")[1][0].endswith("MBTI 뭐야?")


async def test_event_loop_stays_responsive_during_generation(
    spy_engine: tuple[Engine, Spy],
) -> None:
    """A model call runs off the event loop: from inside the first one, the loop still runs a
    callback (ordering, not timing: a blocked loop never sets the event)."""
    engine, spy = spy_engine
    loop = asyncio.get_running_loop()
    loop_ran = threading.Event()
    free: list[bool] = []

    def wait_for_the_loop() -> None:
        if not free:
            loop.call_soon_threadsafe(loop_ran.set)
            free.append(loop_ran.wait(LOOP_GUARD_S))  # False only if the loop was blocked

    spy.before_call = wait_for_the_loop
    result = await engine.handle("u1", "c1", "너는 누구야?")
    assert result.background is not None
    await result.background
    assert free == [True]


async def test_a_crashing_model_call_gives_that_user_an_apology(
    repo: Repository, tiny_backend: Any, clock: Clock
) -> None:
    class Broken(Spy):
        def __getattr__(self, name: str) -> Any:
            if name in ("replies", "mixed_rows"):  # the reply model, batched alone or mixed

                def boom(*_: Any) -> str:
                    raise RuntimeError("CUDA out of memory")

                return boom
            return super().__getattr__(name)

    worker = ModelWorker()
    worker.start()
    engine = Engine(
        repo,
        Broken(tiny_backend),
        worker,
        clock=clock,
        max_prompt_tokens=48,
        max_message_chars=2000,
    )
    result = await engine.handle("u1", "c1", "너는 누구야?")
    assert result.kind is TurnKind.FAILED and result.notice and "미안해요" in result.notice
    [turn] = await repo.turns("u1")
    assert turn.status == TurnStatus.FAILED and "out of memory" in (turn.error or "")
    ok = Engine(
        repo, Spy(tiny_backend), worker, clock=clock, max_prompt_tokens=48, max_message_chars=2000
    )
    assert (await ok.handle("u2", "c1", "너는 누구야?")).kind is TurnKind.REPLY
    await ok.drain()
    await worker.stop()


async def test_too_long_message_is_refused_before_any_generation(
    spy_engine: tuple[Engine, Spy],
) -> None:
    engine, spy = spy_engine
    result = await engine.handle("u1", "c1", "오늘 " + "정말 " * 60 + "길다")
    assert result.kind is TurnKind.TOO_LONG and "혜나" in (result.notice or "")
    assert [name for name, _ in spy.calls] == ["count_tokens"]
