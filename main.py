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


def ensure_tiny_models(settings: Settings) -> None:
    """Build the embedded demo models on first run (about 15 minutes on 2 CPU cores)."""
    from engine.presets import tiny
    from training.bootstrap import bootstrap, is_built

    preset = tiny(settings.models_dir)
    if is_built(preset):
        return
    print(
        "Building the embedded demo models from data/ (one time; about 15 minutes on a "
        f"2-core CPU) into {preset.artifacts} ...",
        file=sys.stderr,
    )
    bootstrap(preset)


async def serve_console(settings: Settings) -> int:
    """Wire storage → model worker → engine → console, and close all of it on the way out."""
    from engine.console import Console
    from engine.hub import load_backend
    from engine.pipeline import Engine
    from engine.worker import ModelWorker
    from storage import Repository

    db = Database(settings.resolved_database_url)  # already migrated by prepare_storage
    worker = ModelWorker()
    worker.start()
    try:
        backend = await worker.run(load_backend, settings)  # models load on their own thread
        engine = Engine(
            Repository(db), backend, worker, clock=settings.local_now,
            max_prompt_tokens=settings.max_prompt_tokens,
            max_message_chars=settings.max_message_chars,
        )
        await Console(engine).run()
    finally:
        await worker.stop()
        await db.close()
    return EXIT_OK


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
    if settings.model_preset == "tiny":
        ensure_tiny_models(settings)
    if settings.discord_token is not None and not args.console:
        print(
            "OhLoRA: the Discord bot is not built yet (issue 7); "
            "run `make run ARGS=--console` to chat locally.",
            file=sys.stderr,
        )
        return EXIT_NOT_READY
    try:
        return asyncio.run(serve_console(settings))
    except KeyboardInterrupt:  # Ctrl+C: in-flight work was finished by serve_console's cleanup
        from engine.messages import GOODBYE

        print(f"\n{GOODBYE}")
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
