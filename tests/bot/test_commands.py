"""Slash commands against the fake Discord: each works for its user; admin ones refuse others."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.client import REFUSED
from bot.admin import NOT_YOUR_GUILD
from bot.user_commands import CANCELLED, NOT_YOURS
from engine.sanctions import SanctionLadder
from tests.bot.conftest import ADMIN, Running
from tests.bot.fake_discord import CHAT, DM, JIHO, MINSU, MOD, MODERATE_MEMBERS, STRANGER, Sent


async def answer(running: Running, interaction_id: str) -> Sent:
    """The (first) response to an interaction, once it arrived."""
    [sent, *_] = await running.fake.wait_for(lambda: running.fake.responses(interaction_id))
    return sent


async def block(running: Running, user: dict) -> None:
    for _ in range(2):  # politics level 2: a 3-day block
        decided = await running.repo.record_offence(user["id"], ["politics"], SanctionLadder(),
                                                    running.clock.now)
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
    assert (await answer(running, stranger_click)).content == NOT_YOURS
    await fake.click(question, "취소")
    await fake.wait_for(lambda: fake.messages[question.id].content == CANCELLED)
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
    assert lines[0].startswith("⛔") and "3일 차단" in lines[0] and "2026.11.28 14:00:00" in lines[0]
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
    sent = await answer(running, await running.fake.slash("sanctions", user=ADMIN, target=JIHO))
    assert sent.ephemeral and "지호" in sent.content and "3일 차단" in sent.content
    [entry] = await running.repo.recent_audit()
    assert (entry.actor_id, entry.action, entry.target_user_id) == (ADMIN["id"], "view_sanctions", JIHO["id"])


async def test_unban_lifts_the_block_and_is_audited(running: Running) -> None:
    await block(running, JIHO)
    iid = await running.fake.slash("unban", {"reason": "오해였어요"}, user=ADMIN, target=JIHO)
    sent = await answer(running, iid)
    assert "해제했어요" in sent.content
    assert await running.repo.active_block(JIHO["id"], running.clock.now) is None
    [entry] = await running.repo.recent_audit()
    assert (entry.actor_id, entry.action, entry.target_user_id) == (ADMIN["id"], "unban", JIHO["id"])
    assert "오해였어요" in entry.detail


async def test_sanction_log_lists_recent_decisions_and_admin_actions(running: Running) -> None:
    await block(running, JIHO)
    await running.repo.lift_blocks(JIHO["id"], ADMIN["id"], "테스트", running.clock.now)
    sent = await answer(running, await running.fake.slash("sanction-log", user=ADMIN))
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
    for channel in (DM, CHAT):  # a plain member in a guild is refused too
        iid = await running.fake.slash(command, options, user=MINSU, channel=channel, target=target)
        sent = await answer(running, iid)
        assert sent.content == REFUSED and sent.ephemeral
    assert await running.repo.recent_audit() == []
    assert await running.repo.active_block(JIHO["id"], running.clock.now) is not None


async def test_a_guild_moderator_manages_members_of_that_guild_only(running: Running) -> None:
    fake, repo = running.fake, running.repo
    await block(running, JIHO)
    await block(running, STRANGER)
    as_mod = dict(user=MOD, channel=CHAT, permissions=MODERATE_MEMBERS)
    ok = await answer(running, await fake.slash("unban", {"reason": "반성함"}, target=JIHO, **as_mod))
    assert "해제했어요" in ok.content
    no = await answer(running, await fake.slash("unban", {"reason": "반성함"}, target=STRANGER, **as_mod))
    assert no.content == NOT_YOUR_GUILD
    assert await repo.active_block(STRANGER["id"], running.clock.now) is not None
    log = await answer(running, await fake.slash("sanction-log", **as_mod))
    assert f"<@{JIHO['id']}>" in log.content and f"<@{STRANGER['id']}>" not in log.content
    # The same moderator in a DM is no one's moderator.
    dm = await answer(running, await fake.slash("unban", {"reason": "x"}, user=MOD, target=STRANGER))
    assert dm.content == REFUSED


async def test_the_0400_job_ages_day_bound_memories(running: Running) -> None:
    from bot.jobs import DAILY_JOB_ID, JobsCog

    cog = running.bot.get_cog("Jobs")
    assert isinstance(cog, JobsCog)
    job = cog.scheduler.get_job(DAILY_JOB_ID)
    now = running.clock.now  # Wednesday 14:00 in Seoul
    assert job.trigger.get_next_fire_time(None, now) == (now + timedelta(days=1)).replace(hour=4)
    await running.repo.upsert_memory(MINSU["id"], "내일 일정", "시험", now)
    await running.repo.upsert_memory(MINSU["id"], "오늘 일정", "카페", now)
    running.clock.now = (now + timedelta(days=1)).replace(hour=4)  # the clock the job reads
    report = await job.func()
    assert (report.aging.expired, report.aging.promoted) == (1, 1)
    items = await running.repo.list_memories(MINSU["id"], running.clock.now)
    assert [m.render() for m in items] == ["[오늘 일정: 시험]"]
    shown = await answer(running, await running.fake.slash("memory"))
    assert "[오늘 일정: 시험]" in shown.content and "내일" not in shown.content
