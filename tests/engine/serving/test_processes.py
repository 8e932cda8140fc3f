"""A model group in a child process: answers, errors, crashes, Ctrl-C, shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest

from engine.runtime.lm import MissingAdapter
from engine.runtime.presets import Role
from engine.serving.backend import MixedRow
from engine.serving.processes import (
    BestMemories,
    Call,
    EthicsScores,
    Expressions,
    Memories,
    ModelProcess,
    ModelProcessDied,
    Replies,
)
from tests.engine.conftest import engine_on_two_workers

WAIT_S = 10.0
HUNG_AFTER_S = 2.0  # the call deadline of the hang tests (an echo call takes milliseconds)


class Echo:
    """A stand-in backend for the process mechanics (the real models are tested below)."""

    ethics_thresholds: ClassVar[dict[str, float]] = {"일반": 0.5}
    normal_veto = 0.7

    def memories(self, rows: list[str]) -> list[str]:
        return [row.upper() for row in rows]

    def expressions(self, rows: list[str]) -> list[str]:
        raise ValueError(f"bad rows: {rows}")

    def best_memories(self, rows: list[Any]) -> list[Any]:
        return [os.getpid() for _ in rows]

    def ethics_scores(self, rows: list[Any]) -> list[Any]:
        os._exit(3)  # rows that kill the model process (a segfault, say)

    def hang(self, rows: list[Any]) -> list[Any]:
        """A call that never returns (a deadlock in the model code, say)."""
        threading.Event().wait()
        return rows


class Hang(Call):
    """A request for `Echo.hang` (a test-only call kind)."""

    def run(self, backend: Any) -> list[Any]:
        return backend.hang(self.rows)


def load_echo() -> Echo:
    return Echo()


def load_missing(folder: str) -> Echo:
    raise MissingAdapter(f"no adapter for role memory in {folder}")


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _delivered(pid: int, sig: signal.Signals) -> bool:
    """Wait until `sig` is no longer pending for `pid` (Linux: /proc/PID/status), so what the
    signal does has happened before the test goes on — a condition, not a sleep."""
    bit = 1 << (sig - 1)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True  # it is gone: the signal was delivered (and was fatal)
        pending = 0
        for line in status.splitlines():
            if line.startswith(("SigPnd:", "ShdPnd:")):
                pending |= int(line.split()[1], 16)
        if not pending & bit:
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def echo() -> Any:
    process = ModelProcess(load_echo, name="test-echo")
    process.start()
    yield process
    process.close()


def test_calls_run_in_the_child_and_errors_come_back_without_killing_it(echo: ModelProcess) -> None:
    ready = echo.wait_ready()
    assert ready.ethics_thresholds == {"일반": 0.5} and ready.normal_veto == 0.7
    assert echo.call(Memories(["a", "b"])) == ["A", "B"]
    assert echo.call(BestMemories(["x"])) == [echo.pid] and echo.pid != os.getpid()
    with pytest.raises(ValueError, match="bad rows"):
        echo.call(Expressions(["x"]))
    with pytest.raises(AttributeError):
        echo.call(Replies([]))  # a call the child's backend does not have
    assert echo.call(Memories(["c"])) == ["C"]  # still serving
    assert echo.restarts == 0


def test_a_killed_child_is_replaced_and_the_call_still_answers(echo: ModelProcess) -> None:
    echo.wait_ready()
    first = echo.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)  # out of memory, an operator, a crash
    assert echo.call(Memories(["a"])) == ["A"]
    assert echo.restarts == 1 and echo.pid not in (None, first)


def test_rows_that_kill_the_child_twice_fail_alone_and_the_next_call_is_served(
    echo: ModelProcess,
) -> None:
    echo.wait_ready()
    with pytest.raises(ModelProcessDied, match="exited during ethics_scores twice"):
        echo.call(EthicsScores(["x"]))
    assert echo.call(Memories(["b"])) == ["B"]
    assert echo.restarts == 2


async def test_turns_go_on_when_the_model_child_is_killed(
    repo: Any, tiny_split_backend: Any
) -> None:
    """Every turn still gets its reply, ethics check and background roles; nothing fails."""
    import asyncio

    from engine.pipeline import TurnKind

    async with engine_on_two_workers(repo, tiny_split_backend) as (engine, _, _):
        first = await engine.handle("u0", "c", "너는 누구야?")
        assert first.kind is TurnKind.REPLY and first.background is not None
        await first.background
        pid = tiny_split_backend.child.pid
        before = tiny_split_backend.child.restarts  # the child is shared by the session
        os.kill(pid, signal.SIGKILL)
        results = await asyncio.gather(
            *(engine.handle(f"u{i}", "c", "오늘 뭐 해?") for i in range(1, 5))
        )
        assert all(r.kind is TurnKind.REPLY and r.reply for r in results)
        done = await asyncio.gather(*(r.background for r in results if r.background is not None))
        assert len(done) == 4 and all(d is not None for d in done)
        assert (
            tiny_split_backend.child.restarts == before + 1 and tiny_split_backend.child.pid != pid
        )
        for i in range(1, 5):
            [turn] = await repo.turns(f"u{i}")
            assert turn.reply and turn.expression


@pytest.fixture
def echo_with_deadline() -> Any:
    process = ModelProcess(load_echo, name="test-echo", call_timeout_s=HUNG_AFTER_S)
    process.start()
    yield process
    process.close()


def test_a_call_that_hangs_kills_the_child_and_the_next_call_runs_on_a_fresh_one(
    echo_with_deadline: ModelProcess,
) -> None:
    echo = echo_with_deadline
    echo.wait_ready()
    hung = echo.pid
    assert hung is not None
    with pytest.raises(ModelProcessDied, match="did not answer hang within"):
        echo.call(Hang(["x"]))  # returns by the deadline instead of never
    assert _gone(hung)
    assert echo.call(Memories(["a"])) == ["A"]
    assert echo.restarts == 1 and echo.pid not in (None, hung)


def test_a_stopped_child_is_killed_and_replaced(echo_with_deadline: ModelProcess) -> None:
    """A child that stops answering between calls (SIGSTOP, swapped out, ...)."""
    echo = echo_with_deadline
    echo.wait_ready()
    stopped = echo.pid
    assert stopped is not None
    os.kill(stopped, signal.SIGSTOP)
    try:
        with pytest.raises(ModelProcessDied, match="did not answer memories within"):
            echo.call(Memories(["a"]))
        assert _gone(stopped)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stopped, signal.SIGKILL)
    assert echo.call(Memories(["b"])) == ["B"] and echo.pid != stopped


def test_ctrl_c_reaches_the_child_but_does_not_stop_it(echo: ModelProcess) -> None:
    echo.wait_ready()
    assert echo.pid is not None
    os.kill(echo.pid, signal.SIGINT)  # what a terminal does to the whole process group
    assert _delivered(echo.pid, signal.SIGINT)  # ignored, handled, or fatal: not still pending
    assert echo.call(Memories(["a"])) == ["A"] and echo.restarts == 0


def test_close_ends_the_child(echo: ModelProcess) -> None:
    echo.wait_ready()
    pid = echo.pid
    assert pid is not None
    echo.close()
    assert _gone(pid) and echo.pid is None


def test_a_load_error_in_the_child_is_raised_in_the_parent_as_is() -> None:
    process = ModelProcess(partial(load_missing, "/models/adapters/memory"), name="test-missing")
    process.start()
    with pytest.raises(MissingAdapter, match="no adapter for role memory"):
        process.wait_ready()
    process.close()


def test_the_split_backend_answers_as_the_in_process_models(
    tiny_split_backend: Any, tiny_backend: Any
) -> None:
    """The child loads the same S-BERTs and Polyglot roles: identical scores and choices."""
    texts = ["너는 누구야?", "바보야", "오늘 뭐 해?"]
    split_scores = tiny_split_backend.ethics_scores(texts)
    local_scores = tiny_backend.ethics_scores(texts)
    for split, local in zip(split_scores, local_scores):
        assert split.keys() == local.keys()
        assert all(abs(split[k] - local[k]) < 1e-5 for k in split)
    rows = [("오늘 날씨 어때?", ["[오늘 날씨: 비]", "[좋아하는 음식: 떡볶이]"])]
    [(index, score)] = tiny_split_backend.best_memories(rows)
    [(local_index, local_score)] = tiny_backend.best_memories(rows)
    assert index == local_index and score == pytest.approx(local_score, abs=1e-5)
    assert tiny_split_backend.ethics_thresholds == tiny_backend.ethics_thresholds
    assert tiny_split_backend.normal_veto == tiny_backend.normal_veto
    assert tiny_split_backend.child.pid != os.getpid()


def test_a_child_keeps_unfinished_rows_caches_and_passes_tickets() -> None:
    """Only a ticket crosses the pipe; the oldest caches beyond the limit are dropped (that
    row is prefilled again when it continues)."""
    from engine.runtime.roles import Attempt
    from engine.serving.batching import Again
    from engine.serving.processes import CacheTicket, _KeptCaches

    kept = _KeptCaches(limit=2)
    attempts = [Attempt(prompt=f"p{i}", cache=f"cache{i}") for i in range(3)]
    kept.keep(
        [Again(MixedRow(Role.REPLY, attempts[0])), Again(attempts[1]), "done", Again(attempts[2])]
    )
    assert all(isinstance(a.cache, CacheTicket) for a in attempts)
    kept.restore(
        [MixedRow(Role.REPLY, attempts[0]), attempts[1], MixedRow(Role.SUMMARY, attempts[2]), "r"]
    )
    assert [a.cache for a in attempts] == [None, "cache1", "cache2"]
    # a ticket from a child that has since been replaced is never honoured
    kept.keep([Again(attempts[1])])
    stale = Attempt(
        prompt="p", cache=CacheTicket(owner=kept.owner + 1, number=attempts[1].cache.number)
    )
    kept.restore([stale])
    assert stale.cache is None


async def test_turns_through_a_kanana_child_of_their_own(repo: Any, tiny_preset: Any) -> None:
    """`OHLORA_MODEL_PROCESSES=3`: replies and summaries come from a second child, decoding in
    chunks whose caches stay there; every turn is answered and its background roles done."""
    import asyncio

    from engine.pipeline import TurnKind
    from engine.serving.hub import split_backend
    from engine.serving.processes import ProcessRoles

    backend = split_backend(tiny_preset, threads=1, chunk_tokens=2, kanana_apart=True)
    try:
        assert isinstance(backend.local, ProcessRoles)
        assert backend.local.process.pid not in (None, os.getpid(), backend.child.pid)
        async with engine_on_two_workers(repo, backend) as (engine, _, _):
            results = await asyncio.gather(
                *(engine.handle(f"u{i}", "c", "오늘 뭐 해?") for i in range(4))
            )
            assert all(r.kind is TurnKind.REPLY and r.reply for r in results)
            done = await asyncio.gather(
                *(r.background for r in results if r.background is not None)
            )
            assert len(done) == 4 and all(d is not None for d in done)
        assert max(engine.batchers["kanana"].batch_sizes) > 1  # rows of several users together
        assert len(engine.batchers["kanana"].batch_sizes) > 2  # continued in 2-token chunks
    finally:
        backend.close()
    assert backend.local.process.pid is None and backend.child.pid is None
