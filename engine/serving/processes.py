"""A model group in a child process, so two groups really run at once on a CPU.

A small model's decoding step is mostly Python (transformers' loop, peft's layers), and Python
holds the GIL: two model *threads* in one process mostly take turns. Measured on the tiny
preset, 2 cores: a reply batch of 10 takes 0.28 s alone, 0.62 s beside a Polyglot thread and
0.29 s beside a Polyglot *process*. So `SplitBackend` keeps the Kanana roles in this process
and serves the Polyglot roles and both S-BERTs from a `ModelProcess`: a child that loads them
itself and answers batched backend calls over a pipe. The caller is the second model worker's
thread, which waits on the pipe without holding the GIL. The child never touches storage.
With three processes (`ProcessRoles`) the Kanana roles move to a second child as well; it keeps
its unfinished rows' caches and hands out `CacheTicket`s for them.

The child ignores SIGINT (a terminal's Ctrl-C reaches the whole process group; the parent
decides when to stop and first drains the background roles), and exits when the pipe closes,
including when the parent was killed. If the child dies, the call in flight runs again on a
fresh child; only a call that kills two children in a row fails (`ModelProcessDied`, its rows
alone, as any failed model call). A child that does not answer a call within its deadline is
hung (a deadlock, a stopped process, swapping): it is killed and a fresh one started, and that
call fails (`ModelProcessHung`) rather than hang the model worker and every user behind it.

Whatever starts the service must guard its entry point with ``if __name__ == "__main__"``:
a spawned child imports the parent's main module (main.py and ``python -m bench`` do).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import pickle
import re
import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol, runtime_checkable

from engine.runtime.roles import Attempt
from engine.serving.backend import (
    Backend,
    ExpressionOut,
    Match,
    MemoryOut,
    MixedOut,
    MixedRow,
    ReplyOut,
    ReplyRow,
    RetrievalRow,
    SummaryOut,
    SummaryRow,
)
from engine.serving.batching import Again
from engine.serving.breaker import BackendUnavailable

log = logging.getLogger(__name__)

CHILD_START_TIMEOUT_S = 600.0  # loading the production Polyglot base from disk can be slow
CHILD_STOP_TIMEOUT_S = 10.0
CALL_ATTEMPTS = 2  # a call that finds its child dead runs once more on a fresh child
# The longest one batched call may take before its child counts as hung (a reply batch of the
# production models on a CPU takes well under a minute; a setting, model_call_timeout_s).
DEFAULT_CALL_TIMEOUT_S = 300.0
MAX_KEPT_CACHES = 1024  # unfinished rows' caches a child keeps (a few MB each at most, tiny preset)


class ModelProcessDied(BackendUnavailable):
    """The model process exited while (or before) answering a call."""


class ModelProcessHung(ModelProcessDied):
    """The model process did not answer a call within its deadline; it was killed."""


# ---- the messages on the pipe ------------------------------------------------------------
# Parent -> child: one request per batched call (its rows), or `Stop`. Child -> parent: `_Ready`
# or `Failed` once loaded, then `Answer` or `Failed` for each request.


@dataclass(frozen=True)
class Call:
    """A batched backend call for the child to run over ``rows``."""

    rows: list[Any]

    def run(self, backend: Backend) -> list[Any]:
        raise NotImplementedError

    @property
    def name(self) -> str:
        """The backend method it calls, for logs and errors (``BestMemories``: best_memories)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()


@dataclass(frozen=True)
class CountTokens(Call):
    rows: list[str]

    def run(self, backend: Backend) -> list[int]:
        return backend.count_tokens(self.rows)


@dataclass(frozen=True)
class BestMemories(Call):
    rows: list[RetrievalRow]

    def run(self, backend: Backend) -> list[Match]:
        return backend.best_memories(self.rows)


@dataclass(frozen=True)
class EthicsScores(Call):
    rows: list[str]

    def run(self, backend: Backend) -> list[dict[str, float]]:
        return backend.ethics_scores(self.rows)


@dataclass(frozen=True)
class Replies(Call):
    rows: list[ReplyRow | Attempt]

    def run(self, backend: Backend) -> list[ReplyOut]:
        return backend.replies(self.rows)


