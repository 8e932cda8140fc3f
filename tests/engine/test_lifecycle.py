"""What a user's data and the engine's own state go through over time (issue 15, findings 5, 6
and 9): the memory cap and its evictions, the embedding cache, deletion and reset racing a
turn's background roles, and per-process state that stays bounded.

A deterministic stand-in backend: these are tests of the pipeline, not of what a model samples.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, ClassVar

import pytest
import torch

from engine import pipeline
from engine.pipeline import Engine, TurnKind
from engine.rules.expression import FALLBACK_EXPRESSION
from engine.rules.memory_items import MAX_MEMORY_KEY_CHARS, MAX_MEMORY_VALUE_CHARS, MemoryItem
from engine.rules.sanctions import SanctionLadder
from engine.serving.worker import ModelWorker
from storage import Repository
from tests.engine.conftest import WEDNESDAY_2PM

SUMMARY = "오로라가 인사함"


class Clock:
    def __init__(self) -> None:
        self.now = WEDNESDAY_2PM

    def __call__(self) -> Any:
        return self.now


class Toy:
    """The Backend protocol, deterministic: every reply is the same, memory items come from
    `next_items` (one per turn), retrieval picks the first item whose value the prompt names.

    `summary_gate` holds the summary role (a background role) until the test releases it."""

    mixes_roles = False
    ethics_thresholds: ClassVar[dict[str, float]] = {}
    normal_veto = 0.5

    def __init__(self) -> None:
        self.next_items: list[MemoryItem | None] = []
        self.summary_gate: threading.Event | None = None
        self.summary_entered = threading.Event()

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def best_memories(self, rows: list[tuple[str, list[str]]]) -> list[tuple[int, float] | None]:
        def pick(query: str, items: list[str]) -> tuple[int, float] | None:
            for i, item in enumerate(items):
                if item.split(": ")[1].rstrip("]") in query:
                    return i, 1.0
            return None

        return [pick(query, items) for query, items in rows]

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return [{"일반": 1.0} for _ in texts]

    def replies(self, rows: list[Any]) -> list[str]:
        return ["응, 그렇구나!" for _ in rows]

    def summaries(self, rows: list[Any]) -> list[str]:
        self.summary_entered.set()
        if self.summary_gate is not None:
            assert self.summary_gate.wait(60), "the test never released the summary role"
        return [SUMMARY for _ in rows]

    def memories(self, rows: list[Any]) -> list[MemoryItem | None]:
        return [self.next_items.pop(0) if self.next_items else None for _ in rows]

    def expressions(self, rows: list[Any]) -> list[Any]:
        return [FALLBACK_EXPRESSION for _ in rows]

    def close(self) -> None:
        pass


@pytest.fixture
def toy() -> Toy:
    return Toy()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def engine(repo: Repository, toy: Toy, clock: Clock) -> AsyncIterator[Engine]:
    worker = ModelWorker()
    worker.start()
    made = Engine(
        repo,
        toy,
        worker,
        clock=clock,
        max_prompt_tokens=48,
        max_message_chars=2000,
        max_memory_items=2,
        block_notice_cooldown=timedelta(minutes=10),
    )
    yield made
    await made.drain()
    await worker.stop()


async def turn(engine: Engine, text: str, user: str = "u1") -> Any:
    result = await engine.handle(user, "c1", text)
    if result.background is not None:
        await result.background
    return result


# ---- finding 5: the item cap, the used mark, the length caps -------------------------------
async def test_a_user_at_the_item_cap_gets_the_least_recently_used_evicted(
    engine: Engine, toy: Toy, repo: Repository, clock: Clock
) -> None:
    toy.next_items = [MemoryItem("좋아하는 꽃", "백합"), MemoryItem("좋아하는 가수", "아이유")]
    await turn(engine, "나 백합 좋아해")
    clock.now += timedelta(minutes=1)
    await turn(engine, "아이유 노래 좋아")
    clock.now += timedelta(minutes=1)
    used = await turn(engine, "백합 사러 갈까?")  # retrieval picks the flower: now recently used
    assert used.memory_used == "[좋아하는 꽃: 백합]"
    [flower] = [m for m in await repo.list_memories("u1", clock.now) if m.key == "좋아하는 꽃"]
    assert flower.last_used_at == clock.now
    assert engine.take_evictions("u1") == 0

    toy.next_items = [MemoryItem("오늘 일정", "시험")]
    clock.now += timedelta(minutes=1)
    await turn(engine, "오늘 시험이야")

    assert {m.key for m in await repo.list_memories("u1", clock.now)} == {
        "좋아하는 꽃",
        "오늘 일정",
    }
    assert engine.take_evictions("u1") == 1  # told once (by /memory), then cleared
    assert engine.take_evictions("u1") == 0


@pytest.mark.parametrize("too_long", ["key", "value"])
async def test_a_memory_item_over_the_length_caps_is_not_stored(
    engine: Engine, toy: Toy, repo: Repository, clock: Clock, too_long: str
) -> None:
    toy.next_items = [
        MemoryItem("키" * (MAX_MEMORY_KEY_CHARS + 1), "값")
        if too_long == "key"
        else MemoryItem("좋아하는 것", "값" * (MAX_MEMORY_VALUE_CHARS + 1))
    ]
    result = await engine.handle("u1", "c1", "기억해 줘")
    assert result.background is not None
    done = await result.background
    assert done is not None and done.memory is None
    assert await repo.list_memories("u1", clock.now) == []


# ---- finding 5: the item embeddings are cached where the S-BERT is ----------------------------
class CountingEncoder:
    """A SentenceTransformer stand-in: unit vectors from character counts; records each text."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: list[str], **_: Any) -> torch.Tensor:
        self.encoded.extend(texts)
        rows = torch.zeros(len(texts), 64)
        for r, text in enumerate(texts):
            for c in text:
                rows[r, ord(c) % 64] += 1.0
        return torch.nn.functional.normalize(rows, dim=1)


