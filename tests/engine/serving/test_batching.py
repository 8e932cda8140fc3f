"""Cross-user batching: rows gather while the worker is busy, failures stay with their row,
and batched generation equals one-by-one generation under greedy decoding."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import pytest

from engine.serving.batching import Batcher
from engine.serving.worker import PRIORITY_REPLY, ModelWorker
from tests.engine.conftest import engine_on_two_workers


async def _busy(worker: ModelWorker, release: threading.Event) -> asyncio.Task[Any]:
    """Occupy the model thread until `release` is set."""
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    task = asyncio.create_task(worker.run(hold))
    await asyncio.to_thread(started.wait, 30)
    return task


MAX_YIELDS = 1000  # loop turns for the callers' tasks to queue their rows (one each suffices)


async def _until_waiting(batcher: Batcher[Any, Any], rows: int) -> None:
    """Yield to the loop until ``rows`` rows wait in ``batcher`` (no time passes: the callers'
    tasks just run up to their queued future)."""
    for _ in range(MAX_YIELDS):
        if len(batcher._waiting) == rows:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(batcher._waiting)} rows waiting, not {rows}")


async def test_rows_arriving_while_the_worker_is_busy_form_one_batch(worker: ModelWorker) -> None:
    seen: list[list[int]] = []

    def double(rows: list[int]) -> list[int]:
        seen.append(list(rows))
        return [r * 2 for r in rows]

    batcher = Batcher(worker, double, priority=PRIORITY_REPLY, max_batch=16)
    release = threading.Event()
    busy = await _busy(worker, release)
    calls = [asyncio.create_task(batcher(i)) for i in range(10)]
    await _until_waiting(batcher, len(calls))
    release.set()
    assert await asyncio.gather(*calls) == [i * 2 for i in range(10)]
    await busy
    assert seen == [list(range(10))]
    assert list(batcher.batch_sizes) == [10]


async def test_an_idle_worker_starts_at_once_and_max_batch_is_kept(worker: ModelWorker) -> None:
    batcher = Batcher(
        worker, lambda rows: [r + 1 for r in rows], priority=PRIORITY_REPLY, max_batch=4
    )
    assert await batcher(1) == 2  # nobody to wait for
    release = threading.Event()
    busy = await _busy(worker, release)
    calls = [asyncio.create_task(batcher(i)) for i in range(10)]
    await _until_waiting(batcher, len(calls))
    release.set()
    assert await asyncio.gather(*calls) == [i + 1 for i in range(10)]
    await busy
    assert list(batcher.batch_sizes) == [1, 4, 4, 2]


async def test_rows_of_the_first_lane_are_taken_first(worker: ModelWorker) -> None:
    """Replies (lane 0) go before summaries (lane 1) waiting for the same batches; each lane
    keeps its arrival order."""
    seen: list[list[str]] = []

    def echo(rows: list[str]) -> list[str]:
        seen.append(list(rows))
        return rows

    batcher = Batcher(
        worker,
        echo,
        priority=PRIORITY_REPLY,
        max_batch=3,
        lane=lambda row: 0 if row.startswith("reply") else 1,
    )
    release = threading.Event()
    busy = await _busy(worker, release)
    rows = ["summary1", "reply1", "summary2", "reply2", "summary3", "reply3", "reply4"]
    calls = [asyncio.create_task(batcher(r)) for r in rows]
    await _until_waiting(batcher, len(calls))
    release.set()
    assert await asyncio.gather(*calls) == rows
    await busy
    assert seen == [
        ["reply1", "reply2", "reply3"],
        ["reply4", "summary1", "summary2"],
        ["summary3"],
    ]


async def test_a_failing_row_fails_only_its_own_caller(worker: ModelWorker) -> None:
    def picky(rows: list[str]) -> list[str]:
        if "bad" in rows:
            raise RuntimeError("CUDA out of memory")
        return [r.upper() for r in rows]

    batcher = Batcher(worker, picky, priority=PRIORITY_REPLY)
    release = threading.Event()
    busy = await _busy(worker, release)
    calls = [asyncio.create_task(batcher(r)) for r in ("a", "bad", "c")]
    await _until_waiting(batcher, len(calls))
    release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    await busy
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], RuntimeError)
    assert (await batcher("d")) == "D"  # and it keeps serving


def _transport_errors() -> list[BaseException]:
    from engine.serving.processes import ModelProcessDied
    from engine.serving.remote import RemoteGenerationError

    return [
        RemoteGenerationError(
            "completions server http://gpu:8000/v1: no complete answer within 60 s"
        ),
        ModelProcessDied("ohlora-polyglot exited during memories twice"),
        TimeoutError(),
    ]


@pytest.mark.parametrize("error", _transport_errors(), ids=lambda e: type(e).__name__)
async def test_a_backend_failure_fails_the_whole_batch_at_once(
    worker: ModelWorker, error: BaseException
) -> None:
    """A server past its deadline (or a dead model child) is not a bad row: retrying each row
    alone would wait out the same deadline once per row while holding the worker."""
    calls: list[list[str]] = []

    def down(rows: list[str]) -> list[str]:
        calls.append(list(rows))
        raise error

    batcher = Batcher(worker, down, priority=PRIORITY_REPLY)
    release = threading.Event()
    busy = await _busy(worker, release)
    rows = [asyncio.create_task(batcher(r)) for r in ("a", "b", "c", "d")]
    await _until_waiting(batcher, len(rows))
    release.set()
    results = await asyncio.gather(*rows, return_exceptions=True)
    await busy
    assert calls == [["a", "b", "c", "d"]]  # one attempt, no row-by-row retries
    assert all(r is error for r in results)


def test_batched_generation_equals_one_by_one_under_greedy_decoding(toy_backend: Any) -> None:
    from engine.rules import prompts
    from training.data import load_rows

    roles = toy_backend.roles
    rows = load_rows("train")[:12]
    for role, texts in (
        ("output_message", [prompts.reply_prompt(r.input_data) for r in rows]),
        ("summary", [prompts.summary_prompt(r.input_data, r.output_message) for r in rows]),
        ("memory", [prompts.memory_prompt(r.input_data) for r in rows]),
        ("eyes_mouth_pose", [prompts.expression_prompt(r.output_message) for r in rows]),
    ):
        batched = roles.generate(role, texts, temperature=0, max_length=prompts.REPLY_MAX_LENGTH)
        alone = [
            roles.generate(role, [t], temperature=0, max_length=prompts.REPLY_MAX_LENGTH)[0]
            for t in texts
        ]
        assert [g.text for g in batched] == [g.text for g in alone]
        assert [g.hit_end for g in batched] == [g.hit_end for g in alone]


def test_chunked_generation_equals_whole_generation_under_greedy_decoding(
    toy_backend: Any,
) -> None:
    """Rows decoded a few steps per call, continued from their tokens and attention cache so
    far (new rows prefilled beside them), end exactly as rows decoded in one call: same text,
    end marker, token count."""
    from engine.rules import prompts
    from training.data import load_rows

    roles = toy_backend.roles
    rows = load_rows("valid")[:10]
    for role, texts, budget in (
        (
            "output_message",
            [prompts.reply_prompt(r.input_data) for r in rows],
            {"max_length": prompts.REPLY_MAX_LENGTH},
        ),
        (
            "summary",
            [prompts.summary_prompt(r.input_data, r.output_message) for r in rows],
            {"max_new_tokens": prompts.SUMMARY_MAX_NEW_TOKENS},
        ),
        (
            "memory",
            [prompts.memory_prompt(r.input_data) for r in rows],
            {"max_new_tokens": prompts.MEMORY_MAX_NEW_TOKENS},
        ),
    ):
        whole = roles.generate(role, texts, temperature=0, **budget)
        prefixes: list[tuple[int, ...]] = [()] * len(texts)
        caches: list[Any] = [None] * len(texts)
        done: dict[int, Any] = {}
        calls = 0
        while len(done) < len(texts):
            # half the rows join on the second call, beside rows already decoding
            pending = [i for i in range(len(texts)) if i not in done and (i % 2 == 0 or calls)]
            out = roles.generate(
                role,
                [texts[i] for i in pending],
                temperature=0,
                prefixes=[prefixes[i] for i in pending],
                caches=[caches[i] for i in pending],
                max_steps=3,
                **budget,
            )
            calls += 1
            for i, g in zip(pending, out):
                assert len(g.ids) <= len(prefixes[i]) + 3  # at most max_steps new tokens a call
                if g.finished:
                    done[i] = g
                else:
                    assert g.ids[: len(prefixes[i])] == prefixes[i] and not g.hit_end
                    # its attention cache comes along: continuing needs no prefill
                    assert (
                        g.cache is not None
                        and g.cache[0][0].shape[1]
                        == len(roles.tokenizers[role](texts[i])["input_ids"]) + len(g.ids) - 1
                    )
                    prefixes[i], caches[i] = g.ids, g.cache
        assert calls > 1, role  # rows really were continued
        chunked = [done[i] for i in range(len(texts))]
        assert [(g.text, g.hit_end, g.new_tokens) for g in chunked] == [
            (g.text, g.hit_end, g.new_tokens) for g in whole
        ], role


def test_reply_and_summary_rows_in_one_batch_generate_what_they_would_apart(
    toy_backend: Any,
) -> None:
    """One batch on the Kanana base, each row through its own adapter (peft's per-row
    selection), whole or continued in chunks: under greedy decoding every row ends as it does
    in a batch of its own role."""
    from engine.rules import prompts
    from engine.runtime.lm import Request
    from training.data import load_rows

    roles = toy_backend.roles
    rows = load_rows("valid")[:6]
    replies = [prompts.reply_prompt(r.input_data) for r in rows]
    summaries = [prompts.summary_prompt(r.input_data, r.output_message) for r in rows]
    apart = roles.generate(
        "output_message", replies, temperature=0, max_length=prompts.REPLY_MAX_LENGTH
    ) + roles.generate(
        "summary", summaries, temperature=0, max_new_tokens=prompts.SUMMARY_MAX_NEW_TOKENS
    )
    requests = [
        Request("output_message", p, 0.0, max_length=prompts.REPLY_MAX_LENGTH) for p in replies
    ] + [
        Request("summary", p, 0.0, max_new_tokens=prompts.SUMMARY_MAX_NEW_TOKENS) for p in summaries
    ]
    order = [i for pair in zip(range(6), range(6, 12)) for i in pair]  # interleaved roles
    together = roles.generate_rows([requests[i] for i in order])
    assert [(g.text, g.hit_end) for g in together] == [
        (apart[i].text, apart[i].hit_end) for i in order
    ]

    pending = {i: requests[i] for i in order}
    done: dict[int, Any] = {}
    while pending:
        keys = list(pending)
        for i, g in zip(keys, roles.generate_rows([pending[i] for i in keys], max_steps=4)):
            if g.finished:
                done[i] = g
                del pending[i]
            else:
                pending[i] = replace(pending[i], prefix=g.ids, cache=g.cache)
    assert [(done[i].text, done[i].new_tokens) for i in order] == [
        (apart[i].text, apart[i].new_tokens) for i in order
    ]


def test_a_continued_attempt_is_judged_once_when_it_ends(toy_backend: Any) -> None:
    """`step` with a chunk: a row still decoding keeps its attempt number and its tokens; the
    attempt is counted when it ends, and `run`-style rounds reach an outcome for every row."""
    from engine.rules import prompts
    from engine.runtime.roles import REPLY, Attempt, RoleOutcome, reply_attempt, step

    rows = [
        reply_attempt(text, None) for text in ("너는 누구야?", "오늘 뭐 해?", "좋아하는 음식은?")
    ]
    first = step(toy_backend.roles, REPLY, rows, chunk=2)
    assert all(isinstance(r, Attempt) and r.attempt == 0 and len(r.partial) == 2 for r in first)
    pending: list[Any] = first
    outcomes: list[RoleOutcome] = []
    for _ in range(prompts.REPLY_ATTEMPTS * prompts.REPLY_MAX_LENGTH):
        if not pending:
            break
        stepped = step(toy_backend.roles, REPLY, pending, chunk=2)
        outcomes += [r for r in stepped if isinstance(r, RoleOutcome)]
        pending = [r for r in stepped if isinstance(r, Attempt)]
    assert len(outcomes) == 3 and not pending
    assert all(1 <= o.attempts <= prompts.REPLY_ATTEMPTS and o.text for o in outcomes)


async def test_a_row_answered_again_joins_the_next_batch(worker: ModelWorker) -> None:
    from engine.serving.batching import Again

    seen: list[list[Any]] = []

    def halve(rows: list[Any]) -> list[Any]:
        """Rows are numbers; each pass halves them, and a row is done once it is below 2."""
        seen.append(list(rows))
        return [r / 2 if r / 2 < 2 else Again(r / 2) for r in rows]

    batcher = Batcher(worker, halve, priority=PRIORITY_REPLY)
    release = threading.Event()
    busy = await _busy(worker, release)
    calls = [asyncio.create_task(batcher(r)) for r in (2, 8)]
    await _until_waiting(batcher, len(calls))
    release.set()
    assert await asyncio.gather(*calls) == [1, 1]
    await busy
    assert seen == [[2, 8], [4.0], [2.0]]


async def test_two_workers_run_the_polyglot_roles_beside_the_kanana_roles(
    repo: Any, tiny_backend: Any
) -> None:
    from engine.pipeline import TurnKind

    async with engine_on_two_workers(repo, tiny_backend) as (engine, kanana, polyglot):
        results = await asyncio.gather(
            *(engine.handle(f"u{i}", "c", "너는 누구야?") for i in range(8))
        )
        assert all(r.kind is TurnKind.REPLY for r in results)
        done = await asyncio.gather(*(r.background for r in results))
        assert all(d is not None and d.expression for d in done)
        assert engine.batchers["expression"].worker is polyglot and polyglot.jobs_done > 0
        # reply and summary rows share the Kanana base's batches
        assert "reply" not in engine.batchers and "summary" not in engine.batchers
        assert engine.batchers["kanana"].worker is kanana
        assert max(engine.batchers["kanana"].batch_sizes) > 1
