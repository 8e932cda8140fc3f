"""A separate OS process that offends: `python -m tests.storage.offender URL USER COUNT`.

It prints `ready` once everything is imported, waits for `go` on stdin (the parent's
barrier: every process is released at the same moment), then starts the database as the
service does (migrations included, on a possibly empty database) and records COUNT concurrent
offences of USER, printing their levels as one JSON list.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

from engine.rules.sanctions import SanctionLadder
from storage import Database, Repository

READY = "ready"
GO = "go"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def offend(url: str, user_id: str, count: int) -> list[int]:
    db = Database(url)
    try:
        await db.start()
        repo = Repository(db)
        ladder = SanctionLadder()
        decisions = await asyncio.gather(
            *(repo.record_offence(user_id, ["love"], ladder, NOW) for _ in range(count))
        )
    finally:
        await db.close()
    return [d.records[0].level for d in decisions]


def main(argv: list[str]) -> None:
    url, user_id, count = argv[0], argv[1], int(argv[2])
    print(READY, flush=True)
    if sys.stdin.readline().strip() != GO:
        raise SystemExit("no go")
    print(json.dumps(asyncio.run(offend(url, user_id, count))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
