"""Load test: many users at once through the engine and storage; prints what was kept.

`python -m bench.load [--users 64] [--messages 20] [--database-url URL] [--processes N]`: every
user sends their messages one after another (each after the previous reply), all users at
once. Prompts mix the valid split of the fine-tuning set with harmful prompts of the ethics
test split, so warnings and blocks happen too. With ``--processes N`` (a PostgreSQL database)
N service processes share the database, each with its own engine (`bench.load_workers`): the
users are split across them and every fourth user writes through two processes at once.
Afterwards the database is checked: every turn stored exactly once and finished, every memory
item the engine extracted is there with its latest value, sanction levels rise strictly per
user and category, no user saw a storage error, and no two turns of one user overlap in time
(the stored start and finish of each turn).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import combinations, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.service import OhLoraService
    from storage import Repository, TurnRecord

DEFAULT_USERS = 64
DEFAULT_MESSAGES = 20
DEFAULT_PROCESSES = 1
HARMFUL_SHARE = 0.15
TIMEOUT_S = 1800  # a deadlock shows as this timeout, not as a hang
# With two or more processes, every SHARED_EVERY-th user writes through two of them at once
# (alternate messages from its home process and the next one), as a person in two servers
# served by two shards does.
SHARED_EVERY = 4
CHANNEL = "load"

# (the user's message number, its text); one user's messages in one process, in order
Message = tuple[int, str]
# user -> the messages one process sends for them
Plan = dict[str, list[Message]]


def user_id_of(index: int) -> str:
    return f"load-user-{index}"


def message_id_of(user_id: str, number: int) -> str:
    return f"{user_id}-{number}"


@dataclass(frozen=True)
class LoadPlan:
    """Who sends what from which process: `plans[p]` is process p's share."""

    plans: tuple[Plan, ...]
    expected: dict[str, int]  # user -> messages sent for them in all processes
    shared: tuple[str, ...] = ()  # users written through two processes

    @property
    def turns(self) -> int:
        return sum(self.expected.values())


@dataclass(frozen=True)
class Upsert:
    """A memory item the engine stored for a turn (the latest turn's value must be there)."""

    user_id: str
    key: str
    value: str
    turn_id: int


@dataclass
class DriveResult:
    """What one process's users saw."""

    turns_sent: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    storage_errors: int = 0
    upserts: list[Upsert] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class StoredCounts:
    """What the database holds afterwards, checked against what the users were told."""

    turns_persisted: int
    turns_unfinished: int
    duplicate_turns: int
    failed_turns: int
    memory_missing: int
    sanctions: int
    non_monotonic: int
    overlapping_turns: int


@dataclass
class LoadReport:
    users: int
    messages: int
    turns_expected: int
    turns_persisted: int
    turns_unfinished: int
    duplicate_turns: int
    failed_turns: int
    storage_errors: int
    memory_upserts: int
    memory_missing: int
    sanctions: int
    non_monotonic: int
    kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # Pairs of one user's turns whose stored [started, finished] spans overlap.
    overlapping_turns: int = 0
    processes: int = 1
    shared_users: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.turns_persisted == self.turns_expected
            and not self.turns_unfinished
            and not self.duplicate_turns
            and not self.failed_turns
            and not self.storage_errors
            and not self.memory_missing
            and not self.non_monotonic
            and not self.overlapping_turns
        )


def load_prompts(seed: int) -> tuple[list[str], list[str]]:
    from engine.rules.ethics_rules import NORMAL_NAME
    from engine.runtime.presets import DATA_DIR
    from training.data import load_rows, read_csv

    benign = [row.input_data for row in load_rows("valid")]
    harmful = [
        r["user_prompt"]
        for r in read_csv(DATA_DIR / "ethics_train_test_dataset.csv")
        if r.get("type") == "test" and r["category"] != NORMAL_NAME
    ]
    random.Random(seed).shuffle(harmful)
    return benign, harmful


def plan_load(users: int, messages: int, seed: int = 0, processes: int = 1) -> LoadPlan:
    """Every user's messages, drawn up front (the same for any process count), and the split:
    user i lives in process i mod N; with N ≥ 2 every SHARED_EVERY-th user sends its odd
    messages from the next process, at the same time as its even ones from home."""
    if processes < 1:
        raise ValueError(f"processes must be at least 1, not {processes}")
    benign, harmful = load_prompts(seed)
    rng = random.Random(seed)
    plans: tuple[Plan, ...] = tuple({} for _ in range(processes))
    shared: list[str] = []
    for index in range(users):
        user_id = user_id_of(index)
        home = index % processes
        split = processes > 1 and index % SHARED_EVERY == SHARED_EVERY - 1
        if split:
            shared.append(user_id)
        for number in range(messages):
            pool = harmful if rng.random() < HARMFUL_SHARE else benign
            text = pool[rng.randrange(len(pool))]
            where = (home + number % 2) % processes if split else home
            plans[where].setdefault(user_id, []).append((number, text))
    return LoadPlan(plans, {user_id_of(i): messages for i in range(users)}, tuple(shared))


