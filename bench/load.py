"""Load test: many users at once through the engine and storage; prints what was kept.

`python -m bench.load [--users 64] [--messages 20]`: every user sends their messages one after
another (each after the previous reply), all users at once. Prompts mix the valid split of
the fine-tuning set with harmful prompts of the ethics test split, so warnings and blocks
happen too. Afterwards the database is checked: every turn stored exactly once and finished,
every memory item the engine extracted is there with its latest value, sanction levels rise
strictly per user and category, and no user saw a storage error.
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
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

DEFAULT_USERS = 64
DEFAULT_MESSAGES = 20
HARMFUL_SHARE = 0.15
TIMEOUT_S = 1800  # a deadlock shows as this timeout, not as a hang


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


async def run_load(
    backend: Any,
    database_url: str,
    *,
    users: int,
    messages: int,
    seed: int = 0,
    max_batch: int | None = None,
) -> LoadReport:
    from engine.build import build_engine
    from engine.pipeline import TurnKind
    from engine.settings import Settings
    from storage import Database, Repository, TurnStatus

    benign, harmful = load_prompts(seed)
    rng = random.Random(seed)
    # The service's settings (its defaults) on this database; `max_batch` may override one.
    overrides: dict[str, Any] = {} if max_batch is None else {"batch_max_size": max_batch}
    settings = Settings(_env_file=None, DATABASE_URL=database_url, **overrides)  # type: ignore[call-arg]
    db = Database(database_url)
    await db.start()
    repo = Repository(db)
    now = datetime.now().astimezone()
    kinds: Counter[str] = Counter()
    upserts: dict[tuple[str, str], str] = {}
    storage_errors = 0

    async def user(index: int) -> None:
        nonlocal storage_errors
        user_id = f"load-user-{index}"
        for n in range(messages):
            pool = harmful if rng.random() < HARMFUL_SHARE else benign
            text = pool[rng.randrange(len(pool))]
            result = await service.chat(user_id, "load", text, message_id=f"{user_id}-{n}")
            kinds[str(result.kind)] += 1
            if any("locked" in m.lower() or "database" in m.lower() for m in result.messages):
                storage_errors += 1
            if result.kind is TurnKind.FAILED:
                storage_errors += 1
            if result.background is not None:
                done = await result.background
                if done is not None and done.memory is not None:
                    upserts[(user_id, done.memory.key)] = done.memory.value

    started = time.perf_counter()
    try:
        async with build_engine(
            settings, clock=lambda: now, backend=backend, repo=repo, threads=1, maintenance=None
        ) as service:
            await asyncio.wait_for(asyncio.gather(*(user(i) for i in range(users))), TIMEOUT_S)
        seconds = time.perf_counter() - started
        turns_persisted = unfinished = duplicates = failed = sanctions = non_monotonic = 0
        missing = 0
        for index in range(users):
            user_id = f"load-user-{index}"
            turns = await repo.turns(user_id, limit=messages * 2)
            turns_persisted += len(turns)
            ids = Counter(t.message_id for t in turns)
            duplicates += sum(c - 1 for c in ids.values())
            unfinished += sum(t.status == TurnStatus.PENDING for t in turns)
            failed += sum(t.status == TurnStatus.FAILED for t in turns)
            stored = {m.key: m.value for m in await repo.list_memories(user_id, now)}
            missing += sum(
                stored.get(key) != value for (uid, key), value in upserts.items() if uid == user_id
            )
            levels: dict[str, list[int]] = defaultdict(list)
            for record in await repo.sanction_history(user_id):
                levels[record.category].append(record.level)
                sanctions += 1
            non_monotonic += sum(any(b <= a for a, b in pairwise(seq)) for seq in levels.values())
    finally:
        await db.close()
    return LoadReport(
        users,
        messages,
        users * messages,
        turns_persisted,
        unfinished,
        duplicates,
        failed,
        storage_errors,
        len(upserts),
        missing,
        sanctions,
        non_monotonic,
        dict(kinds),
        round(seconds, 1),
    )


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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from engine.runtime.presets import get_preset
    from engine.serving.hub import split_backend
    from engine.settings import DEFAULT_BATCH_CHUNK_TOKENS
    from training.bootstrap import bootstrap, is_built

    preset = get_preset(args.preset, Path(args.models_dir) if args.models_dir else None)
    if args.preset == "tiny" and not is_built(preset):
        bootstrap(preset)
    # The service's shape: Kanana roles here (decoding in chunks), the rest in a child process.
    backend = split_backend(preset, threads=1, chunk_tokens=DEFAULT_BATCH_CHUNK_TOKENS)
    try:
        with tempfile.TemporaryDirectory(prefix="ohlora-load-") as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'load.db'}"
            report = asyncio.run(
                run_load(backend, url, users=args.users, messages=args.messages, seed=args.seed)
            )
    finally:
        backend.close()
    print(
        f"turns persisted: {report.turns_persisted} of {report.turns_expected} "
        f"(unfinished {report.turns_unfinished}, duplicated {report.duplicate_turns}, "
        f"failed {report.failed_turns})"
    )
    print(f"errors reaching users: {report.storage_errors}")
    print(f"memory upserts: {report.memory_upserts}, missing afterwards: {report.memory_missing}")
    print(f"sanctions: {report.sanctions}, non-monotonic level sequences: {report.non_monotonic}")
    print(f"turn kinds: {report.kinds}; {report.seconds} s")
    print("OK" if report.ok else "PROBLEMS FOUND")
    if args.json:
        print(json.dumps(asdict(report), ensure_ascii=False))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
