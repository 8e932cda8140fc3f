"""OhLoRA entry point: read settings, prepare storage, start the chosen front end.

`python main.py` hosts the Discord bot when DISCORD_TOKEN is set and otherwise opens the
local console chat; `--console` forces the console.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from pydantic import ValidationError

from engine.api import (
    MetricsUnavailable,
    Settings,
    build_engine,
    describe_error,
    messages,
    model_load_errors,
    prepare_storage,
)

EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_BAD_SETTINGS = 2

log = logging.getLogger("ohlora")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ohlora", description=__doc__)
    parser.add_argument("--console", action="store_true", help="chat locally in this terminal")
    return parser.parse_args(argv)


def loggable_database_url(url: str) -> str:
    """A database URL as it may be logged: a SQLite file's path; any other URL with its
    password hidden (``***``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<unparsable database URL>"
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def ensure_tiny_models(settings: Settings) -> None:
    """Build the embedded demo models on first run (about 15 minutes on 2 CPU cores)."""
    from engine.runtime.presets import tiny
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


NO_TOKEN_HINT = (
    "DISCORD_TOKEN is not set, so OhLoRA is not on Discord. To host the bot, put "
    "DISCORD_TOKEN=<your bot token> in the environment or in .env (Discord Developer Portal → "
    "your application → Bot → Reset Token; enable the Message Content intent there). "
    "Opening the local console chat instead (`make run ARGS=--console` does this directly)."
)
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def serve_console(settings: Settings) -> int:
    from bot.console import Console

    async with build_engine(settings) as service:
        await Console(service).run()
    return EXIT_OK


async def serve_discord(settings: Settings, **bot_options: Any) -> int:
    """Host the bot until SIGINT/SIGTERM; then finish running turns, close everything, exit 0."""
    import discord

    from bot.client import OhLoraBot
    from bot.config import BotConfig

    assert settings.discord_token is not None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in SHUTDOWN_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with build_engine(settings) as service:
            bot = OhLoraBot(service, BotConfig.from_settings(settings), **bot_options)
            hosting = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({hosting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if hosting.done():  # the gateway gave up before any signal
                stopping.cancel()
                exc = hosting.exception()
                if isinstance(exc, discord.LoginFailure):
                    print(
                        "Discord refused the token (DISCORD_TOKEN): check it in the Developer "
                        "Portal, or chat locally with `make run ARGS=--console`.",
                        file=sys.stderr,
                    )
                    return EXIT_NOT_READY
                if exc is not None:
                    log.error("the Discord connection ended: %s", type(exc).__name__)
                    return EXIT_NOT_READY
                return EXIT_OK
            log.info("shutting down: finishing turns in flight")
            await bot.shutdown()
            await asyncio.gather(hosting, return_exceptions=True)
        return EXIT_OK
    finally:
        for sig in SHUTDOWN_SIGNALS:
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except UnicodeDecodeError as exc:
        print(
            f"설정 오류 / invalid settings: .env is not UTF-8 text ({exc.reason} at byte "
            f"{exc.start})",
            file=sys.stderr,
        )
        return EXIT_BAD_SETTINGS
    try:
        url = asyncio.run(prepare_storage(settings))
    except OSError as exc:
        print(f"저장소를 준비할 수 없습니다 / cannot prepare storage: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    log.info("database ready (%s)", loggable_database_url(url))
    if settings.model_preset == "tiny":
        ensure_tiny_models(settings)
    cannot_load = model_load_errors()
    try:
        if settings.discord_token is not None and not args.console:
            return asyncio.run(serve_discord(settings))
        if not args.console:
            print(NO_TOKEN_HINT, file=sys.stderr)
        return asyncio.run(serve_console(settings))
    except cannot_load as exc:
        print(f"모델을 불러올 수 없습니다 / cannot load the models: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    except MetricsUnavailable as exc:
        print(f"메트릭을 열 수 없습니다 / {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    except KeyboardInterrupt:  # Ctrl+C: in-flight work was finished by serve_console's cleanup
        print(f"\n{messages.GOODBYE}")
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