@dataclass(frozen=True)
class Summaries(Call):
    rows: list[SummaryRow | Attempt]

    def run(self, backend: Backend) -> list[SummaryOut]:
        return backend.summaries(self.rows)


@dataclass(frozen=True)
class MixedRows(Call):
    rows: list[MixedRow]

    def run(self, backend: Backend) -> list[MixedOut]:
        return backend.mixed_rows(self.rows)


@dataclass(frozen=True)
class Memories(Call):
    rows: list[str | Attempt]

    def run(self, backend: Backend) -> list[MemoryOut]:
        return backend.memories(self.rows)


@dataclass(frozen=True)
class Expressions(Call):
    rows: list[str | Attempt]

    def run(self, backend: Backend) -> list[ExpressionOut]:
        return backend.expressions(self.rows)


@dataclass(frozen=True)
class Stop:
    """Parent -> child: exit after the current call."""


@dataclass(frozen=True)
class Answer:
    """Child -> parent: a call's outputs, one per row."""

    outputs: list[Any]


@dataclass(frozen=True)
class Failed:
    """Child -> parent: loading, or one call, raised this (re-raised in the parent)."""

    error: BaseException


@dataclass(frozen=True)
class _Ready:
    """What the parent needs to know of a loaded child (the ethics calibration, if it has one)."""

    ethics_thresholds: dict[str, float] | None = None
    normal_veto: float | None = None


@runtime_checkable
class _Calibrated(Protocol):
    """A child backend with the ethics model (the Polyglot child; the Kanana child has none)."""

    ethics_thresholds: dict[str, float]
    normal_veto: float


@dataclass(frozen=True)
class CacheTicket:
    """Stands in for a row's attention cache, which stays in the child that made it: a row
    continued in chunks would otherwise carry its cache across the pipe twice per chunk."""

    owner: int  # the `_KeptCaches` that issued it: a restarted child never honours an old ticket
    number: int


class _KeptCaches:
    """The child's caches of rows handed back unfinished, by ticket (oldest dropped first:
    a row whose cache is gone is prefilled again, never wrong)."""

    def __init__(self, limit: int = MAX_KEPT_CACHES) -> None:
        self.limit = limit
        self._caches: dict[int, Any] = {}
        self._numbers = itertools.count()
        self.owner = uuid.uuid4().int

    def restore(self, rows: list[Any]) -> list[Any]:
        for row in rows:
            attempt = _attempt_in(row)
            if attempt is not None and isinstance(attempt.cache, CacheTicket):
                ticket = attempt.cache
                attempt.cache = (
                    self._caches.pop(ticket.number, None) if ticket.owner == self.owner else None
                )
        return rows

    def keep(self, outputs: list[Any]) -> list[Any]:
        for output in outputs:
            attempt = _attempt_in(output.row) if isinstance(output, Again) else None
            if attempt is not None and attempt.cache is not None:
                number = next(self._numbers)
                self._caches[number] = attempt.cache
                attempt.cache = CacheTicket(self.owner, number)
        while len(self._caches) > self.limit:
            del self._caches[next(iter(self._caches))]
        return outputs


