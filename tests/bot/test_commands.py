"""Slash commands against the fake Discord: each works for its user; admin ones refuse others."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest

import bot.admin as admin
from engine.api import messages
from engine.rules.sanctions import SanctionLadder
from storage.records import EVERYWHERE
from tests.bot.conftest import ADMIN, Running
from tests.bot.fake_discord import (
    CHAT,
    DM,
    GUILD,
    JIHO,
    JIHO_CHAT,
    JIHO_GUILD,
    MINSU,
    MOD,
    MODERATE_MEMBERS,
    STRANGER,
    NotOffered,
    Sent,
)


async def answer(running: Running, interaction_id: str) -> Sent:
    """The (first) response to an interaction, once it arrived."""
    [sent, *_] = await running.fake.wait_for(lambda: running.fake.responses(interaction_id))
    return sent


async def block(running: Running, user: dict) -> None:
    for _ in range(2):  # politics level 2: a 3-day block
        decided = await running.repo.record_offence(
            user["id"], ["politics"], SanctionLadder(), running.clock.now
        )
    assert decided.is_block


async def block_in(running: Running, user: dict, guild_id: str | None) -> None:
    """One block decided in this server (None: in a DM), as the engine records it."""
    decided = await running.repo.record_offence(
        user["id"], ["paedrip"], SanctionLadder(), running.clock.now, guild_id=guild_id
    )
    assert decided.is_block


# ---- for everyone ----------------------------------------------------------------------
async def test_help_lists_the_commands_privately(running: Running) -> None:
    sent = await answer(running, await running.fake.slash("help"))
    assert sent.ephemeral
    for name in ("/memory", "/forget", "/reset", "/mystatus"):
        assert name in sent.content


async def test_memory_shows_my_items_only(running: Running) -> None:
    now = running.clock.now
    await running.repo.upsert_memory(MINSU["id"], "좋아하는 가수", "아이유", now)
    await running.repo.upsert_memory(JIHO["id"], "좋아하는 꽃", "백합", now)
    sent = await answer(running, await running.fake.slash("memory"))
    assert sent.ephemeral and "[좋아하는 가수: 아이유]" in sent.content
    assert "백합" not in sent.content
    empty = await answer(running, await running.fake.slash("memory", user=STRANGER))
    assert "기억하고 있는 것이 없어요" in empty.content


async def test_forget_one_item_after_confirmation(running: Running) -> None:
    now, repo, fake = running.clock.now, running.repo, running.fake
    await repo.upsert_memory(MINSU["id"], "좋아하는 가수", "아이유", now)
    await repo.upsert_memory(MINSU["id"], "오늘 일정", "시험", now)
    question = await answer(running, await fake.slash("forget", {"item": "좋아하는 가수"}))
    assert question.ephemeral and "[좋아하는 가수]" in question.content
    assert len(await repo.list_memories(MINSU["id"], now)) == 2  # nothing yet
    await fake.click(question, "지우기")
    await fake.wait_for(lambda: "지웠어요" in fake.messages[question.id].content)
    assert fake.messages[question.id].components == []  # buttons gone
    assert [m.key for m in await repo.list_memories(MINSU["id"], now)] == ["오늘 일정"]


async def test_forget_cancel_and_unknown_item_change_nothing(running: Running) -> None:
    now, repo, fake = running.clock.now, running.repo, running.fake
    await repo.upsert_memory(MINSU["id"], "좋아하는 가수", "아이유", now)
    unknown = await answer(running, await fake.slash("forget", {"item": "혈액형"}))
    assert "[혈액형] 이라는 기억은 없어요" in unknown.content and not unknown.components
    question = await answer(running, await fake.slash("forget", {"item": "all"}))
    stranger_click = await fake.click(question, "지우기", user=JIHO)
    assert (await answer(running, stranger_click)).content == messages.NOT_YOURS
    await fake.click(question, "취소")
    await fake.wait_for(lambda: fake.messages[question.id].content == messages.CANCELLED)
    assert len(await repo.list_memories(MINSU["id"], now)) == 1


async def test_forget_all_removes_memories_and_keeps_sanctions(running: Running) -> None:
    now, repo, fake = running.clock.now, running.repo, running.fake
    await repo.upsert_memory(MINSU["id"], "좋아하는 가수", "아이유", now)
    await repo.upsert_memory(MINSU["id"], "내일 일정", "시험", now)
    await repo.upsert_memory(JIHO["id"], "좋아하는 꽃", "백합", now)
    await block(running, MINSU)
    question = await answer(running, await fake.slash("forget", {"item": "all"}))
    assert "2개" in question.content
    await fake.click(question, "지우기")
    await fake.wait_for(lambda: "기억 2개를 지웠어요" in fake.messages[question.id].content)
    assert await repo.list_memories(MINSU["id"], now) == []
    assert len(await repo.list_memories(JIHO["id"], now)) == 1
    assert len(await repo.sanction_history(MINSU["id"])) == 2
    assert await repo.active_block(MINSU["id"], now) is not None


async def test_reset_clears_my_summary_in_this_channel_only(running: Running) -> None:
    now, repo = running.clock.now, running.repo
    await repo.set_summary(MINSU["id"], DM, "오로라가 인사함", now)
    await repo.set_summary(MINSU["id"], CHAT, "다른 채널 요약", now)
    sent = await answer(running, await running.fake.slash("reset"))
    assert sent.ephemeral and "요약을 지웠어요" in sent.content
    assert await repo.get_summary(MINSU["id"], DM) == ""
    assert await repo.get_summary(MINSU["id"], CHAT) == "다른 채널 요약"


async def test_mystatus_shows_warnings_and_blocks_with_expiry(running: Running) -> None:
    clean = await answer(running, await running.fake.slash("mystatus"))
    assert "기록이 없어요" in clean.content
    await block(running, MINSU)
    sent = await answer(running, await running.fake.slash("mystatus"))
    assert sent.ephemeral
    lines = sent.content.splitlines()
    assert (
        lines[0].startswith("⛔") and "3일 차단" in lines[0] and "2026.11.28 14:00:00" in lines[0]
    )
    assert "차단 중" in lines[0]
    assert lines[1].startswith("⚠️") and "경고" in lines[1]


async def test_forget_me_deletes_my_data_and_keeps_sanctions(running: Running) -> None:
    now, repo, fake = running.clock.now, running.repo, running.fake
    await repo.upsert_memory(MINSU["id"], "좋아하는 가수", "아이유", now)
    await repo.start_turn(MINSU["id"], DM, "안녕", now)
    await block(running, MINSU)
    question = await answer(running, await fake.slash("forget-me"))
    await fake.click(question, "지우기")
    await fake.wait_for(lambda: "기억 1개, 대화 1개" in fake.messages[question.id].content)
    assert await repo.list_memories(MINSU["id"], now) == []
    assert await repo.turns(MINSU["id"]) == []
    assert await repo.active_block(MINSU["id"], now) is not None


# ---- for admins ------------------------------------------------------------------------
async def test_sanctions_shows_a_users_history_and_is_audited(running: Running) -> None:
    await block(running, JIHO)
    sent = await answer(
        running, await running.fake.slash("sanctions", user=ADMIN, channel=CHAT, target=JIHO)
    )
    assert sent.ephemeral and "지호" in sent.content and "3일 차단" in sent.content
    [entry] = await running.repo.recent_audit()
    assert (entry.actor_id, entry.action, entry.target_user_id) == (
        ADMIN["id"],
        "view_sanctions",
        JIHO["id"],
    )


async def test_unban_lifts_the_block_and_is_audited(running: Running) -> None:
    await block(running, JIHO)
    iid = await running.fake.slash(
        "unban", {"reason": "오해였어요"}, user=ADMIN, channel=CHAT, target=JIHO
    )
    sent = await answer(running, iid)
    assert "해제했어요" in sent.content
    assert await running.repo.active_block(JIHO["id"], running.clock.now) is None
    [entry] = await running.repo.recent_audit()
    assert (entry.actor_id, entry.action, entry.target_user_id) == (
        ADMIN["id"],
        "unban",
        JIHO["id"],
    )
    assert "오해였어요" in entry.detail


async def test_sanction_log_lists_recent_decisions_and_admin_actions(running: Running) -> None:
    await block(running, JIHO)
    await running.repo.lift_blocks(
        JIHO["id"], ADMIN["id"], "테스트", running.clock.now, scope=EVERYWHERE
    )
    sent = await answer(running, await running.fake.slash("sanction-log", user=ADMIN, channel=CHAT))
    assert sent.ephemeral
    assert "최근 제재" in sent.content and f"<@{JIHO['id']}>" in sent.content
    assert "unban" in sent.content
    assert (await running.repo.recent_audit())[0].action == "view_log"


@pytest.mark.parametrize(
    ("command", "options"),
    [("sanctions", {}), ("unban", {"reason": "풀어 주세요"}), ("sanction-log", {})],
)
async def test_admin_commands_refuse_a_non_admin_and_change_nothing(
    running: Running, command: str, options: dict
) -> None:
    await block(running, JIHO)
    target = JIHO if command != "sanction-log" else None
    # A plain member in a guild is refused.
    iid = await running.fake.slash(command, options, user=MINSU, channel=CHAT, target=target)
    sent = await answer(running, iid)
    assert sent.content == messages.REFUSED and sent.ephemeral
    # In a DM Discord does not even offer the moderator commands (server-only), to a plain
    # member or to a guild's moderator, who is no one's moderator there.
    for user in (MINSU, MOD):
        with pytest.raises(NotOffered):
            await running.fake.slash(command, options, user=user, channel=DM, target=target)
    assert await running.repo.recent_audit() == []
    assert await running.repo.active_block(JIHO["id"], running.clock.now) is not None


# ---- authority: who may lift whose block (issue 15, finding 1) ---------------------------
# MOD owns GUILD and JIHO owns JIHO_GUILD: an owner holds every permission, Moderate Members too.
AS_GUILD_MOD = dict(user=MOD, channel=CHAT)
AS_JIHO_OWNER = dict(user=JIHO, channel=JIHO_CHAT)


@pytest.mark.parametrize("earned_in", [None, GUILD], ids=["in-dm", "in-another-server"])
@pytest.mark.parametrize("who", ["blocked-user", "global-admin"])
async def test_a_blocked_user_cannot_unban_themselves_through_their_own_server(
    running: Running, earned_in: str | None, who: str
) -> None:
    """Make a server, invite the bot, hold Moderate Members as its owner, `/unban user:@self`."""
    user, where = (
        (JIHO, AS_JIHO_OWNER) if who == "blocked-user" else (ADMIN, {"channel": JIHO_CHAT})
    )
    await block_in(running, user, earned_in)
    iid = await running.fake.slash(
        "unban", {"reason": "내 서버니까"}, target=user, **{"user": user, **where}
    )
    sent = await answer(running, iid)
    assert await running.repo.active_block(user["id"], running.clock.now) is not None
    assert not [r for r in await running.repo.sanction_history(user["id"]) if r.lifted_at]
    assert sent.content == messages.NOT_ON_YOURSELF and sent.ephemeral
    [entry] = await running.repo.recent_audit()
    assert (entry.action, entry.actor_id, entry.guild_id) == (
        "unban_refused",
        user["id"],
        JIHO_GUILD,
    )


@pytest.mark.parametrize("earned_in", [GUILD, None], ids=["in-another-server", "in-dm"])
async def test_a_moderator_can_neither_lift_nor_see_a_decision_made_elsewhere(
    running: Running, earned_in: str | None
) -> None:
    fake, repo = running.fake, running.repo
    await block_in(running, MINSU, earned_in)  # MINSU is a member of JIHO's server as well
    no = await answer(
        running, await fake.slash("unban", {"reason": "봐줘"}, target=MINSU, **AS_JIHO_OWNER)
    )
    assert await repo.active_block(MINSU["id"], running.clock.now) is not None
    assert no.content.startswith(messages.NOTHING_DECIDED_HERE.format(name="민수"))
    shown = await answer(running, await fake.slash("sanctions", target=MINSU, **AS_JIHO_OWNER))
    assert messages.NO_SANCTIONS in shown.content and "패드립" not in shown.content
    log = await answer(running, await fake.slash("sanction-log", **AS_JIHO_OWNER))
    assert "패드립" not in log.content and "⛔" not in log.content  # no decision, no lift reason
    # ... while GUILD's moderator sees it when it was GUILD's
    theirs = await answer(running, await fake.slash("sanctions", target=MINSU, **AS_GUILD_MOD))
    assert ("패드립" in theirs.content) == (earned_in == GUILD)


async def test_lifting_one_servers_decision_leaves_the_other_blocks_in_force(
    running: Running,
) -> None:
    repo, now = running.repo, running.clock.now
    await block_in(running, MINSU, JIHO_GUILD)
    await block_in(running, MINSU, GUILD)
    sent = await answer(
        running,
        await running.fake.slash("unban", {"reason": "반성함"}, target=MINSU, **AS_GUILD_MOD),
    )
    assert await repo.active_block(MINSU["id"], now) is not None
    lifted = {r.guild_id: r.lifted_at is not None for r in await repo.sanction_history(MINSU["id"])}
    assert lifted == {JIHO_GUILD: False, GUILD: True}
    assert "해제했어요" in sent.content and messages.STILL_BLOCKED_ELSEWHERE in sent.content
    [entry] = await repo.recent_audit()
    assert (entry.action, entry.actor_id, entry.guild_id) == ("unban", MOD["id"], GUILD)


async def test_a_global_admin_sees_and_lifts_every_decision_from_any_server(
    running: Running,
) -> None:
    """ADMIN holds no permission in JIHO's server: the configured id is what counts."""
    repo, now = running.repo, running.clock.now
    for guild in (GUILD, JIHO_GUILD, None):
        await block_in(running, MINSU, guild)
    as_admin = dict(user=ADMIN, channel=JIHO_CHAT)
    shown = await answer(running, await running.fake.slash("sanctions", target=MINSU, **as_admin))
    for where in ("오로라 서버", "지호네 서버", "DM"):
        assert where in shown.content
    sent = await answer(
        running,
        await running.fake.slash("unban", {"reason": "전체 해제"}, target=MINSU, **as_admin),
    )
    assert await repo.active_block(MINSU["id"], now) is None
    assert "3건" in sent.content and messages.STILL_BLOCKED_ELSEWHERE not in sent.content