def _storage_error_shown(result: Any) -> bool:
    from engine.pipeline import TurnKind

    told = any("locked" in m.lower() or "database" in m.lower() for m in result.messages)
    return told or result.kind is TurnKind.FAILED


async def drive(service: OhLoraService, plan: Plan) -> DriveResult:
    """Each user of `plan` sends its messages one after another, all users at once; returns
    what they were told and which memory items the engine stored."""
    out = DriveResult()

    async def user(user_id: str, messages: list[Message]) -> None:
        for number, text in messages:
            result = await service.chat(
                user_id, CHANNEL, text, message_id=message_id_of(user_id, number)
            )
            out.turns_sent += 1
            out.kinds[str(result.kind)] += 1
            out.storage_errors += _storage_error_shown(result)
            if result.background is not None:
                done = await result.background
                if done is not None and done.memory is not None and result.turn_id is not None:
                    memory = done.memory
                    out.upserts.append(Upsert(user_id, memory.key, memory.value, result.turn_id))

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(user(u, m) for u, m in plan.items())), TIMEOUT_S)
    out.seconds = round(time.perf_counter() - started, 1)
    return out


def latest_upserts(upserts: Iterable[Upsert]) -> dict[tuple[str, str], str]:
    """(user, key) -> the value its latest turn stored: one user's turns run one at a time in
    every process, so a later turn (a higher id) wrote later."""
    latest: dict[tuple[str, str], Upsert] = {}
    for up in upserts:
        known = latest.get((up.user_id, up.key))
        if known is None or up.turn_id > known.turn_id:
            latest[(up.user_id, up.key)] = up
    return {where: up.value for where, up in latest.items()}


def overlapping_pairs(turns: Sequence[TurnRecord]) -> int:
    """Pairs of finished turns whose [created_at, completed_at] spans overlap (touching ends do
    not): one user's turns hold the user's lock, so there must be none. Failed turns (counted
    apart) are left out: one cut off by a crash is stamped when a restart failed it, not when
    it stopped."""
    from storage import TurnStatus

    spans = [
        (t.created_at, t.completed_at)
        for t in turns
        if t.completed_at is not None and t.status != TurnStatus.FAILED
    ]
    return sum(a0 < b1 and b0 < a1 for (a0, a1), (b0, b1) in combinations(spans, 2))


async def check_stored(
    repo: Repository, expected: Mapping[str, int], upserts: Mapping[tuple[str, str], str]
) -> StoredCounts:
    """Count what the database kept for the users of `expected` (user -> turns sent)."""
    from storage import TurnStatus

    now = datetime.now(UTC)
    persisted = unfinished = duplicates = failed = sanctions = non_monotonic = 0
    missing = overlapping = 0
    for user_id, sent in expected.items():
        turns = await repo.turns(user_id, limit=max(2 * sent, 1))
        persisted += len(turns)
        ids = Counter(t.message_id for t in turns)
        duplicates += sum(c - 1 for c in ids.values())
        unfinished += sum(t.status == TurnStatus.PENDING for t in turns)
        failed += sum(t.status == TurnStatus.FAILED for t in turns)
        overlapping += overlapping_pairs(turns)
        stored = {m.key: m.value for m in await repo.list_memories(user_id, now)}
        missing += sum(
            stored.get(key) != value for (uid, key), value in upserts.items() if uid == user_id
        )
        levels: dict[str, list[int]] = defaultdict(list)
        for record in await repo.sanction_history(user_id):
            levels[record.category].append(record.level)
            sanctions += 1
        non_monotonic += sum(any(b <= a for a, b in pairwise(seq)) for seq in levels.values())
    return StoredCounts(
        persisted, unfinished, duplicates, failed, missing, sanctions, non_monotonic, overlapping
    )


async def stored_counts(
    database_url: str, expected: Mapping[str, int], upserts: Mapping[tuple[str, str], str]
) -> StoredCounts:
    """`check_stored` on a database of its own (after the service processes ended)."""
    from storage import Database, Repository

    db = Database(database_url)
    await db.start()
    try:
        return await check_stored(Repository(db), expected, upserts)
    finally:
        await db.close()


