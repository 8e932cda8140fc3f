"""Moderation on Discord (issue 19) against the fake Discord: mod-log cases, their buttons and
modals, appeals, moderator roles, DM notices and decay as `/mystatus` shows it.

The bot runs over the toy models (`toy_running`): what Oh-LoRA says does not matter here; the
one test that needs a harmful verdict stubs the ethics role.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.interactions import CASE_EVENT
from bot.modlog import appeal_answer
from engine.api import AppealOutcome, AppealResult, CaseRecord, messages
from engine.pipeline import Call
from engine.rules.ethics_rules import PAEDRIP_NAME
from engine.rules.sanctions import SanctionLadder
from tests.bot.conftest import Running
from tests.bot.fake_discord import (
    CHAT,
    CHAT_CHANNEL,
    DM,
    GUILD,
    HELPER_ROLE,
    JIHO,
    JIHO_CHAT,
    JIHO_MODLOG,
    MINSU,
    MOD,
    MODERATE_MEMBERS,
    MODLOG,
    Sent,
    channel_option,
    option,
    role_option,
    user_option,
)

AS_MOD = dict(user=MOD, channel=CHAT)  # MOD owns GUILD: every permission there
AS_JIHO_OWNER = dict(user=JIHO, channel=JIHO_CHAT)
AS_MEMBER = dict(user=MINSU, channel=CHAT)  # a plain member of GUILD
HARMFUL = "너희 엄마 어쩌고"


# ---- helpers -----------------------------------------------------------------------------
async def answer(running: Running, interaction_id: str) -> Sent:
    [sent, *_] = await running.fake.wait_for(lambda: running.fake.responses(interaction_id))
    return sent


def cases_in(running: Running, channel: str) -> list[Sent]:
    return [m for m in running.fake.in_channel(channel) if m.embeds]


def titled(running: Running, channel: str, title: str) -> Sent | None:
    return next((m for m in cases_in(running, channel) if m.embeds[0]["title"] == title), None)


def fields(message: Sent) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message.embeds[0].get("fields", [])}


async def set_modlog(running: Running, modlog: str, **who: Any) -> None:
    opt, resolved = channel_option("channel", modlog)
    iid = await running.fake.command("config modlog", [opt], resolved=resolved, **who)
    sent = await answer(running, iid)
    assert f"<#{modlog}>" in sent.content, sent.content


async def posted_block(
    running: Running, user: dict, guild: str | None = GUILD
) -> tuple[CaseRecord, Sent]:
    """A block decided in `guild`, its case posted as the chat cog has it posted."""
    decided = await running.repo.record_offence(
        user["id"], ["paedrip"], SanctionLadder(), running.clock.now, guild_id=guild
    )
    assert decided.is_block and decided.case is not None
    running.bot.dispatch(CASE_EVENT, decided.case)
    title = messages.case_title(decided.case)
    message = await running.fake.wait_for(lambda: titled(running, MODLOG, title))
    return decided.case, message


async def open_modal(running: Running, interaction_id: str) -> dict[str, Any]:
    return await running.fake.wait_for(lambda: running.fake.modal(interaction_id))


async def file_appeal(running: Running, user: dict, reason: str, **where: Any) -> Sent:
    iid = await running.fake.slash("appeal", user=user, **where)
    await open_modal(running, iid)
    done = await running.fake.submit(
        iid, {messages.APPEAL_REASON_LABEL: reason}, user=user, **where
    )
    return await answer(running, done)


def appeal_message(running: Running, channel: str = MODLOG) -> Sent | None:
    return next(
        (m for m in cases_in(running, channel) if m.embeds[0]["title"].startswith("이의 신청")),
        None,
    )


def blocked(running: Running, user: dict) -> Any:
    return running.repo.active_block(user["id"], running.clock.now)


# ---- the mod-log ------------------------------------------------------------------------
async def test_a_harmful_message_posts_a_case_to_the_modlog_of_each_shared_server(
    toy_running: Running,
) -> None:
    """MINSU is in both servers; the excerpt stays in the server it was written in, and the
    server that asked for DM notices has the block sent to MINSU privately too."""
    running, fake = toy_running, toy_running.fake
    await set_modlog(running, MODLOG, **AS_MOD)
    await set_modlog(running, JIHO_MODLOG, **AS_JIHO_OWNER)
    on = await fake.command("config dm-notice", [option("state", "on")], **AS_MOD)
    assert "켜짐" in (await answer(running, on)).content
    running.engine.batchers[Call.ETHICS].fn = lambda rows: [{PAEDRIP_NAME: 0.99} for _ in rows]

    await fake.message(HARMFUL, channel=CHAT_CHANNEL)
    [case] = await fake.wait_for(
        lambda: [m for m in cases_in(running, MODLOG) if "차단" in m.embeds[0]["title"]]
    )
    other = await fake.wait_for(lambda: titled(running, JIHO_MODLOG, case.embeds[0]["title"]))
    assert case.embeds[0]["title"].startswith("사건 #")
    here, there = fields(case), fields(other)
    assert here["대상"] == there["대상"] == f"<@{MINSU['id']}>"
    assert "패드립 1단계" in here["분류"] and "차단" in here["기간"] and here["만료"]
    assert here["메시지"] == messages.spoiler(HARMFUL)
    assert "메시지" not in there  # another server's words are not copied
    for message in (case, other):
        assert fake.button(message, messages.LIFT_BUTTON) is not None
        assert fake.button(message, messages.HISTORY_BUTTON) is not None
    # the block message in the channel says how to appeal; the DM notice says it too
    reply = await fake.wait_for(
        lambda: [m for m in fake.in_channel(CHAT_CHANNEL) if messages.APPEAL_HINT in m.content]
    )
    assert reply
    [dm] = await fake.wait_for(lambda: fake.dms(MINSU))
    assert "오로라 서버" in dm.content and messages.APPEAL_HINT in dm.content


async def test_a_non_admin_pressing_lift_is_refused_and_nothing_changes(
    toy_running: Running,
) -> None:
    running, fake = toy_running, toy_running.fake
    await set_modlog(running, MODLOG, **AS_MOD)
    _, message = await posted_block(running, JIHO)
    posted = len(cases_in(running, MODLOG))
    press = await fake.click(message, messages.LIFT_BUTTON, user=MINSU, channel=MODLOG)
    refused = await answer(running, press)
    assert refused.content == messages.REFUSED and refused.ephemeral
    assert fake.modal(press) is None  # no form opened
    assert await blocked(running, JIHO) is not None
    assert len(cases_in(running, MODLOG)) == posted


async def test_an_admin_lifting_with_a_reason_ends_the_block_and_logs_a_new_case(
    toy_running: Running,
) -> None:
    running, fake = toy_running, toy_running.fake
    await set_modlog(running, MODLOG, **AS_MOD)
    block, message = await posted_block(running, JIHO)
    # The button's state is its custom_id: a reloaded cog (as after a restart) still serves it.
    await running.bot.reload_extension("bot.modlog")
    press = await fake.click(message, messages.LIFT_BUTTON, user=MOD, channel=MODLOG)
    modal = await open_modal(running, press)
    assert modal["title"] == messages.LIFT_MODAL_TITLE
    done = await fake.submit(
        press, {messages.LIFT_REASON_LABEL: "오해였어요"}, user=MOD, channel=MODLOG
    )
    sent = await answer(running, done)
    assert "해제했어요" in sent.content and sent.ephemeral
    assert await blocked(running, JIHO) is None
    lift = await fake.wait_for(
        lambda: next(
            (m for m in cases_in(running, MODLOG) if "차단 해제" in m.embeds[0]["title"]), None
        )
    )
    lifted = fields(lift)
    assert lifted["사유"] == "오해였어요" and lifted["관련 사건"] == f"#{block.id}"
    assert lifted["처리"] == f"<@{MOD['id']}>"
    assert f"#{lift.embeds[0]['title'].split('#')[1].split(' ')[0]}" in sent.content
    # the history button shows both cases, numbered
    history = await fake.click(message, messages.HISTORY_BUTTON, user=MOD, channel=MODLOG)
    shown = await answer(running, history)
    assert f"#{block.id} ⛔" in shown.content and "차단 해제" in shown.content


# ---- appeals -----------------------------------------------------------------------------
async def test_appeal_then_accept_lifts_the_block_and_dms_the_user(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    await set_modlog(running, MODLOG, **AS_MOD)
    block, _ = await posted_block(running, JIHO)
    filed = await file_appeal(running, JIHO, "제가 쓴 말이 아니에요", channel=DM)
    assert f"사건 #{block.id}" in filed.content and filed.ephemeral
    posted = await fake.wait_for(lambda: appeal_message(running))
    assert fields(posted)["사유"] == "제가 쓴 말이 아니에요"

    press = await fake.click(posted, messages.ACCEPT_BUTTON, user=MOD, channel=MODLOG)
    await open_modal(running, press)
    done = await fake.submit(
        press, {messages.DECIDE_NOTE_LABEL: "확인했어요"}, user=MOD, channel=MODLOG
    )
    assert "수락했어요" in (await answer(running, done)).content
    assert await blocked(running, JIHO) is None
    [dm] = await fake.wait_for(lambda: fake.dms(JIHO))
    assert "수락" in dm.content and "확인했어요" in dm.content
    await fake.wait_for(lambda: fake.messages[posted.id].components == [])  # decided
    await fake.wait_for(
        lambda: next(
            (m for m in cases_in(running, MODLOG) if "이의 신청 수락" in m.embeds[0]["title"]),
            None,
        )
    )
    actions = [a.action for a in await running.repo.recent_audit()]
    assert "appeal_filed" in actions and "appeal_decided" in actions


async def test_a_second_appeal_for_the_same_block_is_refused(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    await set_modlog(running, MODLOG, **AS_MOD)
    block, _ = await posted_block(running, JIHO)
    await file_appeal(running, JIHO, "억울해요", channel=DM)
    await fake.wait_for(lambda: appeal_message(running))
    again = await file_appeal(running, JIHO, "정말 억울해요", channel=JIHO_CHAT)  # in a server
    assert again.content == appeal_answer(AppealResult(AppealOutcome.ALREADY_OPEN, None, block))
    appeals = [m for m in cases_in(running, MODLOG) if m.embeds[0]["title"].startswith("이의")]
    assert len(appeals) == 1


async def test_appeal_without_a_block_opens_no_form(toy_running: Running) -> None:
    iid = await toy_running.fake.slash("appeal", user=MINSU)
    sent = await answer(toy_running, iid)
    assert "차단 중이 아니라서" in sent.content and toy_running.fake.modal(iid) is None


# ---- moderator roles -----------------------------------------------------------------------
async def test_a_moderator_role_can_use_sanctions_in_that_server_only(
    toy_running: Running,
) -> None:
    running, fake = toy_running, toy_running.fake
    fake.member_roles[(GUILD, MINSU["id"])] = [HELPER_ROLE]
    await running.repo.record_offence(
        JIHO["id"], ["paedrip"], SanctionLadder(), running.clock.now, guild_id=GUILD
    )
    before = await answer(running, await fake.slash("sanctions", target=JIHO, **AS_MEMBER))
    assert before.content == messages.REFUSED

    role, resolved = role_option("role", HELPER_ROLE, GUILD)
    added = await fake.command("config mod-role add", [role], resolved=resolved, **AS_MOD)
    assert f"<@&{HELPER_ROLE}>" in (await answer(running, added)).content

    here = await answer(running, await fake.slash("sanctions", target=JIHO, **AS_MEMBER))
    assert "패드립" in here.content and "#" in here.content  # with its case number
    there = await answer(
        running, await fake.slash("sanctions", target=JIHO, user=MINSU, channel=JIHO_CHAT)
    )
    assert there.content == messages.REFUSED
    # a moderator role may not hand itself out (no privilege escalation)
    escalate = await fake.command("config mod-role remove", [role], resolved=resolved, **AS_MEMBER)
    assert (await answer(running, escalate)).content == messages.CONFIG_REFUSED
    listed = await answer(running, await fake.command("config mod-role list", **AS_MEMBER))
    assert f"<@&{HELPER_ROLE}>" in listed.content


async def test_the_new_commands_are_hidden_guild_only_and_appeal_works_in_dms(
    toy_running: Running,
) -> None:
    """What the tree synced: admin commands for Moderate Members by default and guild-only;
    `/appeal` for everyone, in servers and in the bot's DM."""
    synced = {c["name"]: c for c in toy_running.fake.commands}
    for name in ("case", "config", "sanctions", "sanction-log"):
        assert int(synced[name]["default_member_permissions"]) == MODERATE_MEMBERS, name
        assert synced[name]["contexts"] == [0], name
    assert synced["appeal"]["default_member_permissions"] is None
    assert 1 in synced["appeal"]["contexts"]  # BOT_DM
    groups = {o["name"]: o for o in synced["config"]["options"]}
    assert {o["name"] for o in groups["mod-role"]["options"]} == {"add", "remove", "list"}


