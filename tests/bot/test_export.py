"""/export-my-data (issue 18): a private JSON file of everything stored about the caller and
nothing about anyone else, in a server, in her DM and through a user install."""

from __future__ import annotations

import json
from typing import Any

from engine.api import messages_feedback
from engine.pipeline import Call
from engine.rules.memory_items import MemoryItem
from tests.bot.conftest import Running, settle
from tests.bot.fake_discord import CHAT_CHANNEL, DM, JIHO, MINSU, PRIVATE, Install
from tests.bot.test_feedback import UP, answer, counting, stub_replies

MINSU_SAYS = "나는 민트초코를 좋아해"
JIHO_SAYS = "나는 지호고 떡볶이를 좋아해"
MINSU_REPLY = "민트초코 맛있지!"
JIHO_REPLY = "떡볶이 최고야!"


async def exported(running: Running, **where: Any) -> dict[str, Any]:
    """Run /export-my-data and parse the JSON file it answered with."""
    sent = await answer(running, await running.fake.slash("export-my-data", **where))
    assert sent.ephemeral and sent.content == messages_feedback.EXPORT_CAPTION
    [file] = sent.attachments
    assert file.filename == messages_feedback.EXPORT_FILENAME
    data: dict[str, Any] = json.loads(file.data.decode())
    return data


async def test_the_export_holds_the_users_data_and_nothing_of_anyone_else(
    toy_running: Running,
) -> None:
    running, fake = toy_running, toy_running.fake
    stub_replies(running, MINSU_REPLY, JIHO_REPLY)
    counting(
        running,
        Call.MEMORY,
        lambda row: (
            MemoryItem("좋아하는 간식", "민트초코")
            if "민트초코" in str(row)
            else MemoryItem("좋아하는 음식", "떡볶이")
        ),
    )
    await fake.message(MINSU_SAYS, channel=CHAT_CHANNEL)
    await settle(running)
    minsu_reply = fake.in_channel(CHAT_CHANNEL)[-1]
    await fake.message(JIHO_SAYS, channel=CHAT_CHANNEL, author=JIHO)
    await settle(running)
    await answer(running, await fake.click(minsu_reply, UP, channel=CHAT_CHANNEL))

    data = await exported(running, channel=CHAT_CHANNEL)
    assert data["user_id"] == MINSU["id"]
    assert [(m["key"], m["value"]) for m in data["memories"]] == [("좋아하는 간식", "민트초코")]
    [turn] = data["turns"]
    assert turn["original_text"] == MINSU_SAYS and turn["reply"] == MINSU_REPLY
    [rating] = data["ratings"]
    assert rating["rating"] == 1 and rating["reply"] == MINSU_REPLY
    # Nothing of JIHO's: not their id, their words, her reply to them, nor their memory.
    raw = json.dumps(data, ensure_ascii=False)
    for theirs in (JIHO["id"], JIHO_SAYS, JIHO_REPLY, "떡볶이"):
        assert theirs not in raw


async def test_the_export_works_in_dms_and_through_a_user_install(toy_running: Running) -> None:
    running = toy_running
    command = running.fake.registered("export-my-data")
    assert set(command["integration_types"]) == {0, 1}
    assert set(command["contexts"]) == {0, 1, 2}
    stub_replies(running, MINSU_REPLY)
    await running.fake.message(MINSU_SAYS)
    await settle(running)
    in_dm = await exported(running, channel=DM)
    assert [t["original_text"] for t in in_dm["turns"]] == [MINSU_SAYS]
    elsewhere = await exported(running, channel=PRIVATE, install=Install.USER)
    assert [t["original_text"] for t in elsewhere["turns"]] == [MINSU_SAYS]