# ---- what moderators see, and how (issue 15, finding 7) ----------------------------------
async def test_the_sanction_log_pages_through_more_than_ten_rows(running: Running) -> None:
    fake, repo, now = running.fake, running.repo, running.clock.now
    users = [f"9000000000000077{i:02d}" for i in range(25)]
    for uid in users:
        await repo.record_offence(uid, ["love"], SanctionLadder(), now, guild_id=GUILD)
    await repo.record_offence(STRANGER["id"], ["love"], SanctionLadder(), now, guild_id=JIHO_GUILD)

    def shown(message: Sent) -> set[str]:
        return {uid for uid in users + [STRANGER["id"]] if f"<@{uid}>" in message.content}

    first = await answer(running, await fake.slash("sanction-log", **AS_GUILD_MOD))
    assert first.components, "no way to see past the first page"
    assert fake.button(first, admin.NEXT_PAGE) is not None
    assert fake.button(first, admin.PREVIOUS_PAGE).get("disabled")
    seen = [shown(first)]
    for _ in range(2):
        before = fake.messages[first.id].content
        await fake.click(fake.messages[first.id], admin.NEXT_PAGE, **AS_GUILD_MOD)
        await fake.wait_for(lambda before=before: fake.messages[first.id].content != before)
        seen.append(shown(fake.messages[first.id]))
    assert seen == [set(users[15:]), set(users[5:15]), set(users[:5])]  # newest first
    assert fake.button(fake.messages[first.id], admin.NEXT_PAGE).get("disabled")
    # the pages are the moderator's: someone else's click changes nothing
    last = fake.messages[first.id].content
    other = await fake.click(fake.messages[first.id], admin.PREVIOUS_PAGE, user=MINSU, channel=CHAT)
    assert (await answer(running, other)).content == messages.NOT_YOURS
    assert fake.messages[first.id].content == last


