"""Issue 19's engine side: cases from turns, lifts, appeals, mod roles, settings and decay,
through the service (`build_engine` with scripted models, so no model is loaded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from engine.api import (
    MAX_APPEALS_PER_DAY,
    AppealNotFound,
    AppealOutcome,
    AppealStatus,
    CaseKind,
    CaseNotFound,
    DecideOutcome,
    Moderator,
    NeedsServer,
    NotAllowed,
    OhLoraService,
    TurnKind,
    UnbanOutcome,
    build_engine,
    messages,
)
from engine.rules.expression import FALLBACK_EXPRESSION
from engine.rules.sanctions import SanctionLadder
from engine.settings import Settings
from storage import Repository

SEOUL = ZoneInfo("Asia/Seoul")
START = datetime(2026, 11, 25, 14, 0, tzinfo=SEOUL)
ADMIN, MOD, ROLE_MOD, USER, OTHER_USER = "100", "200", "250", "300", "301"
GUILD, OTHER = "7001", "7002"
MOD_ROLE = "9001"
HARMFUL = "패드립 하는 메시지"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class ScriptedModels:
    """Answers every role at once: a message containing 패드립 scores as one (a block on the
    first offence), anything else as everyday talk."""

    mixes_roles = False
    ethics_thresholds: ClassVar[dict[str, float]] = {}
    normal_veto = 0.5

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [1 for _ in texts]

    def best_memories(self, rows: list[Any]) -> list[Any]:
        return [None for _ in rows]

    def ethics_scores(self, texts: list[str]) -> list[dict[str, float]]:
        return [{"패드립": 0.99} if "패드립" in t else {"일반": 0.99} for t in texts]

    def replies(self, rows: list[Any]) -> list[str]:
        return ["미안해요, 그런 말은 부담돼요." for _ in rows]

    def summaries(self, rows: list[Any]) -> list[str]:
        return ["요약" for _ in rows]

    def memories(self, rows: list[Any]) -> list[Any]:
        return [None for _ in rows]

    def expressions(self, rows: list[Any]) -> list[Any]:
        return [FALLBACK_EXPRESSION for _ in rows]

    def close(self) -> None:
        pass


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


async def _service(repo: Repository, clock: Clock, **settings: Any) -> Any:
    config = Settings(_env_file=None, admin_ids=frozenset({int(ADMIN)}), **settings)  # type: ignore[call-arg]
    return build_engine(
        config, clock=clock, backend=ScriptedModels(), repo=repo, threads=1, maintenance=None
    )


@pytest.fixture
async def service(repo: Repository, clock: Clock) -> AsyncIterator[OhLoraService]:
    async with await _service(repo, clock) as built:
        yield built
        await built.drain()


def mod() -> Moderator:
    return Moderator(MOD, GUILD, moderates_here=True)


def nobody() -> Moderator:
    return Moderator(USER, GUILD)


async def _blocked_in(service: OhLoraService, guild: str | None, user: str = USER) -> Any:
    result = await service.chat(user, "chan", HARMFUL, guild_id=guild)
    assert result.kind is TurnKind.BLOCKED and result.case is not None
    return result


async def test_a_harmful_message_produces_a_case(service: OhLoraService) -> None:
    result = await _blocked_in(service, GUILD)
    case = result.case
    assert (case.kind, case.user_id, case.guild_id, case.categories, case.levels) == (
        CaseKind.BLOCK,
        USER,
        GUILD,
        ("paedrip",),
        (1,),
    )
    assert case.excerpt == HARMFUL
    assert result.notice is not None and result.notice.endswith(messages.APPEAL_HINT)
    assert await service.moderation.case(mod(), case.id) == case
    fields = dict(messages.case_fields(case, service.tz, in_guild=GUILD))
    assert fields["메시지"] == f"||{HARMFUL}||"
    # the words stay in the server they were written in
    assert "메시지" not in dict(messages.case_fields(case, service.tz, in_guild=OTHER))
    # while blocked, the refusal also says how to appeal
    again = await service.chat(USER, "chan", "안녕", guild_id=GUILD)
    assert again.kind is TurnKind.BLOCK_NOTICE and again.notice is not None
    assert again.notice.endswith(messages.APPEAL_HINT)


async def test_a_non_admin_lifting_is_refused_and_nothing_changes(
    service: OhLoraService, repo: Repository
) -> None:
    case = (await _blocked_in(service, GUILD)).case
    audit_before = await repo.recent_audit()
    with pytest.raises(NotAllowed):
        await service.moderation.lift(nobody(), reason="풀어줘", case_number=case.id)
    with pytest.raises(NotAllowed):
        await service.moderation.lift(Moderator(USER, None), reason="DM", user_id=USER)
    assert await repo.active_block(USER, service.clock()) is not None
    assert await repo.recent_audit() == audit_before
    listed = await service.moderation.sanction_log(Moderator(ADMIN, None))
    assert [c.id for c in listed.rows] == [case.id]  # no case was written


async def test_an_admin_lift_with_a_reason_ends_the_block_and_logs_a_case(
    service: OhLoraService, repo: Repository
) -> None:
    block = (await _blocked_in(service, GUILD)).case
    result = await service.moderation.lift(mod(), reason="오해였어요", case_number=block.id)
    assert (result.outcome, result.lifted, result.still_blocked) == (UnbanOutcome.LIFTED, 1, False)
    assert result.case is not None
    assert (result.case.kind, result.case.ref_case_id, result.case.reason) == (
        CaseKind.LIFT,
        block.id,
        "오해였어요",
    )
    assert result.case.id > block.id
    assert await repo.active_block(USER, service.clock()) is None
    assert [c.id for c in (await service.moderation.sanction_log(mod())).rows] == [
        result.case.id,
        block.id,
    ]
    entry = (await repo.recent_audit())[1]  # [0] is the log's own viewing
    assert (entry.action, entry.actor_id, entry.guild_id) == ("unban", MOD, GUILD)
    assert "사건 #" in messages.lift_answer("민수", result)


async def test_unban_goes_through_the_lift_and_returns_its_case(service: OhLoraService) -> None:
    await _blocked_in(service, GUILD)
    result = await service.unban(Moderator(ADMIN, None), USER, "전체 해제")
    assert result.outcome is UnbanOutcome.LIFTED and result.case is not None
    refused = await service.unban(Moderator(USER, GUILD, moderates_here=True), USER, "내 것")
    assert refused.outcome is UnbanOutcome.SELF_REFUSED
    assert refused.case is not None and refused.case.kind is CaseKind.LIFT_REFUSED


async def test_lifting_another_servers_case_lifts_nothing(service: OhLoraService) -> None:
    block = (await _blocked_in(service, OTHER)).case
    with pytest.raises(CaseNotFound):  # not visible from here
        await service.moderation.case(mod(), block.id)
    result = await service.moderation.lift(mod(), reason="여기선 못 풀어", case_number=block.id)
    assert (result.outcome, result.case) == (UnbanOutcome.NOTHING_IN_REACH, None)
    with pytest.raises(CaseNotFound):
        await service.moderation.lift(mod(), reason="x", case_number=9999)


async def test_appeal_accept_lifts_the_block_and_a_second_appeal_is_refused(
    service: OhLoraService, repo: Repository, clock: Clock
) -> None:
    block = (await _blocked_in(service, GUILD)).case
    filed = await service.moderation.appeal(USER, "오해예요, 농담이었어요")
    assert filed.outcome is AppealOutcome.FILED and filed.appeal is not None
    assert filed.block_case == block
    second = await service.moderation.appeal(USER, "빨리요")
    assert second.outcome is AppealOutcome.ALREADY_OPEN
    assert "이미 검토 중" in messages.appeal_answer(second, per_day=2, per_block=3)

    with pytest.raises(NotAllowed):
        await service.moderation.decide_appeal(nobody(), filed.appeal.id, accept=True, note="x")
    assert await repo.active_block(USER, clock()) is not None

    clock.now += timedelta(hours=1)
    decided = await service.moderation.decide_appeal(
        mod(), filed.appeal.id, accept=True, note="반성했으니 풀어 줄게요"
    )
    assert (decided.outcome, decided.lifted, decided.still_blocked) == (
        DecideOutcome.ACCEPTED,
        1,
        False,
    )
    assert decided.case is not None and decided.case.kind is CaseKind.APPEAL_ACCEPTED
    assert decided.appeal.status is AppealStatus.ACCEPTED
    assert decided.dm_text is not None and "수락" in decided.dm_text
    assert await repo.active_block(USER, clock()) is None
    [record] = await repo.sanction_history(USER)  # the history stays
    assert record.lifted_at == clock() and record.lifted_by == MOD
    actions = [a.action for a in await repo.recent_audit()]
    assert actions[:3] == ["appeal_decided", "unban", "appeal_filed"]
    late = await service.moderation.decide_appeal(
        Moderator(ADMIN, None), filed.appeal.id, accept=False, note="늦음"
    )
    assert late.outcome is DecideOutcome.ALREADY_DECIDED and late.case is None
    assert (await service.moderation.appeal(USER, "또")).outcome is AppealOutcome.NOT_BLOCKED


async def test_appeals_are_rate_limited_and_decided_only_in_reach(
    service: OhLoraService, clock: Clock
) -> None:
    await _blocked_in(service, None)  # a DM: the global admins' alone
    for i in range(MAX_APPEALS_PER_DAY):
        filed = await service.moderation.appeal(USER, f"#{i}")
        assert filed.outcome is AppealOutcome.FILED and filed.appeal is not None
        outside = await service.moderation.decide_appeal(
            mod(), filed.appeal.id, accept=True, note="여기서?"
        )
        assert outside.outcome is DecideOutcome.NOT_IN_REACH
        with pytest.raises(AppealNotFound):
            await service.moderation.appeal_record(mod(), filed.appeal.id)
        mine = await service.moderation.decide_appeal(
            Moderator(USER, GUILD, moderates_here=True), filed.appeal.id, accept=True, note="x"
        )
        assert mine.outcome is DecideOutcome.NOT_IN_REACH  # and never one's own anyway
        denied = await service.moderation.decide_appeal(
            Moderator(ADMIN, None), filed.appeal.id, accept=False, note="안 돼요"
        )
        assert denied.outcome is DecideOutcome.DENIED and denied.dm_text is not None
    limited = await service.moderation.appeal(USER, "한 번만 더")
    assert limited.outcome is AppealOutcome.RATE_LIMITED
    clock.now += timedelta(days=1, seconds=1)
    assert (await service.moderation.appeal(USER, "다음 날")).outcome is AppealOutcome.FILED


async def test_a_mod_role_added_in_a_server_sees_that_servers_sanctions_only(
    service: OhLoraService, repo: Repository
) -> None:
    here = (await _blocked_in(service, GUILD)).case
    elsewhere = (await _blocked_in(service, OTHER, user=OTHER_USER)).case
    role_mod = Moderator(ROLE_MOD, GUILD, role_ids=frozenset({MOD_ROLE}))
    assert not await service.may_moderate(role_mod)
    with pytest.raises(NotAllowed):
        await service.moderation.sanction_log(role_mod)
    # only Moderate Members holders and global admins configure; a role mod cannot
    with pytest.raises(NotAllowed):
        await service.moderation.add_mod_role(nobody(), MOD_ROLE)
    change = await service.moderation.add_mod_role(mod(), MOD_ROLE)
    assert change.changed and change.case is not None
    assert change.case.kind is CaseKind.MOD_ROLE_ADDED
    assert await service.moderation.mod_roles(role_mod) == (MOD_ROLE,)
    with pytest.raises(NotAllowed):
        await service.moderation.add_mod_role(role_mod, "9002")

    assert await service.may_moderate(role_mod)
    assert not await service.may_moderate(
        Moderator(ROLE_MOD, OTHER, role_ids=frozenset({MOD_ROLE}))
    )
    assert not await service.may_moderate(Moderator(ROLE_MOD, None, role_ids=frozenset({MOD_ROLE})))
    listed = await service.moderation.sanction_log(role_mod)
    assert here.id in [c.id for c in listed.rows]
    assert elsewhere.id not in [c.id for c in listed.rows]
    assert [r.user_id for r in (await service.sanctions_of(role_mod, OTHER_USER)).rows] == []
    assert len((await service.sanctions_of(role_mod, USER)).rows) == 1
    numbers = await service.moderation.case_numbers(
        role_mod, [r.decision_id for r in await repo.sanction_history(USER)]
    )
    assert list(numbers.values()) == [here.id]

    removed = await service.moderation.remove_mod_role(mod(), MOD_ROLE)
    assert removed.case is not None and removed.case.kind is CaseKind.MOD_ROLE_REMOVED
    assert not await service.may_moderate(role_mod)


async def test_every_new_operation_refuses_non_admins(service: OhLoraService) -> None:
    await _blocked_in(service, GUILD)
    m, who = service.moderation, nobody()
    refused = [
        m.case(who, 1),
        m.sanction_log(who),
        m.case_numbers(who, []),
        m.lift(who, reason="x", user_id=USER),
        m.appeal_record(who, 1),
        m.decide_appeal(who, 1, accept=True, note="x"),
        m.mod_roles(who),
        m.add_mod_role(who, MOD_ROLE),
        m.remove_mod_role(who, MOD_ROLE),
        m.guild_settings(who),
        m.set_modlog_channel(who, "1"),
        m.set_dm_notice(who, True),
    ]
    for call in refused:
        with pytest.raises(NotAllowed):
            await call
    with pytest.raises(NeedsServer):  # a global admin configures a server in that server
        await m.set_dm_notice(Moderator(ADMIN, None), True)


async def test_guild_settings_are_set_by_configurers_with_a_case(service: OhLoraService) -> None:
    m = service.moderation
    assert (await m.guild_settings(mod())).modlog_channel_id is None
    change = await m.set_modlog_channel(mod(), "555")
    assert change.changed and change.case is not None
    assert change.case.kind is CaseKind.SETTINGS_CHANGED
    assert not (await m.set_modlog_channel(mod(), "555")).changed
    assert not await m.dm_notice_enabled(GUILD)
    assert (await m.set_dm_notice(Moderator(ADMIN, GUILD), True)).settings.dm_notice
    assert await m.dm_notice_enabled(GUILD) and not await m.dm_notice_enabled(None)
    assert await m.modlog_channels([GUILD, OTHER]) == {GUILD: "555"}
    assert "<#555>" in messages.settings_answer(await m.guild_settings(mod()))


async def test_a_case_is_looked_up_by_number_and_filtered(service: OhLoraService) -> None:
    first = (await _blocked_in(service, GUILD)).case
    second = (await _blocked_in(service, GUILD, user=OTHER_USER)).case
    m = service.moderation
    assert [c.id for c in (await m.sanction_log(mod(), user_id=USER)).rows] == [first.id]
    assert (await m.sanction_log(mod(), category="love")).rows == ()
    later = service.clock() + timedelta(seconds=1)
    assert (await m.sanction_log(mod(), since=later)).rows == ()
    assert len((await m.sanction_log(mod(), until=later)).rows) == 2
    assert "#" in messages.case_line(second, service.tz)
    with pytest.raises(CaseNotFound):
        await m.case(mod(), second.id + 100)


async def test_with_decay_an_old_level_no_longer_counts(repo: Repository, clock: Clock) -> None:
    async with await _service(repo, clock, sanction_decay_days=30) as service:
        first = await _blocked_in(service, GUILD)
        assert first.case.levels == (1,)  # paedrip level 1: 7 days
        await service.moderation.lift(Moderator(ADMIN, None), reason="시험", user_id=USER)
        [decay] = await service.moderation.decay_info(USER)
        assert (decay.category, decay.level, decay.at) == (
            "paedrip",
            1,
            clock() + timedelta(days=30),
        )
        status = messages.status_lines(
            await service.my_status(USER),
            service.tz,
            clock(),
            await service.moderation.decay_info(USER),
        )
        assert "사라져요" in status

        clock.now += timedelta(days=29)
        second = await _blocked_in(service, GUILD)
        assert second.case.levels == (2,)  # still counts
        await service.moderation.lift(Moderator(ADMIN, None), reason="시험", user_id=USER)

        clock.now += timedelta(days=30, seconds=1)
        third = await _blocked_in(service, GUILD)
        assert third.case.levels == (1,)  # both fell away
        await service.drain()


async def test_without_decay_every_level_counts(service: OhLoraService, repo: Repository) -> None:
    await repo.record_offence(USER, ["paedrip"], SanctionLadder(), START - timedelta(days=3650))
    assert await service.moderation.decay_info(USER) == ()
    result = await _blocked_in(service, GUILD)
    assert result.case.levels == (2,)
