"""The service's moderator rules and its wiring, without a model (`build_engine` with a
stand-in backend that fails any model call)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import pytest

from engine.api import Moderator, NotAllowed, OhLoraService, UnbanOutcome, build_engine
from engine.rules.sanctions import SanctionLadder
from engine.settings import Settings
from storage import Repository
from storage.records import EVERYWHERE

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=ZoneInfo("Asia/Seoul"))
ADMIN, MOD, USER = "100", "200", "300"
GUILD, OTHER = "7001", "7002"


class NoModels:
    mixes_roles = False

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        def call(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise AssertionError(f"no model call expected, got {name}")

        return call


@pytest.fixture
async def service(repo: Repository) -> AsyncIterator[OhLoraService]:
    settings = Settings(_env_file=None, admin_ids=frozenset({int(ADMIN)}))  # type: ignore[call-arg]
    async with build_engine(
        settings, clock=lambda: NOW, backend=NoModels(), repo=repo, threads=1, maintenance=None
    ) as built:
        yield built


async def _block(repo: Repository, user: str, guild: str | None) -> None:
    decided = await repo.record_offence(user, ["paedrip"], SanctionLadder(), NOW, guild_id=guild)
    assert decided.is_block


def test_the_limits_come_from_the_settings(service: OhLoraService) -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert service.engine.max_prompt_tokens == defaults.max_prompt_tokens
    assert service.engine.max_message_chars == defaults.max_message_chars
    assert service.engine.max_memory_items == defaults.max_memory_items


async def test_who_may_moderate_where(service: OhLoraService) -> None:
    assert await service.may_moderate(Moderator(ADMIN, None))  # a global admin, even in a DM
    assert await service.may_moderate(Moderator(MOD, GUILD, moderates_here=True))
    assert not await service.may_moderate(Moderator(MOD, None, moderates_here=True))  # no DM
    assert not await service.may_moderate(Moderator(USER, GUILD))
    assert (await service.reach(Moderator(ADMIN, GUILD))).scope is EVERYWHERE
    assert (await service.reach(Moderator(MOD, GUILD, moderates_here=True))).scope == GUILD
    with pytest.raises(NotAllowed):
        await service.reach(Moderator(USER, GUILD))


async def test_a_moderator_lifts_only_their_servers_decisions(
    service: OhLoraService, repo: Repository
) -> None:
    await _block(repo, USER, GUILD)
    await _block(repo, USER, OTHER)
    result = await service.unban(Moderator(MOD, GUILD, moderates_here=True), USER, "반성함")
    assert (result.outcome, result.lifted, result.still_blocked) == (UnbanOutcome.LIFTED, 1, True)
    again = await service.unban(Moderator(MOD, GUILD, moderates_here=True), USER, "한 번 더")
    assert again.outcome is UnbanOutcome.NOTHING_IN_REACH
    done = await service.unban(Moderator(ADMIN, GUILD), USER, "전체 해제")
    assert (done.outcome, done.lifted, done.still_blocked) == (UnbanOutcome.LIFTED, 1, False)
    assert (await service.unban(Moderator(ADMIN, GUILD), USER, "x")).outcome is (
        UnbanOutcome.NOT_BLOCKED
    )
    actions = [a.action for a in await repo.recent_audit()]
    assert actions == ["unban"] * 4


async def test_nobody_lifts_their_own_block_and_the_try_is_audited(
    service: OhLoraService, repo: Repository
) -> None:
    await _block(repo, ADMIN, None)
    result = await service.unban(Moderator(ADMIN, GUILD), ADMIN, "내 차단")
    assert result.outcome is UnbanOutcome.SELF_REFUSED
    assert await repo.active_block(ADMIN, NOW) is not None
    [entry] = await repo.recent_audit()
    assert (entry.action, entry.actor_id, entry.guild_id) == ("unban_refused", ADMIN, GUILD)


async def test_views_are_scoped_and_audited(service: OhLoraService, repo: Repository) -> None:
    await _block(repo, USER, OTHER)
    mod = Moderator(MOD, GUILD, moderates_here=True)
    assert (await service.sanctions_of(mod, USER)).rows == ()
    assert len((await service.sanctions_of(Moderator(ADMIN, None), USER)).rows) == 1
    assert (await service.recent_sanctions(mod, 0, 10)).rows == ()
    await service.log_viewed(mod)
    audited = [(a.action, a.guild_id) for a in await repo.recent_audit()]
    assert audited == [("view_log", GUILD), ("view_sanctions", None), ("view_sanctions", GUILD)]