async def test_a_users_history_pages_too(running: Running) -> None:
    fake, repo, now = running.fake, running.repo, running.clock.now
    for _ in range(12):
        await repo.record_offence(JIHO["id"], ["love"], SanctionLadder(), now, guild_id=GUILD)

    def rows(message: Sent) -> int:
        # `#12 ⛔ …`: each row leads with its case number (issue 19)
        rows = [line.split(" ", 1)[-1] for line in message.content.splitlines()]
        return sum(row.startswith(("⚠️", "⛔")) for row in rows)

    first = await answer(running, await fake.slash("sanctions", target=JIHO, **AS_GUILD_MOD))
    assert first.components, "no way to see past the first page"
    assert rows(first) == admin.PAGE_ROWS
    await fake.click(first, admin.NEXT_PAGE, **AS_GUILD_MOD)
    await fake.wait_for(lambda: rows(fake.messages[first.id]) == 12 - admin.PAGE_ROWS)


async def test_moderator_views_make_no_member_lookups_and_survive_a_forbidden(
    running: Running,
) -> None:
    """A decision stays its server's even after the member left: no REST call asks Discord."""
    fake = running.fake
    fake.member_fetch_error = 403  # the bot lost access to the member list
    await block_in(running, STRANGER, GUILD)  # STRANGER is not (or no longer) a member
    await block_in(running, JIHO, GUILD)
    log = await answer(running, await fake.slash("sanction-log", **AS_GUILD_MOD))
    assert log.content != messages.COMMAND_FAILED
    assert f"<@{STRANGER['id']}>" in log.content and f"<@{JIHO['id']}>" in log.content
    shown = await answer(running, await fake.slash("sanctions", target=STRANGER, **AS_GUILD_MOD))
    assert "패드립" in shown.content
    assert not [path for _, path in fake.calls if "/members/" in path]