# ---- cases and the filtered log ------------------------------------------------------------
async def test_case_and_the_filtered_sanction_log(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    now, repo = running.clock.now, running.repo
    old = await repo.record_offence(
        JIHO["id"], ["love"], SanctionLadder(), now - timedelta(days=10), guild_id=GUILD
    )
    new = await repo.record_offence(MINSU["id"], ["paedrip"], SanctionLadder(), now, guild_id=GUILD)
    assert old.case is not None and new.case is not None
    shown = await answer(
        running, await fake.command("case", [option("number", new.case.id, 4)], **AS_MOD)
    )
    assert shown.embeds[0]["title"] == messages.case_title(new.case) and shown.ephemeral

    user, resolved = user_option("user", JIHO, GUILD)
    by_user = await answer(
        running, await fake.command("sanction-log", [user], resolved=resolved, **AS_MOD)
    )
    assert f"#{old.case.id}" in by_user.content and f"#{new.case.id} " not in by_user.content
    by_category = await answer(
        running, await fake.command("sanction-log", [option("category", "paedrip")], **AS_MOD)
    )
    assert (
        f"#{new.case.id}" in by_category.content and f"#{old.case.id} " not in by_category.content
    )
    today = now.strftime("%Y-%m-%d")
    by_date = await answer(
        running, await fake.command("sanction-log", [option("since", today)], **AS_MOD)
    )
    assert f"#{new.case.id}" in by_date.content and f"#{old.case.id} " not in by_date.content
    bad = await answer(
        running, await fake.command("sanction-log", [option("since", "2026/11/25")], **AS_MOD)
    )
    assert bad.content == messages.BAD_DATE
    # out of reach: JIHO's server sees no number of GUILD's
    elsewhere = await answer(
        running, await fake.command("case", [option("number", new.case.id, 4)], **AS_JIHO_OWNER)
    )
    assert elsewhere.content == messages.CASE_NOT_FOUND


# ---- decay, as /mystatus shows it ----------------------------------------------------------
@pytest.mark.parametrize("bot_overrides", [{"sanction_decay_days": 30}])
async def test_mystatus_says_when_a_level_falls_away(toy_running: Running) -> None:
    running, now = toy_running, toy_running.clock.now
    decay = timedelta(days=30)
    await running.repo.record_offence(
        MINSU["id"], ["politics"], SanctionLadder(), now - timedelta(days=40), decay=decay
    )
    await running.repo.record_offence(
        MINSU["id"], ["love"], SanctionLadder(), now - timedelta(days=1), decay=decay
    )
    sent = await answer(running, await running.fake.slash("mystatus"))
    lines = [line for line in sent.content.splitlines() if line.startswith("⏳")]
    assert len(lines) == 1 and "사라져요" in lines[0]
    assert "정치" not in lines[0]  # the 40-day-old level no longer counts


# ---- every new command and button refuses a non-admin ---------------------------------------
def _commands() -> list[tuple[str, str, list[dict], dict]]:
    role, roles = role_option("role", HELPER_ROLE, GUILD)
    channel, channels = channel_option("channel", MODLOG)
    user, users = user_option("user", JIHO, GUILD)
    return [
        ("command", "case", [option("number", 1, 4)], {}),
        ("command", "sanction-log", [user], users),
        ("command", "sanction-log", [option("category", "love")], {}),
        ("command", "sanctions", [user], users),
        ("command", "config modlog", [channel], channels),
        ("command", "config dm-notice", [option("state", "on")], {}),
        ("command", "config show", [], {}),
        ("command", "config mod-role add", [role], roles),
        ("command", "config mod-role remove", [role], roles),
        ("command", "config mod-role list", [], {}),
    ]


SURFACES = [
    *_commands(),
    ("button", messages.LIFT_BUTTON, [], {}),
    ("button", messages.HISTORY_BUTTON, [], {}),
    ("button", messages.ACCEPT_BUTTON, [], {}),
    ("button", messages.DENY_BUTTON, [], {}),
]


@pytest.mark.parametrize(
    ("kind", "name", "options", "resolved"),
    SURFACES,
    ids=[f"{kind}:{name}:{i}" for i, (kind, name, _, _) in enumerate(SURFACES)],
)
async def test_every_moderation_command_and_button_refuses_a_non_admin(
    toy_running: Running, kind: str, name: str, options: list[dict], resolved: dict
) -> None:
    running, fake = toy_running, toy_running.fake
    await set_modlog(running, MODLOG, **AS_MOD)
    _, block_message = await posted_block(running, JIHO)
    filed = await running.service.moderation.appeal(JIHO["id"], "억울해요")
    # (the extension's own module: `load_extension` imports it anew, so no isinstance here)
    cog: Any = running.bot.get_cog("ModLog")
    assert filed.appeal is not None
    await cog.post_appeal(filed.appeal, filed.block_case)
    appeal = await fake.wait_for(lambda: appeal_message(running))
    audit = await running.repo.recent_audit()
    posted = len(fake.in_channel(MODLOG))

    if kind == "command":
        iid = await fake.command(name, options, resolved=resolved, **AS_MEMBER)
    else:
        on = block_message if name in (messages.LIFT_BUTTON, messages.HISTORY_BUTTON) else appeal
        iid = await fake.click(on, name, user=MINSU, channel=MODLOG)
    sent = await answer(running, iid)
    assert sent.content == messages.REFUSED and sent.ephemeral
    assert fake.modal(iid) is None
    assert await running.repo.recent_audit() == audit  # nothing read, nothing written
    assert await blocked(running, JIHO) is not None
    assert len(fake.in_channel(MODLOG)) == posted
    settings = await running.service.moderation.modlog_channels([GUILD])
    assert settings == {GUILD: MODLOG}
    assert not await running.service.moderation.dm_notice_enabled(GUILD)
