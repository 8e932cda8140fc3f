"""OhLoRA entry point: read settings, prepare storage, start the chosen front end.

`python main.py` hosts the Discord bot when DISCORD_TOKEN is set and otherwise opens the
local console chat; `--console` forces the console.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import ValidationError

from engine.settings import Settings, describe_error, env_name
from storage import Database

EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_BAD_SETTINGS = 2

log = logging.getLogger("ohlora")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ohlora", description=__doc__)
    parser.add_argument("--console", action="store_true", help="chat locally in this terminal")
    return parser.parse_args(argv)


async def prepare_storage(settings: Settings) -> str:
    """Create the data folder and database on first run and apply pending migrations."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        await db.start()
    finally:
        await db.close()
    return settings.resolved_database_url


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        return EXIT_BAD_SETTINGS
    try:
        url = asyncio.run(prepare_storage(settings))
    except OSError as exc:
        print(f"저장소를 준비할 수 없습니다 / cannot prepare storage: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    log.info("database ready (%s)", url.split("///")[-1])
    front_end = "console" if args.console or settings.discord_token is None else "discord"
    # The turn engine (models) and the Discord bot land with their own issues; until then
    # say plainly what is missing instead of pretending to chat.
    print(
        f"OhLoRA: storage is ready, but the {front_end} front end is not built yet "
        f"(engine: issue 6, Discord bot: issue 7). Set {env_name('discord_token')} to host on Discord "
        "once it is.",
        file=sys.stderr,
    )
    return EXIT_NOT_READY


if __name__ == "__main__":
    sys.exit(main())