@pytest.mark.parametrize(
    ("command", "options"),
    [("sanctions", {}), ("unban", {"reason": "오해"}), ("sanction-log", {})],
)
async def test_admin_commands_defer_before_they_write(
    running: Running, command: str, options: dict
) -> None:
    """They write the audit log before answering: a deferral first, within Discord's 3 s."""
    await block_in(running, JIHO, GUILD)
    target = JIHO if command != "sanction-log" else None
    iid = await running.fake.slash(command, options, target=target, **AS_GUILD_MOD)
    sent = await answer(running, iid)
    assert running.fake.callbacks[iid][0] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert sent.ephemeral and sent.content != messages.REFUSED


async def test_admin_commands_are_guild_only_for_moderators_by_default(running: Running) -> None:
    """What the tree synced: hidden from members without Moderate Members, and from DMs."""
    synced = {c["name"]: c for c in running.fake.commands}
    for name in ("sanctions", "unban", "sanction-log"):
        assert int(synced[name]["default_member_permissions"]) == MODERATE_MEMBERS, name
        assert synced[name]["contexts"] == [0] and synced[name]["dm_permission"] is False, name
    assert synced["mystatus"]["default_member_permissions"] is None


async def test_the_0400_job_ages_day_bound_memories(running: Running) -> None:
    from engine.maintenance import DAILY_JOB_ID, DailyMaintenance

    maintenance = running.service.maintenance  # the service's, not a cog's
    assert isinstance(maintenance, DailyMaintenance) and maintenance.scheduler is not None
    job = maintenance.scheduler.get_job(DAILY_JOB_ID)
    now = running.clock.now  # Wednesday 14:00 in Seoul
    assert job.trigger.get_next_fire_time(None, now) == (now + timedelta(days=1)).replace(hour=4)
    await running.repo.upsert_memory(MINSU["id"], "내일 일정", "시험", now)
    await running.repo.upsert_memory(MINSU["id"], "오늘 일정", "카페", now)
    running.clock.now = (now + timedelta(days=1)).replace(hour=4)  # the clock the job reads
    report = await maintenance.run()
    assert (report.aging.expired, report.aging.promoted) == (1, 1)
    items = await running.repo.list_memories(MINSU["id"], running.clock.now)
    assert [m.render() for m in items] == ["[오늘 일정: 시험]"]
    shown = await answer(running, await running.fake.slash("memory"))
    assert "[오늘 일정: 시험]" in shown.content and "내일" not in shown.content


