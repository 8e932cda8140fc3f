"""`python -m training export-feedback`: a database with regenerates and ratings gives valid
JSONL preference rows (training/feedback_export.py's docstring is the format)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage import Database, Repository, TurnStatus
from storage.feedback import FeedbackRepository
from tests.conftest import sqlite_url
from training.__main__ import main
from training.feedback_export import EXIT_FAILED, EXIT_OK, export_feedback

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ROW_KEYS = {
    "kind",
    "turn_id",
    "final_input",
    "chosen",
    "rejected",
    "rating",
    "chosen_draw",
    "rejected_draw",
}


async def _fill(url: str) -> dict[str, int]:
    """Turns: `swiped` regenerated twice (no rating), `liked` regenerated with the first draw
    rated 👍, `rated` only 👎, `disliked` regenerated and the standing reply 👎, `plain`."""
    db = Database(url)
    await db.start()
    repo, store = Repository(db), FeedbackRepository(db)
    later = NOW + timedelta(minutes=1)

    async def answered(text: str, reply: str) -> int:
        turn = await repo.start_turn("u1", "c1", text, NOW)
        await repo.finish_turn(turn, TurnStatus.COMPLETED, NOW, final_input=text, reply=reply)
        return turn

    turns = {
        "swiped": await answered("(지금은 화요일 오후) 오늘 뭐 해?", "공부해!"),
        "liked": await answered("안녕", "안녕!"),
        "rated": await answered("잘 자", "잘 자요 🌙"),
        "disliked": await answered("심심해", "그래?"),
        "plain": await answered("뭐 해", "그냥"),
    }
    await store.replace_reply(turns["swiped"], "공부해!", "시험 공부 중이야!", later)
    await store.replace_reply(turns["swiped"], "시험 공부 중이야!", "도서관이야 📚", later)
    await store.rate(turns["liked"], "u1", 1, later)
    await store.replace_reply(turns["liked"], "안녕!", "반가워!", later)
    await store.rate(turns["rated"], "u1", -1, later)
    await store.replace_reply(turns["disliked"], "그래?", "음…", later)
    await store.rate(turns["disliked"], "u1", -1, later)
    await db.close()
    return turns


def _rows(path: Path) -> list[dict[str, object]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(r, dict) and set(r) == ROW_KEYS for r in rows)
    return rows


def test_export_writes_pairs_and_ratings_as_jsonl(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ohlora.db")
    turns = asyncio.run(_fill(url))
    out = tmp_path / "out" / "feedback.jsonl"
    count = export_feedback(url, out)
    rows = _rows(out)
    assert count == len(rows)
    by_turn: dict[int, list[dict[str, object]]] = {}
    for row in rows:
        by_turn.setdefault(int(str(row["turn_id"])), []).append(row)
    assert turns["plain"] not in by_turn

    swiped = by_turn[turns["swiped"]]
    assert {(r["kind"], r["chosen"], r["rejected"]) for r in swiped} == {
        ("pair", "도서관이야 📚", "공부해!"),
        ("pair", "도서관이야 📚", "시험 공부 중이야!"),
    }
    assert {r["final_input"] for r in swiped} == {"(지금은 화요일 오후) 오늘 뭐 해?"}
    assert {r["rating"] for r in swiped} == {None}

    # the 👍 draw wins over the reply that stands
    liked = by_turn[turns["liked"]]
    assert {(r["kind"], r["chosen"], r["rejected"], r["rating"]) for r in liked} == {
        ("pair", "안녕!", "반가워!", 1),
        ("rating", "안녕!", None, 1),
    }
    assert [
        (r["kind"], r["chosen"], r["rejected"], r["rating"]) for r in by_turn[turns["rated"]]
    ] == [("rating", None, "잘 자요 🌙", -1)]
    # the standing reply 👎 and nothing 👍: no pair, only the rating
    assert [(r["kind"], r["rejected"]) for r in by_turn[turns["disliked"]]] == [("rating", "음…")]


def test_main_writes_the_file_and_refuses_a_missing_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ohlora.db")
    asyncio.run(_fill(url))
    out = tmp_path / "feedback.jsonl"
    assert main(["export-feedback", str(out), "--database", url]) == EXIT_OK
    assert len(_rows(out)) > 0
    missing = sqlite_url(tmp_path / "nothing-here.db")
    assert (
        main(["export-feedback", str(tmp_path / "x.jsonl"), "--database", missing]) == EXIT_FAILED
    )
    assert not (tmp_path / "nothing-here.db").exists()
