"""Her face under a reply (issue 18): the parsed expression drawn as a picture, attached to the
reply's embed (`attachment://face.png`) with the text kept as the footer; a regenerate's face
follows the new reply; a server may turn the picture off."""

from __future__ import annotations

from engine.api import Moderator
from engine.pipeline import Call
from engine.rules.expression import Expression
from tests.bot.conftest import Running, settle
from tests.bot.fake_discord import CHAT_CHANNEL, DM, GUILD, MOD, Sent
from tests.bot.test_feedback import REGEN, counting, stub_replies

FACE = "face.png"
CALM = Expression("작게", "보통", "없음")
SURPRISED = Expression("아주 크게", "아주 크게", "많이")


def face_of(message: Sent) -> bytes:
    """The face picture the message's embed shows."""
    [embed] = message.embeds
    assert embed["image"]["url"] == f"attachment://{FACE}"
    file = message.attachment(FACE)
    assert file is not None and file.content_type == "image/png"
    return file.data


async def test_the_face_is_attached_and_follows_the_expression(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    stub_replies(running, "안녕! 반가워", "와, 정말?")
    faces = iter([CALM, SURPRISED])
    counting(running, Call.EXPRESSION, lambda _: next(faces))
    await fake.message("안녕 오로라")
    await settle(running)
    [reply] = fake.in_channel(DM)
    calm = face_of(reply)
    assert reply.footer == CALM.render()  # the text stays, for screen readers
    assert calm.startswith(b"\x89PNG")

    await fake.click(reply, REGEN)
    await fake.wait_for(lambda: fake.messages[reply.id].content == "와, 정말?")
    await settle(running)
    await fake.wait_for(lambda: fake.messages[reply.id].footer == SURPRISED.render())
    regenerated = fake.messages[reply.id]
    surprised = face_of(regenerated)
    assert surprised != calm  # a different expression, a different face
    assert [f.filename for f in regenerated.attachments] == [FACE]  # the old one replaced


async def test_a_server_can_turn_the_picture_off(toy_running: Running) -> None:
    running, fake = toy_running, toy_running.fake
    who = Moderator(MOD["id"], GUILD, True, frozenset())
    await running.service.moderation.set_expression_picture(who, False)
    counting(running, Call.EXPRESSION, lambda _: CALM)
    await fake.message("안녕 오로라", channel=CHAT_CHANNEL)
    await settle(running)
    [reply] = fake.in_channel(CHAT_CHANNEL)
    assert reply.footer == CALM.render()
    assert reply.attachments == [] and "image" not in reply.embeds[0]
    # Her DMs keep the default (on).
    await fake.message("안녕 오로라")
    await settle(running)
    [dm] = fake.in_channel(DM)
    assert face_of(dm)