# ---- issue 15: the memory cap, and deletion/reset against a running turn --------------------
async def test_memory_says_the_cap_and_that_the_least_recently_used_went(running: Running) -> None:
    """Findings 5: the cap evicts the item used or updated longest ago, and `/memory` says so
    (once). The memory and retrieval roles are stand-ins: this is about the pipeline."""
    from engine.rules.memory_items import MemoryItem
    from tests.bot.conftest import settle

    engine = running.engine
    engine.max_memory_items = 2
    items = iter(
        [
            MemoryItem("좋아하는 꽃", "백합"),
            MemoryItem("좋아하는 가수", "아이유"),
            MemoryItem("오늘 일정", "시험"),
        ]
    )
    engine.batchers["memory"].fn = lambda rows: [next(items) for _ in rows]
    engine.batchers["retrieve"].fn = lambda rows: [None for _ in rows]
    for text in ("오늘 날씨 좋다", "점심 뭐 먹지", "주말에 뭐 할까"):
        running.clock.now += timedelta(minutes=1)
        await running.fake.message(text)
        await settle(running)

    shown = await answer(running, await running.fake.slash("memory"))
    assert "최대 2개" in shown.content and "1개를 잊었어요" in shown.content
    assert "[좋아하는 꽃: 백합]" not in shown.content
    assert "[좋아하는 가수: 아이유]" in shown.content and "[오늘 일정: 시험]" in shown.content
    again = await answer(running, await running.fake.slash("memory"))
    assert "최대 2개" in again.content and "잊었어요" not in again.content  # told once


