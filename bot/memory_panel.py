"""`/memory`: the user's items as a private panel: a page of them, a menu to choose one, and
buttons to turn pages, edit it (a form), delete it (after a confirmation), pin or unpin it, and
read its history (or everyone's items' history when none is chosen).

Only the user who opened the panel may use it (`owner_only`). Every change goes through
`service.memories`, which waits for the user's running turn, so a press is acknowledged first
(Discord wants an answer within 3 s) and the panel is then edited in place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import clipped, owner_only, send_private
from engine.api import (
    MAX_MEMORY_KEY_CHARS,
    MAX_MEMORY_VALUE_CHARS,
    MEMORY_PAGE_SIZE,
    InvalidMemoryItem,
    MemoryPage,
    MemoryPanel,
    MemoryRecord,
    OhLoraService,
    messages,
    messages_memory,
)

if TYPE_CHECKING:
    from bot.client import OhLoraBot

# Discord's limits on components.
SELECT_MAX_OPTIONS = 25  # options in one select menu
SELECT_LABEL_MAX = 100  # characters of an option's label
MODAL_TITLE_MAX = 45
TEXT_INPUT_LABEL_MAX = 45
# The edit form takes exactly what an item may hold.
MODAL_KEY_MAX = MAX_MEMORY_KEY_CHARS
MODAL_VALUE_MAX = MAX_MEMORY_VALUE_CHARS
PANEL_TIMEOUT_S = 600.0  # how long the panel's controls stay live
MODAL_TIMEOUT_S = 600.0
EMPTY_OPTION = "-"  # a select needs one option even when there is nothing to choose
assert MEMORY_PAGE_SIZE <= SELECT_MAX_OPTIONS
assert len(messages_memory.KEY_INPUT_LABEL) <= TEXT_INPUT_LABEL_MAX
assert len(messages_memory.VALUE_INPUT_LABEL) <= TEXT_INPUT_LABEL_MAX
assert len(messages_memory.EDIT_MODAL_TITLE) <= MODAL_TITLE_MAX


class MemoryPanelView(discord.ui.View):
    """One user's panel: the page shown, the item chosen, and a rejected edit's draft (the
    next form starts from it, so nothing typed is lost)."""

    def __init__(self, service: OhLoraService, owner_id: int) -> None:
        super().__init__(timeout=PANEL_TIMEOUT_S)
        self.service = service
        self.owner_id = owner_id
        self.user_id = str(owner_id)
        self.page_no = 0
        self.selected: int | None = None
        self.current: MemoryPage | None = None
        self.drafts: dict[int, tuple[str, str]] = {}  # item id -> (key, value) last refused
        self.evicted: int | None = None  # what the cap evicted, told on every redraw

    @property
    def panel(self) -> MemoryPanel:
        return self.service.memories

    def chosen(self) -> MemoryRecord | None:
        page = self.current
        if page is None or self.selected is None:
            return None
        return next((m for m in page.items if m.id == self.selected), None)

    async def render(self, notice: str | None = None) -> str:
        """Read the page again and set the controls to it; the message's text."""
        page = await self.panel.page(self.user_id, self.page_no)
        if self.evicted is None:  # the service tells it once: this panel keeps saying it
            self.evicted = page.evicted
        self.current = page = replace(page, evicted=self.evicted)
        self.page_no = page.page
        if self.chosen() is None:
            self.selected = None
        options = [
            discord.SelectOption(
                label=messages_memory.option_label(n, m, SELECT_LABEL_MAX),
                value=str(m.id),
                default=m.id == self.selected,
            )
            for n, m in enumerate(page.items, start=page.offset + 1)
        ]
        self.choose.options = options or [discord.SelectOption(label=EMPTY_OPTION, value="0")]
        self.choose.disabled = not options
        self.previous_page.disabled = page.page == 0
        self.next_page.disabled = page.page + 1 >= page.pages
        item = self.chosen()
        for button in (self.edit_item, self.delete_item, self.pin_item):
            button.disabled = item is None
        self.pin_item.label = (
            messages_memory.UNPIN_LABEL if item and item.pinned else messages_memory.PIN_LABEL
        )
        head = f"{notice}\n\n" if notice else ""
        budget = messages.MAX_ANSWER_CHARS - len(head)
        return clipped(
            head + messages_memory.panel_text(page, selected_id=self.selected, budget=budget)
        )

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await owner_only(interaction, self.owner_id)

    async def show(self, interaction: discord.Interaction, notice: str | None = None) -> None:
        """Redraw the panel in answer to this press."""
        content = await self.render(notice)
        await interaction.response.edit_message(content=content, view=self)

    async def change(
        self,
        interaction: discord.Interaction,
        action: Callable[[], Awaitable[str]],
    ) -> None:
        """Acknowledge the press, run a change (it may wait for the user's turn), redraw."""
        await interaction.response.defer()
        notice = await action()
        await interaction.edit_original_response(content=await self.render(notice), view=self)

    async def still_there(self, interaction: discord.Interaction) -> MemoryRecord | None:
        """The chosen item as stored now; when it is gone the panel says so and redraws."""
        if self.selected is not None:
            item = await self.panel.item(self.user_id, self.selected)
            if item is not None:
                return item
        notice = messages_memory.ITEM_GONE if self.selected else messages_memory.SELECT_FIRST
        self.selected = None
        await self.show(interaction, notice)
        return None

    # ---- the controls ------------------------------------------------------------------------
    @discord.ui.select(
        cls=discord.ui.Select,
        placeholder=messages_memory.SELECT_PLACEHOLDER,
        options=[discord.SelectOption(label=EMPTY_OPTION, value="0")],
        row=0,
    )
    async def choose(
        self, interaction: discord.Interaction, select: discord.ui.Select[Any]
    ) -> None:
        self.selected = int(select.values[0]) if select.values else None
        item = await self.panel.item(self.user_id, self.selected) if self.selected else None
        notice = messages_memory.selected_text(item) if item else messages_memory.ITEM_GONE
        await self.show(interaction, notice)

    @discord.ui.button(label=messages_memory.PREVIOUS_LABEL, row=1)
    async def previous_page(
        self, interaction: discord.Interaction, _: discord.ui.Button[Any]
    ) -> None:
        self.page_no -= 1
        self.selected = None
        await self.show(interaction)

    @discord.ui.button(label=messages_memory.NEXT_LABEL, row=1)
    async def next_page(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        self.page_no += 1
        self.selected = None
        await self.show(interaction)

    @discord.ui.button(label=messages_memory.EDIT_LABEL, style=discord.ButtonStyle.primary, row=2)
    async def edit_item(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        item = await self.still_there(interaction)
        if item is None:
            return
        key, value = self.drafts.get(item.id, (item.key, item.value))
        await interaction.response.send_modal(EditModal(self, item.id, key, value, interaction.id))

    @discord.ui.button(label=messages_memory.DELETE_LABEL, style=discord.ButtonStyle.danger, row=2)
    async def delete_item(
        self, interaction: discord.Interaction, _: discord.ui.Button[Any]
    ) -> None:
        item = await self.still_there(interaction)
        if item is None:
            return
        await interaction.response.edit_message(
            content=messages_memory.delete_question(item), view=ConfirmDeleteView(self, item)
        )

    @discord.ui.button(label=messages_memory.PIN_LABEL, row=2)
    async def pin_item(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        item = await self.still_there(interaction)
        if item is None:
            return

        async def action() -> str:
            done = await self.panel.set_pinned(self.user_id, item.id, not item.pinned)
            if done is None:
                return messages_memory.ITEM_GONE
            return (messages_memory.pinned if done.pinned else messages_memory.unpinned)(done)

        await self.change(interaction, action)

    @discord.ui.button(label=messages_memory.HISTORY_LABEL, row=2)
    async def show_history(
        self, interaction: discord.Interaction, _: discord.ui.Button[Any]
    ) -> None:
        item = self.chosen()
        key = item.key if item else None
        events = await self.panel.history(self.user_id, key)
        await send_private(
            interaction, messages_memory.history_text(events, self.service.tz, key=key)
        )


class ConfirmDeleteView(discord.ui.View):
    """지우기 deletes the item and returns to the panel; 취소 returns without deleting."""

    def __init__(self, panel: MemoryPanelView, item: MemoryRecord) -> None:
        super().__init__(timeout=PANEL_TIMEOUT_S)
        self.panel = panel
        self.item = item

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await owner_only(interaction, self.panel.owner_id)

    @discord.ui.button(label=messages_memory.CONFIRM_DELETE_LABEL, style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        self.stop()
        panel = self.panel

        async def action() -> str:
            gone = await panel.panel.delete(panel.user_id, self.item.id)
            panel.selected = None
            panel.drafts.pop(self.item.id, None)
            return messages_memory.deleted(self.item) if gone else messages_memory.ITEM_GONE

        await panel.change(interaction, action)

    @discord.ui.button(label=messages_memory.CANCEL_LABEL, style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button[Any]) -> None:
        self.stop()
        await self.panel.show(interaction, messages_memory.DELETE_CANCELLED)


class EditModal(discord.ui.Modal):
    """The item's key and value, prefilled, limited to what an item may hold; checked by the
    extraction rules on submit (a refusal keeps the item and the typed text)."""

    def __init__(
        self, panel: MemoryPanelView, item_id: int, key: str, value: str, nonce: int
    ) -> None:
        super().__init__(
            title=messages_memory.EDIT_MODAL_TITLE,
            custom_id=f"ohlora:memory-edit:{item_id}:{nonce}",
            timeout=MODAL_TIMEOUT_S,
        )
        self.panel = panel
        self.item_id = item_id
        self.key: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=messages_memory.KEY_INPUT_LABEL,
            default=key[:MODAL_KEY_MAX],
            min_length=1,
            max_length=MODAL_KEY_MAX,
        )
        self.value: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=messages_memory.VALUE_INPUT_LABEL,
            default=value[:MODAL_VALUE_MAX],
            style=discord.TextStyle.paragraph,
            min_length=1,
            max_length=MODAL_VALUE_MAX,
        )
        self.add_item(self.key)
        self.add_item(self.value)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        panel = self.panel
        key, value = self.key.value, self.value.value

        async def action() -> str:
            try:
                done = await panel.panel.edit(panel.user_id, self.item_id, key, value)
            except InvalidMemoryItem as refused:
                panel.drafts[self.item_id] = (key, value)
                return messages_memory.invalid_item(refused.message, key, value)
            panel.drafts.pop(self.item_id, None)
            if done is None:
                panel.selected = None
                return messages_memory.ITEM_GONE
            return messages_memory.edited(done)

        await panel.change(interaction, action)


class MemoryPanelCog(commands.Cog, name="MemoryPanel"):
    def __init__(self, bot: OhLoraBot) -> None:
        self.bot = bot
        self.service = bot.service

    @app_commands.command(name="memory", description="오로라가 기억하는 것 보기·고치기·고정하기")
    async def memory(self, interaction: discord.Interaction) -> None:
        view = MemoryPanelView(self.service, interaction.user.id)
        await send_private(interaction, await view.render(), view=view)


async def setup(bot: OhLoraBot) -> None:
    """discord.py's extension entry point."""
    await bot.add_cog(MemoryPanelCog(bot))