def counting_backend() -> tuple[Any, CountingEncoder]:
    from engine.runtime.morphemes import PREPROCESS_NONE
    from engine.runtime.sbert import MemoryRetriever, _Encoder
    from engine.serving.hub import LocalBackend

    model = CountingEncoder()
    retriever = MemoryRetriever(_Encoder(model=model, preprocess=PREPROCESS_NONE))
    return LocalBackend(roles=None, ethics=None, retriever=retriever, memory_threshold=0.0), model


def test_retrieval_encodes_an_unchanged_item_once_and_a_changed_one_again() -> None:
    backend, model = counting_backend()
    items = ["[좋아하는 꽃: 백합]", "[오늘 일정: 시험]"]
    first = backend.best_memories([("백합 예쁘다", items)])
    assert sorted(model.encoded) == sorted(["백합 예쁘다", *items])
    model.encoded.clear()

    again = backend.best_memories([("시험 망했어", items), ("꽃 사러 가자", items)])
    assert sorted(model.encoded) == ["꽃 사러 가자", "시험 망했어"]  # the items come from the cache
    model.encoded.clear()

    changed = ["[좋아하는 꽃: 장미]", "[오늘 일정: 시험]"]
    backend.best_memories([("장미 예쁘다", changed)])
    assert sorted(model.encoded) == sorted(["장미 예쁘다", "[좋아하는 꽃: 장미]"])
    # and the picks are the uncached retriever's own
    for query, rows, got in [("백합 예쁘다", items, first[0]), ("시험 망했어", items, again[0])]:
        assert got == backend.retriever.best(query, rows, 0.0)


def test_the_embedding_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.serving import hub

    monkeypatch.setattr(hub, "MAX_CACHED_ITEM_EMBEDDINGS", 3)
    backend, _ = counting_backend()
    items = [f"[기억 {i}: 값 {i}]" for i in range(5)]
    [best] = backend.best_memories([("값 4", items)])  # more items than the cache holds
    assert best == backend.retriever.best("값 4", items, 0.0)
    assert len(backend._item_embeddings) == 3


# ---- finding 6: deletion and reset wait for the user's background roles -------------------------
async def test_forget_me_during_a_background_role_leaves_nothing_behind(
    engine: Engine, toy: Toy, repo: Repository, clock: Clock
) -> None:
    toy.summary_gate = threading.Event()
    toy.next_items = [MemoryItem("좋아하는 꽃", "백합")]
    result = await engine.handle("u1", "c1", "나 백합 좋아해")
    assert result.kind is TurnKind.REPLY and result.background is not None
    await asyncio.to_thread(toy.summary_entered.wait, 60)  # the summary role is running

    deletion = asyncio.create_task(engine.forget_user("u1"))
    await asyncio.wait_for(_until(lambda: engine._locks.waiting("u1") == 2), 30)  # it waits
    assert not deletion.done()
    toy.summary_gate.set()
    report = await asyncio.wait_for(deletion, 60)

    assert result.background.done()  # the background roles finished before the deletion
    assert report.turns == 1 and report.memories == 1 and report.conversations == 1
    assert await repo.get_summary("u1", "c1") == ""
    assert await repo.turns("u1") == []
    assert await repo.list_memories("u1", clock.now) == []


