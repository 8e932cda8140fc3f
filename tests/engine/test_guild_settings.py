"""Issue 18 item 5, the engine side: per-server chat channels and her face picture, merged
with the environment's defaults, audited with a case, cached per server and refused to
anyone who may not configure the server (`service.moderation`, scripted models)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.api import (
    ROUTING_CACHE_S,
    AdminAction,
    CaseKind,
    ChatRouting,
    Moderator,
    NeedsServer,
    NotAllowed,
    OhLoraService,
    Settings,
    build_engine,
    messages,
)
from engine.settings import env_name
from storage import Repository
from tests.engine.test_moderation import (
    ADMIN,
    GUILD,
    MOD,
    MOD_ROLE,
    OTHER,
    ROLE_MOD,
    START,
    Clock,
    ScriptedModels,
    mod,
    nobody,
)

ENV_CHANNEL, NEW_CHANNEL, OTHER_CHANNEL = "5001", "5002", "5003"


class Ticks:
    """The routing cache's monotonic time, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settings(**values: Any) -> Settings:
    defaults: dict[str, Any] = {
        "admin_ids": frozenset({int(ADMIN)}),
        "chat_channel_ids": frozenset({int(ENV_CHANNEL)}),
    }
    return Settings(_env_file=None, **(defaults | values))  # type: ignore[call-arg]


