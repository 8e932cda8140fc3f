"""Cases, lifts, appeals, server settings and moderator roles in storage (every backend)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from engine.rules.sanctions import SanctionLadder
from storage import Database, ModerationRepository, Repository
from storage.db import migrate
from storage.models import MAX_EXCERPT_CHARS, Sanction, Turn, User
from storage.moderation import AppealLimits, AppealOutcome
from storage.records import EVERYWHERE, AppealStatus, CaseKind

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LIMITS = AppealLimits(per_block=2, per_window=5, window=timedelta(days=1))
GUILD_A, GUILD_B = "7001", "7002"
ADMIN = "100"


@pytest.fixture
def store(db: Database) -> ModerationRepository:
    return ModerationRepository(db)


async def _block(repo: Repository, user: str, guild: str | None = None, now: datetime = NOW):
    decided = await repo.record_offence(user, ["paedrip"], SanctionLadder(), now, guild_id=guild)
    assert decided.is_block and decided.case is not None
    return decided


async def test_a_decision_writes_its_numbered_case_with_the_message_excerpt(
    repo: Repository, store: ModerationRepository
) -> None:
    turn = await repo.start_turn("u1", "c1", "오로라 나랑 사귀자", NOW, guild_id=GUILD_A)
    warned = await repo.record_offence(
        "u1", ["love"], SanctionLadder(), NOW, turn_id=turn, guild_id=GUILD_A
    )
    blocked = await _block(repo, "u2", GUILD_B)
    assert warned.case is not None and blocked.case is not None
    case = await store.get_case(warned.case.id)
    assert case == warned.case
    assert (case.kind, case.user_id, case.guild_id, case.actor_id) == (
        CaseKind.WARNING,
        "u1",
        GUILD_A,
        "system",
    )
    assert (case.categories, case.levels, case.period, case.decision_id) == (
        ("love",),
        (1,),
        timedelta(0),
        warned.decision_id,
    )
    assert case.excerpt == "오로라 나랑 사귀자"
    # one sequence across servers: the next decision anywhere gets the next number
    assert blocked.case.id == case.id + 1
    assert (blocked.case.kind, blocked.case.expires_at) == (CaseKind.BLOCK, blocked.expires_at)


async def test_the_excerpt_is_capped(repo: Repository) -> None:
    turn = await repo.start_turn("u1", "c1", "정치 " * 300, NOW)
    decided = await repo.record_offence("u1", ["politics"], SanctionLadder(), NOW, turn_id=turn)
    assert decided.case is not None and decided.case.excerpt is not None
    assert len(decided.case.excerpt) == MAX_EXCERPT_CHARS
    assert decided.case.excerpt.endswith("…")


async def test_with_decay_an_old_level_no_longer_counts(repo: Repository) -> None:
    ladder, decay = SanctionLadder(), timedelta(days=30)
    await repo.record_offence("u1", ["politics"], ladder, NOW, decay=decay)  # level 1 warning
    later = NOW + timedelta(days=29)
    second = await repo.record_offence("u1", ["politics"], ladder, later, decay=decay)
    assert second.records[0].level == 2  # 3-day block, ends at later + 3 days
    # 30 days after the block ENDED (not after it was given) the levels fall away
    still = later + timedelta(days=3) + timedelta(days=29)
    third = await repo.record_offence("u1", ["politics"], ladder, still, decay=decay)
    assert third.records[0].level == 3
    gone = still + timedelta(days=7) + decay + timedelta(seconds=1)
    fresh = await repo.record_offence("u1", ["politics"], ladder, gone, decay=decay)
    assert fresh.records[0].level == 1
    # without decay the whole history counts, as upstream
    upstream = await repo.record_offence("u1", ["politics"], ladder, gone)
    assert upstream.records[0].level == 4


async def test_a_lift_ends_one_decision_with_a_case_and_an_audit_entry(
    repo: Repository, store: ModerationRepository
) -> None:
    first = await _block(repo, "u1", GUILD_A)
    second = await _block(repo, "u1", GUILD_A, NOW + timedelta(seconds=1))
    done = await store.lift(
        "u1",
        ADMIN,
        "오해",
        NOW + timedelta(minutes=1),
        scope=EVERYWHERE,
        guild_id=GUILD_A,
        action="unban",
        decision_id=first.decision_id,
    )
    assert done.rows == 1 and done.case is not None
    assert first.case is not None and second.case is not None
    assert done.block_cases == (first.case.id,)
    assert (done.case.kind, done.case.ref_case_id, done.case.reason) == (
        CaseKind.LIFT,
        first.case.id,
        "오해",
    )
    history = {r.decision_id: r for r in await repo.sanction_history("u1")}
    assert history[first.decision_id].lifted_at is not None
    assert history[second.decision_id].lifted_at is None  # the other block stays
    [entry] = await repo.recent_audit()
    assert (entry.action, entry.actor_id, entry.target_user_id, entry.guild_id) == (
        "unban",
        ADMIN,
        "u1",
        GUILD_A,
    )
    assert f"case=#{done.case.id}" in entry.detail


async def test_a_lift_outside_the_scope_lifts_nothing_and_writes_no_case(
    repo: Repository, store: ModerationRepository
) -> None:
    await _block(repo, "u1", GUILD_B)
    before = await store.cases(EVERYWHERE)
    done = await store.lift("u1", "200", "x", NOW, scope=GUILD_A, guild_id=GUILD_A, action="unban")
    assert (done.rows, done.case) == (0, None)
    assert await store.cases(EVERYWHERE) == before
    assert await repo.active_block("u1", NOW) is not None


async def test_cases_filter_by_scope_user_category_and_date(
    repo: Repository, store: ModerationRepository
) -> None:
    ladder = SanctionLadder()
    love = await repo.record_offence("u1", ["love"], ladder, NOW, guild_id=GUILD_A)
    politics = await repo.record_offence(
        "u2", ["politics"], ladder, NOW + timedelta(days=1), guild_id=GUILD_A
    )
    other = await repo.record_offence("u1", ["love"], ladder, NOW, guild_id=GUILD_B)
    dm = await repo.record_offence("u3", ["love"], ladder, NOW)
    numbers = {d.decision_id: d.case.id for d in (love, politics, other, dm) if d.case}

    async def ids(scope, **filters) -> list[int]:
        return [c.id for c in await store.cases(scope, **filters)]

    assert await ids(GUILD_A) == [numbers[politics.decision_id], numbers[love.decision_id]]
    assert await ids(None) == [numbers[dm.decision_id]]
    assert len(await ids(EVERYWHERE)) == 4
    assert await ids(EVERYWHERE, user_id="u1") == [
        numbers[other.decision_id],
        numbers[love.decision_id],
    ]
    assert await ids(GUILD_A, category="politics") == [numbers[politics.decision_id]]
    assert await ids(GUILD_A, since=NOW + timedelta(hours=1)) == [numbers[politics.decision_id]]
    assert await ids(GUILD_A, until=NOW + timedelta(hours=1)) == [numbers[love.decision_id]]
    assert await ids(EVERYWHERE, limit=1, offset=1) == [numbers[other.decision_id]]
    assert await store.decision_cases([love.decision_id, "nope"]) == {
        love.decision_id: numbers[love.decision_id]
    }


async def test_the_category_filter_finds_the_lift_of_a_decision_too(
    repo: Repository, store: ModerationRepository
) -> None:
    blocked = await _block(repo, "u1", GUILD_A)
    done = await store.lift(
        "u1", ADMIN, "ok", NOW, scope=EVERYWHERE, guild_id=GUILD_A, action="unban"
    )
    assert done.case is not None and blocked.case is not None
    found = [c.id for c in await store.cases(GUILD_A, category="paedrip")]
    assert found == [done.case.id, blocked.case.id]
    assert await store.cases(GUILD_A, category="love") == []


async def test_one_open_appeal_per_block_and_limits(
    repo: Repository, store: ModerationRepository
) -> None:
    assert (await store.file_appeal("u1", "왜?", NOW, LIMITS, "appeal_filed")).outcome is (
        AppealOutcome.NOT_BLOCKED
    )
    blocked = await _block(repo, "u1", GUILD_A)
    filed = await store.file_appeal("u1", "오해예요", NOW, LIMITS, "appeal_filed")
    assert filed.outcome is AppealOutcome.FILED and filed.appeal is not None
    assert filed.block_case == blocked.case
    assert (filed.appeal.status, filed.appeal.guild_id) == (AppealStatus.OPEN, GUILD_A)
    again = await store.file_appeal("u1", "한 번 더", NOW, LIMITS, "appeal_filed")
    assert again.outcome is AppealOutcome.ALREADY_OPEN
    denied = await store.decide_appeal(
        filed.appeal.id,
        ADMIN,
        False,
        "안 돼요",
        NOW,
        guild_id=GUILD_A,
        action="appeal_decided",
        lift_action="unban",
    )
    assert denied.appeal.status is AppealStatus.DENIED and denied.lifted == 0
    assert denied.case is not None and denied.case.kind is CaseKind.APPEAL_DENIED
    second = await store.file_appeal("u1", "다시", NOW, LIMITS, "appeal_filed")
    assert second.outcome is AppealOutcome.FILED and second.appeal is not None
    await store.decide_appeal(
        second.appeal.id,
        ADMIN,
        False,
        "그래도 안 돼요",
        NOW,
        guild_id=GUILD_A,
        action="appeal_decided",
        lift_action="unban",
    )
    third = await store.file_appeal("u1", "제발", NOW, LIMITS, "appeal_filed")
    assert third.outcome is AppealOutcome.LIMIT_FOR_BLOCK  # per_block = 2
    assert await repo.active_block("u1", NOW) is not None


async def test_concurrent_appeals_leave_one_open(
    repo: Repository, store: ModerationRepository
) -> None:
    await _block(repo, "u1", GUILD_A)
    limits = AppealLimits(per_block=10, per_window=10, window=timedelta(days=1))
    results = await asyncio.gather(
        *(store.file_appeal("u1", f"#{i}", NOW, limits, "appeal_filed") for i in range(5))
    )
    outcomes = sorted(r.outcome for r in results)
    assert outcomes.count(AppealOutcome.FILED) == 1
    assert outcomes.count(AppealOutcome.ALREADY_OPEN) == 4


async def test_appeals_per_window_are_limited(
    repo: Repository, store: ModerationRepository
) -> None:
    limits = AppealLimits(per_block=10, per_window=1, window=timedelta(days=1))
    await _block(repo, "u1", GUILD_A)
    filed = await store.file_appeal("u1", "1", NOW, limits, "appeal_filed")
    assert filed.appeal is not None
    await store.decide_appeal(
        filed.appeal.id,
        ADMIN,
        False,
        "no",
        NOW,
        guild_id=None,
        action="appeal_decided",
        lift_action="unban",
    )
    soon = await store.file_appeal("u1", "2", NOW + timedelta(hours=1), limits, "appeal_filed")
    assert soon.outcome is AppealOutcome.RATE_LIMITED
    later = await store.file_appeal("u1", "3", NOW + timedelta(days=1), limits, "appeal_filed")
    assert later.outcome is AppealOutcome.FILED


async def test_an_accepted_appeal_lifts_the_block_and_keeps_the_history(
    repo: Repository, store: ModerationRepository
) -> None:
    blocked = await _block(repo, "u1", GUILD_A)
    filed = await store.file_appeal("u1", "오해예요", NOW, LIMITS, "appeal_filed")
    assert filed.appeal is not None and blocked.case is not None
    later = NOW + timedelta(hours=1)
    done = await store.decide_appeal(
        filed.appeal.id,
        ADMIN,
        True,
        "맞아요, 오해",
        later,
        guild_id=GUILD_A,
        action="appeal_decided",
        lift_action="unban",
    )
    assert done.lifted == 1 and done.case is not None
    assert (done.case.kind, done.case.ref_case_id) == (CaseKind.APPEAL_ACCEPTED, blocked.case.id)
    assert (done.appeal.status, done.appeal.decided_by, done.appeal.decision_case_id) == (
        AppealStatus.ACCEPTED,
        ADMIN,
        done.case.id,
    )
    assert await repo.active_block("u1", later) is None
    [record] = await repo.sanction_history("u1")
    assert record.lifted_at == later and record.lift_reason == "맞아요, 오해"
    twice = await store.decide_appeal(
        filed.appeal.id,
        "101",
        False,
        "늦었어요",
        later,
        guild_id=GUILD_A,
        action="appeal_decided",
        lift_action="unban",
    )
    assert twice.already_decided and twice.case is None
    assert twice.appeal.status is AppealStatus.ACCEPTED
    actions = [a.action for a in await repo.recent_audit()]
    assert actions == ["appeal_decided", "unban", "appeal_filed"]


async def test_guild_settings_and_mod_roles(store: ModerationRepository) -> None:
    settings = await store.guild_settings(GUILD_A)
    assert (settings.modlog_channel_id, settings.dm_notice) == (None, False)
    change = await store.update_guild_settings(
        GUILD_A, ADMIN, NOW, action="guild_settings", modlog_channel_id="555"
    )
    assert change.changed and change.case is not None
    assert change.case.kind is CaseKind.SETTINGS_CHANGED
    same = await store.update_guild_settings(
        GUILD_A, ADMIN, NOW, action="guild_settings", modlog_channel_id="555"
    )
    assert (same.changed, same.case) == (False, None)
    await store.update_guild_settings(GUILD_A, ADMIN, NOW, action="guild_settings", dm_notice=True)
    assert await store.guild_settings(GUILD_A) == change.settings.__class__(GUILD_A, "555", True)
    assert await store.modlog_channels([GUILD_A, GUILD_B]) == {GUILD_A: "555"}

    added = await store.set_mod_role(GUILD_A, "9", ADMIN, NOW, present=True, action="mod_role")
    assert added.changed and added.case is not None
    assert (added.case.kind, added.case.detail) == (CaseKind.MOD_ROLE_ADDED, "role=9")
    again = await store.set_mod_role(GUILD_A, "9", ADMIN, NOW, present=True, action="mod_role")
    assert not again.changed
    assert await store.mod_roles(GUILD_A) == ("9",)
    assert await store.holds_mod_role(GUILD_A, {"8", "9"})
    assert not await store.holds_mod_role(GUILD_B, {"9"})  # a role id is one server's
    assert not await store.holds_mod_role(GUILD_A, set())
    removed = await store.set_mod_role(GUILD_A, "9", ADMIN, NOW, present=False, action="mod_role")
    assert removed.case is not None and removed.case.kind is CaseKind.MOD_ROLE_REMOVED
    assert await store.mod_roles(GUILD_A) == ()


async def test_concurrent_first_settings_writes_and_role_adds_never_collide(
    store: ModerationRepository,
) -> None:
    """A select-then-insert would let two first writes for one server both insert (an
    IntegrityError on PostgreSQL); the race-free upsert lets exactly one of each change land."""
    changes = await asyncio.gather(
        *(
            store.update_guild_settings(
                GUILD_B, ADMIN, NOW, action="guild_settings", modlog_channel_id="777"
            )
            for _ in range(8)
        )
    )
    assert sum(c.changed for c in changes) == 1
    assert (await store.guild_settings(GUILD_B)).modlog_channel_id == "777"
    adds = await asyncio.gather(
        *(
            store.set_mod_role(GUILD_B, "42", ADMIN, NOW, present=True, action="mod_role")
            for _ in range(8)
        )
    )
    assert sum(a.changed for a in adds) == 1
    assert await store.mod_roles(GUILD_B) == ("42",)
    kinds = [c.kind for c in await store.cases(EVERYWHERE)]
    assert kinds.count(CaseKind.SETTINGS_CHANGED) == 1 and kinds.count(CaseKind.MOD_ROLE_ADDED) == 1


async def test_decisions_made_before_cases_existed_get_cases_in_order(
    database_url: str,
) -> None:
    db = Database(database_url)
    await migrate(db.engine, "0005")
    async with db.writing() as s:
        s.add(User(id="u1", created_at=NOW))
        await s.flush()
        s.add(Turn(id=1, user_id="u1", channel_id="c", original_text="옛날 메시지", created_at=NOW))
        await s.flush()
        for i, (decision, category, level, block) in enumerate(
            [("d1", "love", 1, 0), ("d2", "love", 2, 3600), ("d2", "politics", 1, 3600)]
        ):
            s.add(
                Sanction(
                    id=i + 1,
                    decision_id=decision,
                    user_id="u1",
                    guild_id=GUILD_A if decision == "d2" else None,
                    category=category,
                    level=level,
                    period_seconds=block,
                    block_seconds=block,
                    created_at=NOW + timedelta(minutes=i),
                    expires_at=NOW + timedelta(minutes=i, seconds=block),
                    turn_id=1 if decision == "d1" else None,
                )
            )
    await db.start()
    cases = await ModerationRepository(db).cases(EVERYWHERE)
    await db.close()
    assert [(c.decision_id, c.kind, c.categories, c.levels) for c in reversed(cases)] == [
        ("d1", CaseKind.WARNING, ("love",), (1,)),
        ("d2", CaseKind.BLOCK, ("love", "politics"), (2, 1)),
    ]
    assert cases[-1].excerpt == "옛날 메시지" and cases[0].guild_id == GUILD_A


async def test_forget_me_and_the_retention_purge_blank_the_excerpts(
    repo: Repository, store: ModerationRepository
) -> None:
    for user in ("u1", "u2"):
        turn = await repo.start_turn(user, "c", f"{user} 패드립", NOW)
        await repo.record_offence(user, ["paedrip"], SanctionLadder(), NOW, turn_id=turn)
    await repo.delete_user_data("u1")
    excerpts = {c.user_id: c.excerpt for c in await store.cases(EVERYWHERE)}
    assert excerpts == {"u1": None, "u2": "u2 패드립"}  # the cases themselves stay
    await repo.purge_turn_texts(NOW + timedelta(seconds=1))
    assert [c.excerpt for c in await store.cases(EVERYWHERE)] == [None, None]
