"""Issue 18: filled in by its owner (placeholder so the extension list loads)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.client import OhLoraBot


async def setup(bot: OhLoraBot) -> None:
    """discord.py's extension entry point."""