def _attempt_in(row: object) -> Attempt | None:
    """The `Attempt` of a role row (bare, or in a `MixedRow`), if any."""
    if isinstance(row, MixedRow):
        row = row.row
    return row if isinstance(row, Attempt) else None


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _serve(
    conn: Connection, load: Callable[[], Any], threads: int | None, seed: int | None
) -> None:
    """The child: load, say ready (or why not), then answer calls until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads is not None or seed is not None:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        if seed is not None:
            torch.manual_seed(seed)
    ready: _Ready | Failed
    try:
        backend = load()
        ready = (
            _Ready(dict(backend.ethics_thresholds), backend.normal_veto)
            if isinstance(backend, _Calibrated)
            else _Ready()
        )
    except Exception as exc:  # noqa: BLE001 - the parent re-raises it
        ready = Failed(_portable(exc))
    try:
        conn.send(ready)
    except (BrokenPipeError, OSError):  # the parent gave up first (its own models failed)
        return
    if isinstance(ready, Failed):
        return
    kept = _KeptCaches()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent closed the pipe or died
            return
        if not isinstance(request, Call):  # `Stop`
            return
        reply: Answer | Failed
        try:
            kept.restore(request.rows)  # tickets back to their caches, in place
            reply = Answer(kept.keep(list(request.run(backend))))
        except Exception as exc:  # noqa: BLE001 - fails this call only
            reply = Failed(_portable(exc))
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class ModelProcess:
    """A child process running `load()`'s backend; `call` runs one of its batched methods.

    `load` must be picklable (a module-level function or a `functools.partial` of one); it
    returns the backend whose batched methods `call` runs.
    """

    def __init__(
        self,
        load: Callable[[], Any],
        *,
        threads: int | None = None,
        seed: int | None = None,
        name: str = "ohlora-models",
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        self.load = load
        self.call_timeout_s = call_timeout_s
        self.threads = threads
        self.seed = seed  # the child's torch seed (reproducible sampling in tests and benchmarks)
        self.name = name
        self._lock = threading.Lock()  # one call at a time on the pipe
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self.ready: _Ready | None = None
        self.restarts = 0

    def start(self) -> None:
        """Spawn the child; it loads its models while the caller does other work."""
        with self._lock:
            self._spawn()

    def wait_ready(self) -> _Ready:
        """Wait until the child's models are loaded; re-raises its load error."""
        with self._lock:
            if self.ready is None:
                if self._conn is None:
                    self._spawn()
                self._wait()
            assert self.ready is not None
            return self.ready

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process holding torch threads
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(child, self.load, self.threads, self.seed),
            name=self.name,
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn, self.ready = process, parent, None

    def _wait(self) -> None:
        assert self._conn is not None and self._process is not None
        conn, process = self._conn, self._process
        if not conn.poll(CHILD_START_TIMEOUT_S):
            process.kill()
            self._forget()
            raise ModelProcessDied(
                f"{self.name} did not load its models within {CHILD_START_TIMEOUT_S:.0f} s"
            )
        try:
            message = conn.recv()
        except (EOFError, OSError) as exc:
            code = self._forget()
            raise ModelProcessDied(
                f"{self.name} exited while loading its models (exit code {code})"
            ) from exc
        if isinstance(message, Failed):
            self._forget()
            raise message.error
        assert isinstance(message, _Ready), message
        self.ready = message

    def call(self, request: Call) -> list[Any]:
        """Run `request` on the child's backend (blocking; from a model worker thread).

        A child that died (killed, out of memory) is replaced and the call made once more on
        the fresh one; if that one dies too (the rows themselves kill it), the call raises
        `ModelProcessDied` and the next call starts another child. A child silent for
        `call_timeout_s` is killed and replaced at once, and the call raises `ModelProcessHung`.
        """
        method = request.name
        with self._lock:
            for attempt in range(CALL_ATTEMPTS):
                if self._conn is None:  # after a crash: a fresh child
                    self.restarts += 1
                    log.warning("restarting %s", self.name)
                    self._spawn()
                if self.ready is None:
                    self._wait()
                assert self._conn is not None
                try:
                    self._conn.send(request)
                    if not self._conn.poll(self.call_timeout_s):
                        self._replace_hung(method)
                        raise ModelProcessHung(
                            f"{self.name} did not answer {method} within "
                            f"{self.call_timeout_s:g} s; killed, a fresh child is loading"
                        )
                    message = self._conn.recv()
                    break
                except (EOFError, OSError) as exc:
                    code = self._forget()
                    log.warning("%s exited during %s (exit code %s)", self.name, method, code)
                    if attempt == CALL_ATTEMPTS - 1:
                        raise ModelProcessDied(
                            f"{self.name} exited during {method} twice (exit code {code}); "
                            f"it restarts on the next call"
                        ) from exc
        if isinstance(message, Failed):
            raise message.error
        assert isinstance(message, Answer), message
        return message.outputs

    def _replace_hung(self, method: str) -> None:
        """Kill the hung child and start loading its replacement (under the lock)."""
        assert self._process is not None
        log.warning(
            "%s (pid %s) did not answer %s within %g s; killing it",
            self.name,
            self._process.pid,
            method,
            self.call_timeout_s,
        )
        self._process.kill()
        self._forget()
        self.restarts += 1
        self._spawn()

    def _forget(self) -> int | None:
        process, self._process, self._conn, self.ready = self._process, None, None, None
        if process is None:
            return None
        process.join(CHILD_STOP_TIMEOUT_S)
        return process.exitcode

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        """The child runs (the health check); a dead one is replaced on the next call."""
        process = self._process
        return process is not None and process.is_alive()

    def close(self) -> None:
        """Ask the child to exit after its current call; kill it if it does not."""
        with self._lock:
            conn, process = self._conn, self._process
            self._conn = self._process = None
        if conn is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(Stop())
            conn.close()
        if process is not None:
            process.join(CHILD_STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()


class KananaRoles(Protocol):
    """The Kanana roles' calls (`engine.serving.hub.RoleBackend`, or `ProcessRoles`)."""

    @property
    def mixes_roles(self) -> bool: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...
    def replies(self, rows: list[ReplyRow | Attempt]) -> list[ReplyOut]: ...
    def summaries(self, rows: list[SummaryRow | Attempt]) -> list[SummaryOut]: ...
    def mixed_rows(self, rows: list[MixedRow]) -> list[MixedOut]: ...
    def close(self) -> None: ...


class ProcessRoles:
    """The Kanana roles' batched calls (`engine.serving.hub.RoleBackend`) answered by a child process,
    so the service's process keeps only its event loop and storage: the model's Python then
    never competes with them for the GIL."""

    mixes_roles = True

    def __init__(self, process: ModelProcess) -> None:
        self.process = process

    def wait_ready(self) -> None:
        self.process.wait_ready()

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.process.call(CountTokens(texts))

    def replies(self, rows: list[ReplyRow | Attempt]) -> list[ReplyOut]:
        return self.process.call(Replies(rows))

    def summaries(self, rows: list[SummaryRow | Attempt]) -> list[SummaryOut]:
        return self.process.call(Summaries(rows))

    def mixed_rows(self, rows: list[MixedRow]) -> list[MixedOut]:
        return self.process.call(MixedRows(rows))

    def close(self) -> None:
        self.process.close()


class SplitBackend:
    """`engine.serving.backend.Backend` over two or three processes: the Kanana roles (reply,
    summary) and the token count run on `local` (here, or a `ProcessRoles` child); the
    Polyglot roles and the S-BERTs run in `child`."""

    def __init__(self, local: KananaRoles, child: ModelProcess) -> None:
        """Waits until every child has loaded its models (re-raising a child's load error)."""
        self.local = local
        self.child = child
        if isinstance(local, ProcessRoles):
            local.wait_ready()
        ready = child.wait_ready()
        assert ready.ethics_thresholds is not None and ready.normal_veto is not None
        self.ethics_thresholds = ready.ethics_thresholds
        self.normal_veto = ready.normal_veto

    @property
    def model_processes(self) -> tuple[ModelProcess, ...]:
        """The child processes behind this backend (the health check and metrics)."""
        if isinstance(self.local, ProcessRoles):
            return (self.child, self.local.process)
        return (self.child,)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.local.count_tokens(texts)

    def replies(self, rows: list[ReplyRow | Attempt]) -> list[ReplyOut]:
        return self.local.replies(rows)

    def summaries(self, rows: list[SummaryRow | Attempt]) -> list[SummaryOut]:
        return self.local.summaries(rows)

    @property
    def mixes_roles(self) -> bool:
        return self.local.mixes_roles

    def mixed_rows(self, rows: list[MixedRow]) -> list[MixedOut]:
        return self.local.mixed_rows(rows)

    def best_memories(self, rows: list[RetrievalRow]) -> list[Match]:
        return self.child.call(BestMemories(rows))

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return self.child.call(EthicsScores(texts))

    def memories(self, rows: list[str | Attempt]) -> list[MemoryOut]:
        return self.child.call(Memories(rows))

    def expressions(self, rows: list[str | Attempt]) -> list[ExpressionOut]:
        return self.child.call(Expressions(rows))

    def close(self) -> None:
        self.child.close()
        self.local.close()