def _built(repo: Repository, clock: Clock, **values: Any) -> Any:
    return build_engine(
        _settings(**values),
        clock=clock,
        backend=ScriptedModels(),
        repo=repo,
        threads=1,
        maintenance=None,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def service(repo: Repository, clock: Clock) -> AsyncIterator[OhLoraService]:
    async with _built(repo, clock) as built:
        yield built


async def test_the_environment_gives_the_defaults(service: OhLoraService) -> None:
    moderation = service.moderation
    default = ChatRouting(frozenset({ENV_CHANNEL}), expression_picture=True)
    assert await moderation.chat_routing(GUILD) == default
    assert await moderation.chat_routing(None) == default  # a DM: the environment's
    listed = await moderation.chat_channels(mod())
    assert listed.channel_ids == (ENV_CHANNEL,) and listed.env_defaults == {ENV_CHANNEL}


async def test_the_picture_default_comes_from_the_environment(
    repo: Repository, clock: Clock
) -> None:
    async with _built(repo, clock, expression_picture=False) as built:
        assert not (await built.moderation.chat_routing(GUILD)).expression_picture
    assert Settings.model_fields["expression_picture"].default is True


def test_the_picture_default_is_an_ohlora_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OHLORA_EXPRESSION_PICTURE", "false")
    assert not Settings(_env_file=None).expression_picture  # type: ignore[call-arg]
    assert env_name("expression_picture") == "OHLORA_EXPRESSION_PICTURE"


async def test_adding_and_removing_channels_changes_routing_at_once(
    service: OhLoraService,
) -> None:
    moderation = service.moderation
    await moderation.chat_routing(GUILD)  # cached before the change
    added = await moderation.add_chat_channel(mod(), NEW_CHANNEL)
    assert added.changed and added.case is not None
    assert added.case.kind is CaseKind.SETTINGS_CHANGED
    assert NEW_CHANNEL in added.case.detail and added.case.guild_id == GUILD
    assert (await moderation.chat_routing(GUILD)).chat_channel_ids == {ENV_CHANNEL, NEW_CHANNEL}
    # the environment's channel is turned off for this server only
    removed = await moderation.remove_chat_channel(mod(), ENV_CHANNEL)
    assert removed.changed and removed.case is not None
    assert (await moderation.chat_routing(GUILD)).chat_channel_ids == {NEW_CHANNEL}
    assert (await moderation.chat_routing(OTHER)).chat_channel_ids == {ENV_CHANNEL}
    listed = await moderation.chat_channels(mod())
    assert listed.channel_ids == (NEW_CHANNEL,) and listed.turned_off == (ENV_CHANNEL,)
    text = messages.chat_channels_answer(listed)
    assert f"<#{NEW_CHANNEL}>" in text and f"<#{ENV_CHANNEL}>" in text  # the one turned off
    # back to the environment's: no row is left behind
    assert (await moderation.add_chat_channel(mod(), ENV_CHANNEL)).changed
    assert (await moderation.remove_chat_channel(mod(), NEW_CHANNEL)).changed
    assert (await moderation.store.guild_routing(GUILD)).chat_channels == {}
    assert (await moderation.chat_routing(GUILD)).chat_channel_ids == {ENV_CHANNEL}


async def test_a_change_that_changes_nothing_writes_nothing(
    service: OhLoraService, repo: Repository
) -> None:
    moderation = service.moderation
    before = await repo.recent_audit()
    again = await moderation.add_chat_channel(mod(), ENV_CHANNEL)  # already a chat channel
    gone = await moderation.remove_chat_channel(mod(), OTHER_CHANNEL)  # never was one
    assert not again.changed and not gone.changed and again.case is None
    assert messages.chat_channel_answer(ENV_CHANNEL, again, added=True) == (
        messages.NOTHING_CHANGED
    )
    assert await repo.recent_audit() == before


async def test_every_change_is_audited_with_its_case(
    service: OhLoraService, repo: Repository
) -> None:
    moderation = service.moderation
    added = await moderation.add_chat_channel(mod(), NEW_CHANNEL)
    picture = await moderation.set_expression_picture(mod(), False)
    assert picture.changed and picture.case is not None
    assert picture.settings.expression_picture is False
    audit = await repo.recent_audit()
    actions = [(a.action, a.actor_id, a.guild_id) for a in audit[:2]]
    assert set(actions) == {
        (str(AdminAction.CHAT_CHANNEL), MOD, GUILD),
        (str(AdminAction.GUILD_SETTINGS), MOD, GUILD),
    }
    assert added.case is not None
    assert any(f"case=#{added.case.id}" in a.detail for a in audit)
    numbers = {c.id for c in (await moderation.sanction_log(mod())).rows}
    assert {added.case.id, picture.case.id} <= numbers


async def test_the_picture_setting_flips_the_routing(service: OhLoraService) -> None:
    moderation = service.moderation
    assert (await moderation.chat_routing(GUILD)).expression_picture
    off = await moderation.set_expression_picture(mod(), False)
    assert not (await moderation.chat_routing(GUILD)).expression_picture
    assert (await moderation.chat_routing(OTHER)).expression_picture
    assert messages.picture_answer(off, enabled=False).startswith("이제 이 서버에서")
    assert not (await moderation.set_expression_picture(mod(), False)).changed
    await moderation.set_expression_picture(mod(), True)
    assert (await moderation.chat_routing(GUILD)).expression_picture
    settings = await moderation.guild_settings(mod())
    channels = await moderation.chat_channels(mod())
    shown = messages.server_settings_answer(
        settings, channels, picture=moderation.expression_picture_of(settings)
    )
    assert "얼굴 그림: 켜짐" in shown and f"<#{ENV_CHANNEL}>" in shown


async def test_settings_survive_a_restart(repo: Repository, clock: Clock) -> None:
    async with _built(repo, clock) as first:
        await first.moderation.add_chat_channel(mod(), NEW_CHANNEL)
        await first.moderation.set_expression_picture(mod(), False)
    async with _built(repo, clock) as second:
        routing = await second.moderation.chat_routing(GUILD)
    assert routing == ChatRouting(frozenset({ENV_CHANNEL, NEW_CHANNEL}), False)


async def test_another_process_sees_a_change_within_the_cache_time(
    repo: Repository, clock: Clock
) -> None:
    async with _built(repo, clock) as one, _built(repo, clock) as other:
        ticks = Ticks()
        other.moderation.monotonic = ticks
        assert NEW_CHANNEL not in (await other.moderation.chat_routing(GUILD)).chat_channel_ids
        await one.moderation.add_chat_channel(mod(), NEW_CHANNEL)
        ticks.now += ROUTING_CACHE_S / 2  # still its own copy
        assert NEW_CHANNEL not in (await other.moderation.chat_routing(GUILD)).chat_channel_ids
        ticks.now += ROUTING_CACHE_S  # read again
        assert NEW_CHANNEL in (await other.moderation.chat_routing(GUILD)).chat_channel_ids


@pytest.mark.parametrize(
    "who",
    [nobody(), Moderator(ROLE_MOD, GUILD, role_ids=frozenset({MOD_ROLE}))],
    ids=["member", "mod-role"],  # a moderator role moderates but does not configure
)
async def test_a_non_admin_is_refused_and_nothing_changes(
    service: OhLoraService, repo: Repository, who: Moderator
) -> None:
    moderation = service.moderation
    await moderation.add_mod_role(mod(), MOD_ROLE)
    before = await repo.recent_audit()
    for attempt in (
        moderation.add_chat_channel(who, NEW_CHANNEL),
        moderation.remove_chat_channel(who, ENV_CHANNEL),
        moderation.set_expression_picture(who, False),
    ):
        with pytest.raises(NotAllowed):
            await attempt
    assert await repo.recent_audit() == before
    assert await moderation.chat_routing(GUILD) == ChatRouting(frozenset({ENV_CHANNEL}), True)
    assert (await moderation.store.guild_routing(GUILD)).chat_channels == {}


async def test_a_global_admin_configures_a_server_from_inside_it(
    service: OhLoraService,
) -> None:
    moderation = service.moderation
    with pytest.raises(NeedsServer):
        await moderation.add_chat_channel(Moderator(ADMIN, None), NEW_CHANNEL)
    assert (await moderation.add_chat_channel(Moderator(ADMIN, OTHER), NEW_CHANNEL)).changed
    assert NEW_CHANNEL in (await moderation.chat_routing(OTHER)).chat_channel_ids
    assert NEW_CHANNEL not in (await moderation.chat_routing(GUILD)).chat_channel_ids


async def test_manage_server_configures_without_moderating(service: OhLoraService) -> None:
    """The issue's "Manage Server": its holders set the bot up (Red's `[p]set`), but Manage
    Server alone does not let them see or lift anyone's sanctions."""
    moderation = service.moderation
    owner = Moderator("900000000000002999", GUILD, manages_server=True)
    assert (await moderation.add_chat_channel(owner, NEW_CHANNEL)).changed
    assert NEW_CHANNEL in (await moderation.chat_routing(GUILD)).chat_channel_ids
    with pytest.raises(NotAllowed):
        await moderation.reach(owner)