def report_of(
    plan: LoadPlan, users: int, messages: int, results: Sequence[DriveResult], stored: StoredCounts
) -> LoadReport:
    kinds: Counter[str] = Counter()
    for result in results:
        kinds.update(result.kinds)
    upserts = latest_upserts(up for result in results for up in result.upserts)
    return LoadReport(
        users=users,
        messages=messages,
        turns_expected=plan.turns,
        turns_persisted=stored.turns_persisted,
        turns_unfinished=stored.turns_unfinished,
        duplicate_turns=stored.duplicate_turns,
        failed_turns=stored.failed_turns,
        storage_errors=sum(r.storage_errors for r in results),
        memory_upserts=len(upserts),
        memory_missing=stored.memory_missing,
        sanctions=stored.sanctions,
        non_monotonic=stored.non_monotonic,
        kinds=dict(kinds),
        seconds=max((r.seconds for r in results), default=0.0),
        overlapping_turns=stored.overlapping_turns,
        processes=len(plan.plans),
        shared_users=len(plan.shared),
    )


def load_settings(database_url: str, max_batch: int | None = None) -> Any:
    """The service's settings (its defaults) on this database; `max_batch` may override one."""
    from engine.settings import Settings

    overrides: dict[str, Any] = {} if max_batch is None else {"batch_max_size": max_batch}
    return Settings(_env_file=None, DATABASE_URL=database_url, **overrides)  # type: ignore[call-arg]


async def run_load(
    backend: Any,
    database_url: str,
    *,
    users: int,
    messages: int,
    seed: int = 0,
    max_batch: int | None = None,
) -> LoadReport:
    """The load in this process, on `backend` (its owner closes it)."""
    from engine.build import build_engine
    from storage import Database, Repository

    plan = plan_load(users, messages, seed)
    db = Database(database_url)
    await db.start()
    repo = Repository(db)
    try:
        # The service's clock, so each turn's stored start and finish are when it ran.
        async with build_engine(
            load_settings(database_url, max_batch),
            backend=backend,
            repo=repo,
            threads=1,
            maintenance=None,
        ) as service:
            result = await drive(service, plan.plans[0])
        stored = await check_stored(repo, plan.expected, latest_upserts(result.upserts))
    finally:
        await db.close()
    return report_of(plan, users, messages, [result], stored)


def _print(report: LoadReport) -> None:
    print(
        f"turns persisted: {report.turns_persisted} of {report.turns_expected} "
        f"(unfinished {report.turns_unfinished}, duplicated {report.duplicate_turns}, "
        f"failed {report.failed_turns})"
    )
    print(f"errors reaching users: {report.storage_errors}")
    print(f"memory upserts: {report.memory_upserts}, missing afterwards: {report.memory_missing}")
    print(f"sanctions: {report.sanctions}, non-monotonic level sequences: {report.non_monotonic}")
    print(
        f"overlapping turns of one user: {report.overlapping_turns} "
        f"({report.processes} processes, {report.shared_users} users writing through two)"
    )
    print(f"turn kinds: {report.kinds}; {report.seconds} s")
    print("OK" if report.ok else "PROBLEMS FOUND")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="per user")
    parser.add_argument("--preset", choices=("tiny", "production"), default="tiny")
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--database-url",
        default=None,
        help="the database to load (default: a fresh SQLite file); e.g. postgresql+asyncpg://…",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=DEFAULT_PROCESSES,
        help="service processes sharing the database (more than one: PostgreSQL only)",
    )
    parser.add_argument(
        "--json", action="store_true", help="(kept for old scripts: the JSON line always ends)"
    )
    args = parser.parse_args(argv)
    from storage.db import is_sqlite

    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.processes > 1 and (args.database_url is None or is_sqlite(args.database_url)):
        # storage/locks.py: no user lock across processes on SQLite (one process per file).
        parser.error("--processes > 1 needs a PostgreSQL --database-url")
    from engine.runtime.presets import get_preset
    from training.bootstrap import bootstrap, is_built

    preset = get_preset(args.preset, Path(args.models_dir) if args.models_dir else None)
    if args.preset == "tiny" and not is_built(preset):
        bootstrap(preset)
    with tempfile.TemporaryDirectory(prefix="ohlora-load-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'load.db'}"
        if args.processes == 1:
            report = _in_process(preset, url, args.users, args.messages, args.seed)
        else:
            from bench.load_workers import run_processes

            report = run_processes(
                preset,
                url,
                users=args.users,
                messages=args.messages,
                processes=args.processes,
                seed=args.seed,
            )
    _print(report)
    print(json.dumps(asdict(report), ensure_ascii=False))
    return 0 if report.ok else 1


def _in_process(preset: Any, url: str, users: int, messages: int, seed: int) -> LoadReport:
    from engine.serving.hub import split_backend
    from engine.settings import DEFAULT_BATCH_CHUNK_TOKENS

    # The service's shape: Kanana roles here (decoding in chunks), the rest in a child process.
    backend = split_backend(preset, threads=1, chunk_tokens=DEFAULT_BATCH_CHUNK_TOKENS)
    try:
        return asyncio.run(run_load(backend, url, users=users, messages=messages, seed=seed))
    finally:
        backend.close()


if __name__ == "__main__":
    sys.exit(main())