async def test_reset_during_a_background_role_leaves_no_summary(
    engine: Engine, toy: Toy, repo: Repository
) -> None:
    toy.summary_gate = threading.Event()
    result = await engine.handle("u1", "c1", "안녕")
    await asyncio.to_thread(toy.summary_entered.wait, 60)
    reset = asyncio.create_task(engine.reset_conversation("u1", "c1"))
    await asyncio.wait_for(_until(lambda: engine._locks.waiting("u1") == 2), 30)
    toy.summary_gate.set()
    await asyncio.wait_for(reset, 60)
    assert result.background is not None and result.background.done()
    assert await repo.get_summary("u1", "c1") == ""


@pytest.mark.parametrize("forget", ["one", "all"])
async def test_forget_during_a_background_role_leaves_the_item_forgotten(
    engine: Engine, toy: Toy, repo: Repository, clock: Clock, forget: str
) -> None:
    toy.summary_gate = threading.Event()
    toy.next_items = [MemoryItem("좋아하는 꽃", "백합")]
    result = await engine.handle("u1", "c1", "나 백합 좋아해")
    await asyncio.to_thread(toy.summary_entered.wait, 60)  # the memory role has answered
    forgetting = asyncio.create_task(
        engine.forget_memory("u1", "좋아하는 꽃")
        if forget == "one"
        else engine.forget_all_memories("u1")
    )
    await asyncio.wait_for(_until(lambda: engine._locks.waiting("u1") == 2), 30)
    toy.summary_gate.set()
    assert await asyncio.wait_for(forgetting, 60)  # it found the item the turn stored
    assert result.background is not None and result.background.done()
    assert await repo.list_memories("u1", clock.now) == []


async def _until(condition: Any) -> None:
    """Polls engine-internal lock state (`KeyedLocks.waiting`), which signals no event."""
    while not condition():  # noqa: ASYNC110 - nothing to wait on but the condition itself
        await asyncio.sleep(0.01)


# ---- finding 9: per-process state is bounded -------------------------------------------------
async def test_a_users_lock_is_dropped_once_nobody_holds_or_waits_for_it(
    engine: Engine, toy: Toy
) -> None:
    toy.summary_gate = threading.Event()
    first = await engine.handle("u1", "c1", "안녕")
    second = asyncio.create_task(engine.handle("u1", "c1", "뭐 해?"))  # waits for the first
    await asyncio.wait_for(_until(lambda: engine._locks.waiting("u1") == 2), 30)
    toy.summary_gate.set()
    done = await asyncio.wait_for(second, 60)
    for result in (first, done):
        assert result.background is not None
        await result.background
    assert len(engine._locks) == 0


async def test_a_turn_cancelled_while_waiting_for_the_lock_leaves_no_entry(
    engine: Engine, toy: Toy
) -> None:
    toy.summary_gate = threading.Event()
    first = await engine.handle("u1", "c1", "안녕")
    waiting = asyncio.create_task(engine.handle("u1", "c1", "뭐 해?"))
    await asyncio.wait_for(_until(lambda: engine._locks.waiting("u1") == 2), 30)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    toy.summary_gate.set()
    assert first.background is not None
    await first.background
    assert len(engine._locks) == 0


async def test_block_notices_are_bounded_and_dropped_when_the_block_ends(
    monkeypatch: pytest.MonkeyPatch, repo: Repository, toy: Toy, clock: Clock
) -> None:
    monkeypatch.setattr(pipeline, "MAX_BLOCK_NOTICES", 2, raising=False)
    worker = ModelWorker()
    worker.start()
    engine = Engine(
        repo,
        toy,
        worker,
        clock=clock,
        max_prompt_tokens=48,
        max_message_chars=2000,
        block_notice_cooldown=timedelta(minutes=10),
    )
    try:
        for user in ("u1", "u2", "u3"):
            await repo.record_offence(user, ["paedrip"], SanctionLadder(), clock.now)  # 7 days
            result = await engine.handle(user, "c1", "안녕")
            assert result.kind is TurnKind.BLOCK_NOTICE and result.notice
        assert len(engine._notices) == 2  # the oldest one went
        clock.now += timedelta(days=8)  # every block has run out
        result = await turn(engine, "다시 안녕", user="u3")
        assert result.kind is TurnKind.REPLY
        assert len(engine._notices) == 1 and "u3" not in engine._notices
    finally:
        await engine.drain()
        await worker.stop()


async def test_recorded_batch_sizes_are_bounded(
    monkeypatch: pytest.MonkeyPatch, worker: ModelWorker
) -> None:
    from engine.serving import batching
    from engine.serving.batching import Batcher

    monkeypatch.setattr(batching, "MAX_RECORDED_BATCHES", 3, raising=False)
    batcher = Batcher(worker, lambda rows: rows, priority=0)
    for i in range(5):
        assert await batcher(i) == i
    assert list(batcher.batch_sizes) == [1, 1, 1]