def _hold_summaries(running: Running) -> tuple[Any, Any]:
    """Hold the summary role (a background role) until the test sets the second event."""
    import threading

    batcher = running.engine.batchers["summary"]
    summarize = batcher.fn
    entered, release = threading.Event(), threading.Event()

    def held(rows: list[Any]) -> Any:
        entered.set()
        assert release.wait(120), "the test never released the summary role"
        return summarize(rows)

    batcher.fn = held
    return entered, release


async def test_forget_me_during_a_background_role_leaves_no_summary_behind(
    running: Running,
) -> None:
    """Finding 6: the deletion waits for the user's turn lock, which the background roles hold."""
    import asyncio

    fake, repo, engine = running.fake, running.repo, running.engine
    entered, release = _hold_summaries(running)
    await fake.message("안녕! 나는 민수야")
    assert await asyncio.to_thread(entered.wait, 120)  # the reply is out, the summary running
    question = await answer(running, await fake.slash("forget-me"))
    press = await fake.click(question, "지우기")
    await fake.wait_for(lambda: engine._locks.waiting(MINSU["id"]) == 2)  # the deletion waits
    # ... and the press was acknowledged at once (deferred update), within Discord's 3 s.
    await fake.wait_for(lambda: fake.callbacks.get(press) == [6])
    release.set()
    await fake.wait_for(lambda: "지웠어요" in fake.messages[question.id].content, 120)
    await engine.drain()
    assert await repo.get_summary(MINSU["id"], DM) == ""
    assert await repo.turns(MINSU["id"]) == []
    assert await repo.list_memories(MINSU["id"], running.clock.now) == []


async def test_reset_during_a_background_role_leaves_no_summary_behind(running: Running) -> None:
    import asyncio

    fake, repo, engine = running.fake, running.repo, running.engine
    entered, release = _hold_summaries(running)
    await fake.message("안녕! 나는 민수야")
    assert await asyncio.to_thread(entered.wait, 120)
    iid = await fake.slash("reset")
    await fake.wait_for(lambda: engine._locks.waiting(MINSU["id"]) == 2)
    release.set()
    sent = await answer(running, iid)
    assert sent.ephemeral and "요약을 지웠어요" in sent.content
    await engine.drain()
    assert await repo.get_summary(MINSU["id"], DM) == ""


async def test_forget_me_keeps_the_rate_window(running: Running) -> None:
    """Finding 6: asking to be forgotten is no way around the rate limit."""
    from bot.ratelimit import RateLimiter
    from tests.bot.conftest import settle

    fake = running.fake
    chat = running.bot.get_cog("Chat")
    chat.limiter = RateLimiter(1)
    chat.limiter.clock = lambda: 0.0  # time stands still: the window cannot run out meanwhile
    await fake.message("안녕")
    await settle(running)
    question = await answer(running, await fake.slash("forget-me"))
    await fake.click(question, "지우기")
    await fake.wait_for(lambda: "지웠어요" in fake.messages[question.id].content)
    await fake.message("다시 안녕")
    await settle(running)
    assert [m.content for m in fake.in_channel(DM)].count(messages.RATE_LIMITED) == 1
    assert await running.repo.turns(MINSU["id"]) == []  # nothing got through after the deletion


def test_a_long_memory_list_is_cut_below_the_message_limit_and_keeps_the_cap_note() -> None:
    from datetime import datetime

    from bot.text import DISCORD_MESSAGE_LIMIT
    from storage import MemoryRecord

    at = datetime(2026, 11, 25, tzinfo=UTC)
    items = [
        MemoryRecord(i, MINSU["id"], f"기억 {i:02d}", "값" * 90, at, at, None) for i in range(50)
    ]
    text = messages.memory_lines(items, cap=50, evicted=3)
    lines = text.splitlines()
    assert len(text) <= DISCORD_MESSAGE_LIMIT
    assert lines[0].startswith("기억은 최대 50개까지") and "(지금 50개)" in lines[0]
    assert "3개를 잊었어요" in lines[1]
    shown = [line for line in lines if line.startswith("• ")]
    assert shown and lines[-1] == f"… 외 {50 - len(shown)}개"
