"""`python -m training export-feedback OUT.jsonl [--database URL]`: users' regenerates and
ratings as preference data for a later LoRA / preference-tuning (DPO-style) round.

One JSON object per line, UTF-8 (Korean kept as is). Every row has these keys:

- ``"kind"``: ``"pair"`` or ``"rating"``;
- ``"turn_id"``: the turn it comes from (rows of one turn share it);
- ``"final_input"``: the reply model's input for that turn (memory item or summary, time tag,
  the user's message), exactly as the reply role saw it; the prompt is
  ``final_input + " (답변 시작)"`` (`engine.rules.prompts.reply_prompt`);
- ``"chosen"`` / ``"rejected"``: reply texts (one of them null on a rating row);
- ``"rating"``: +1 (👍), -1 (👎) or null;
- ``"chosen_draw"`` / ``"rejected_draw"``: which draw of the turn each text is (0 = the first
  reply, n = the n-th regenerate), or null.

``pair`` rows come from regenerates (🔄): the reply that stands is *chosen* over each reply it
replaced (*rejected*), unless ratings say otherwise: a draw rated 👍 is chosen instead (the
latest such draw), a draw rated 👍 is never rejected, and when the reply that stands is rated
👎 and no draw is rated 👍 the turn gives no pair (its rating rows remain). A pair row's
``rating`` is the chosen draw's rating (null when unrated).

``rating`` rows: one per 👍 / 👎, with the rated text as ``chosen`` (👍) or ``rejected`` (👎)
and the other null.

User ids are not written; turns whose texts the retention purge blanked are skipped.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from storage.db import Database, is_sqlite
from storage.feedback import FeedbackRepository, FeedbackSource

UP, DOWN = 1, -1
PAIR, RATING = "pair", "rating"
EXIT_OK, EXIT_FAILED = 0, 1


@dataclass(frozen=True)
class FeedbackRow:
    kind: str
    turn_id: int
    final_input: str
    chosen: str | None
    rejected: str | None
    rating: int | None
    chosen_draw: int | None
    rejected_draw: int | None


def _chosen_draw(source: FeedbackSource) -> int | None:
    """The draw preferred among the turn's draws (see the module docstring), or None."""
    liked = [d for d, (rating, _) in source.ratings.items() if rating == UP]
    if liked:
        return max(liked)
    standing = len(source.draws) - 1
    if source.ratings.get(standing, (0, ""))[0] == DOWN:
        return None
    return standing


def rows_of(source: FeedbackSource) -> list[FeedbackRow]:
    """The pair rows and the rating rows of one turn."""
    rows: list[FeedbackRow] = []
    chosen = _chosen_draw(source) if len(source.draws) > 1 else None
    if chosen is not None:
        chosen_rating = source.ratings.get(chosen, (None, ""))[0]
        for draw, text in enumerate(source.draws):
            if draw == chosen or source.ratings.get(draw, (0, ""))[0] == UP:
                continue
            if text == source.draws[chosen]:  # the same words cannot be preferred to themselves
                continue
            rows.append(
                FeedbackRow(
                    PAIR,
                    source.turn_id,
                    source.final_input,
                    source.draws[chosen],
                    text,
                    chosen_rating,
                    chosen,
                    draw,
                )
            )
    for draw, (rating, text) in sorted(source.ratings.items()):
        good = rating == UP
        rows.append(
            FeedbackRow(
                RATING,
                source.turn_id,
                source.final_input,
                text if good else None,
                None if good else text,
                rating,
                draw if good else None,
                None if good else draw,
            )
        )
    return rows


async def _sources(db_url: str) -> list[FeedbackSource]:
    db = Database(db_url)
    try:
        return await FeedbackRepository(db).feedback_sources()
    finally:
        await db.close()


def export_feedback(db_url: str, out: Path) -> int:
    """Write the feedback rows of the database at `db_url` to `out` (JSONL); returns how many.

    The database is only read (never migrated); a SQLite file that does not exist is an
    error, not a new empty database."""
    if is_sqlite(db_url):
        path = make_url(db_url).database
        if path and path != ":memory:" and not Path(path).expanduser().exists():
            raise FileNotFoundError(f"no database at {path}")
    sources = asyncio.run(_sources(db_url))
    rows = [row for source in sources for row in rows_of(source)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
    return len(rows)


def run(out: Path, database: str | None = None) -> int:
    """`python -m training export-feedback OUT [--database URL]`: the service's database
    unless one is named; an unreadable one is one line on stderr."""
    url = database
    if url is None:
        from engine.settings import Settings

        url = Settings().resolved_database_url
    try:
        count = export_feedback(url, out)
    except (OSError, SQLAlchemyError) as exc:  # no such file or table, unreadable database
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {count} rows to {out}")
    return EXIT_OK
