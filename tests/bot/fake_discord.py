"""A fake Discord (REST + gateway) on 127.0.0.1 for end-to-end bot tests.

discord.py reaches Discord only through `discord.http.Route.BASE` (REST, also used by the
interaction webhooks) and `DiscordWebSocket.DEFAULT_GATEWAY`; `FakeDiscord.start` points both
here and `stop` puts them back. The fake plays one guild with two text channels, a DM channel
and a few users, records every REST call the bot makes, and lets a test push gateway events
(messages, slash commands, button clicks) or drop the websocket. A second guild, owned by JIHO
(any user can make a server and invite a public bot), plays the attacker's own server.
Interactions carry what Discord's payloads carry: `guild_id`, `context`, the invoker's
`member.permissions` (an owner holds every permission) and the bot's `app_permissions`.

Files travel as discord.py sends them (multipart/form-data: `payload_json` + `files[n]`) and
come back as `Sent.attachments`; string selects (`select`) and message context menus
(`context_menu`) are faked; each synced command keeps its `integration_types` / `contexts`, and
invoking one where Discord would not offer it (a user install reaching a guild-install command,
a guild-only command in a DM) raises `NotOffered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, web

# A hosted bot connects once the service has loaded its models: on two busy cores, minutes.
CONNECT_TIMEOUT_S = 240.0

APP_ID = "900000000000001000"
BOT = {
    "id": "900000000000001000",
    "username": "ohlora",
    "discriminator": "0",
    "global_name": "오로라",
    "avatar": None,
    "bot": True,
}
MINSU = {
    "id": "900000000000002000",
    "username": "minsu",
    "discriminator": "0",
    "global_name": "민수",
    "avatar": None,
}
JIHO = {
    "id": "900000000000002001",
    "username": "jiho",
    "discriminator": "0",
    "global_name": "지호",
    "avatar": None,
}
MOD = {
    "id": "900000000000002002",
    "username": "mod",
    "discriminator": "0",
    "global_name": "운영진",
    "avatar": None,
}
STRANGER = {
    "id": "900000000000002999",
    "username": "stranger",
    "discriminator": "0",
    "global_name": "외부인",
    "avatar": None,
}
WEBHOOK_USER = {
    "id": "900000000000004000",
    "username": "hook",
    "discriminator": "0000",
    "avatar": None,
    "bot": True,
}
OTHER_BOT = {
    "id": "900000000000004001",
    "username": "otherbot",
    "discriminator": "0",
    "avatar": None,
    "bot": True,
}
GUILD = "900000000000000500"
CHAT = "900000000000003000"  # a guild text channel
CHAT_CHANNEL = "900000000000003001"  # a guild text channel configured as a chat channel
DM = "900000000000003500"
JIHO_GUILD = "900000000000000600"  # JIHO's own server, the bot invited
JIHO_CHAT = "900000000000003100"
# Moderation (issue 19): a mod-log channel in each server, and a role a server may name its
# moderators' (HELPER holds it in GUILD; in JIHO_GUILD nobody has a role).
MODLOG = "900000000000003002"
JIHO_MODLOG = "900000000000003102"
HELPER_ROLE = "900000000000000510"
TIMESTAMP = "2026-11-25T05:00:00+00:00"
MODERATE_MEMBERS = 1 << 40
ALL_PERMISSIONS = discord.Permissions.all().value  # what Discord resolves for a guild owner
BOT_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, read_message_history=True
).value
GUILD_MEMBERS = (BOT, MINSU, JIHO, MOD)  # STRANGER is not in the guild
CONTEXT_GUILD, CONTEXT_BOT_DM, CONTEXT_PRIVATE_CHANNEL = 0, 1, 2  # an interaction's `context`
# A DM between MINSU and JIHO, the bot not in it: only a user install reaches it (context 2).
PRIVATE = "900000000000003600"
# A server the bot was never invited to (STRANGER's, MINSU a member): only a user install
# reaches it; Discord sends no gateway events from it.
OUTSIDE_GUILD = "900000000000000700"
OUTSIDE_CHAT = "900000000000003200"
# What a user-installed app may do where its bot is not (Discord's fixed set for user installs).
USER_INSTALL_PERMISSIONS = discord.Permissions(
    send_messages=True, embed_links=True, attach_files=True, use_external_emojis=True
).value
FILE_SIZE_LIMIT = 8388608  # `attachment_size_limit` of an unboosted server
CDN = "https://cdn.invalid/attachments"
EPHEMERAL_FLAG = 64


class Install(IntEnum):
    """Who installed the app for an interaction (Discord's integration types)."""

    GUILD = 0
    USER = 1


class NotOffered(Exception):
    """Discord would not show this command to this user here (its `integration_types` or
    `contexts` leave the install or the place out), so no interaction could be sent."""


@dataclass(frozen=True)
class FakeFile:
    """A file the bot uploaded, as Discord stores the attachment. `content_type` is what
    Discord reports (guessed from the file name); `id` is the attachment's snowflake."""

    filename: str
    content_type: str | None
    data: bytes
    description: str | None = None
    id: str = ""


@dataclass(frozen=True)
class FakeGuild:
    id: str
    name: str
    owner: dict[str, Any]
    channels: tuple[tuple[str, str], ...]  # (id, name)
    members: tuple[dict[str, Any], ...]
    roles: tuple[tuple[str, str], ...] = ()  # (id, name) besides @everyone


GUILDS = (
    FakeGuild(
        GUILD,
        "오로라 서버",
        MOD,
        ((CHAT, "잡담"), (CHAT_CHANNEL, "오로라"), (MODLOG, "관리-기록")),
        GUILD_MEMBERS,
        ((HELPER_ROLE, "도우미"),),
    ),
    FakeGuild(
        JIHO_GUILD,
        "지호네 서버",
        JIHO,
        ((JIHO_CHAT, "일반"), (JIHO_MODLOG, "관리-기록")),
        (BOT, JIHO, MINSU),
    ),
)


OUTSIDE = FakeGuild(
    OUTSIDE_GUILD, "외부인네 서버", STRANGER, ((OUTSIDE_CHAT, "수다"),), (STRANGER, MINSU)
)


def guild_of(channel: str) -> FakeGuild | None:
    """The guild (of those the bot is in) a channel is in; None for a DM channel."""
    return next((g for g in GUILDS if any(cid == channel for cid, _ in g.channels)), None)


def _any_guild_of(channel: str) -> FakeGuild | None:
    """Like `guild_of`, counting the server the bot is not in."""
    return guild_of(channel) or (OUTSIDE if channel == OUTSIDE_CHAT else None)


def _walk(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every component, rows and (components v2) containers, sections and labels opened."""
    for component in components:
        yield component
        yield from _walk(component.get("components") or [])
        for key in ("component", "accessory"):
            if isinstance(component.get(key), dict):
                yield from _walk([component[key]])


def _member(
    user: dict[str, Any],
    *,
    with_user: bool = True,
    permissions: int | None = None,
    roles: list[str] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "roles": list(roles or []),
        "joined_at": TIMESTAMP,
        "deaf": False,
        "mute": False,
        "flags": 0,
    }
    if with_user:
        data["user"] = user
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def _guild(guild: FakeGuild = GUILDS[0]) -> dict[str, Any]:
    channels = [
        {
            "id": cid,
            "type": 0,
            "name": name,
            "position": i,
            "guild_id": guild.id,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }
        for i, (cid, name) in enumerate(guild.channels)
    ]
    return {
        "id": guild.id,
        "name": guild.name,
        "owner_id": guild.owner["id"],
        "icon": None,
        "roles": [
            {
                "id": guild.id,
                "name": "@everyone",
                "permissions": "0",
                "position": 0,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
        ]
        + [_role(rid, name, i + 1) for i, (rid, name) in enumerate(guild.roles)],
        "channels": channels,
        "threads": [],
        "members": [_member(u) for u in guild.members],
        "member_count": len(guild.members),
        "emojis": [],
        "stickers": [],
        "features": [],
        "voice_states": [],
        "presences": [],
        "unavailable": False,
        "large": False,
        "joined_at": TIMESTAMP,
        "premium_tier": 0,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "system_channel_flags": 0,
        "preferred_locale": "ko",
    }


def _role(role_id: str, name: str, position: int) -> dict[str, Any]:
    """A plain role with no permissions of its own (a mod role is the bot's notion, not
    Discord's)."""
    return {
        "id": role_id,
        "name": name,
        "permissions": "0",
        "position": position,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": True,
        "flags": 0,
    }


def json_response(obj: Any, status: int = 200) -> web.Response:
    # discord.http.json_or_text wants exactly 'application/json' (no charset).
    return web.Response(
        body=json.dumps(obj).encode(), status=status, headers={"Content-Type": "application/json"}
    )


@dataclass
class Sent:
    """A message the bot created, or the latest state of it after edits."""

    id: str
    channel_id: str
    content: str
    reference: str | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    interaction_id: str | None = None
    allowed_mentions: dict[str, Any] | None = None
    attachments: list[FakeFile] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL_FLAG)

    def attachment(self, filename: str) -> FakeFile | None:
        """The attached file of this name (what `attachment://filename` in an embed shows)."""
        return next((f for f in self.attachments if f.filename == filename), None)

    @property
    def footer(self) -> str | None:
        for embed in self.embeds:
            if embed.get("footer"):
                return embed["footer"].get("text")
        return None


class FakeDiscord:
    def __init__(self) -> None:
        self.ids = itertools.count(900_000_000_000_010_000)
        self.calls: list[tuple[str, str]] = []
        self.messages: dict[str, Sent] = {}
        self.user_messages: dict[str, dict[str, Any]] = {}  # what users sent, by id (for edits)
        self.typing: list[str] = []
        self.commands: list[dict[str, Any]] = []
        self.identifies = 0
        self.resumes = 0
        self.ws: web.WebSocketResponse | None = None  # shard 0's (DMs, and every guild unsharded)
        # Sharding as Discord does it: `GET /gateway/bot` recommends `recommended_shards`; each
        # IDENTIFY names its `shard` ([id, count], recorded in `identified`), a shard is told only
        # its own guilds ((guild_id >> 22) % count), and DMs reach shard 0 only.
        self.recommended_shards = 1
        self.identified: list[list[int] | None] = []
        self.shard_count = 1
        self.shards: dict[int, web.WebSocketResponse] = {}
        self._session_shards: dict[str, int] = {}
        self.seq = 0
        self._connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._saved: tuple[str, yarl.URL] | None = None
        self.port = 0
        self._origin: dict[str, str] = {}  # component interaction -> the message it is on
        self.deleted: set[str] = set()
        # What GET /guilds/{id}/members/{id} answers when set (e.g. 403: the bot lost access).
        self.member_fetch_error: int | None = None
        self.callbacks: dict[str, list[int]] = {}  # interaction -> its callback types, in order
        self._init_moderation()
        self._channel_of: dict[str, str] = {}  # interaction -> the channel it came from
        self._original: dict[str, str] = {}  # interaction -> its @original response message
        self._owners: dict[str, dict[str, str]] = {}  # interaction -> its install owners

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = f"http://127.0.0.1:{self.port}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{self.port}/")

    async def stop(self) -> None:
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- what the bot did --------------------------------------------------------------
    def _touch(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked whenever the bot calls REST)."""

        async def poll() -> Any:
            while True:
                value = predicate()
                if value:
                    return value
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.2)

        return await asyncio.wait_for(poll(), timeout)

    def in_channel(self, channel_id: str) -> list[Sent]:
        return [
            m for m in self.messages.values() if m.channel_id == channel_id and not m.interaction_id
        ]

    def responses(self, interaction_id: str) -> list[Sent]:
        return [m for m in self.messages.values() if m.interaction_id == interaction_id]

    # ---- REST ------------------------------------------------------------------------
    def _message_payload(self, sent: Sent, author: dict[str, Any] = BOT) -> dict[str, Any]:
        return {
            "id": sent.id,
            "channel_id": sent.channel_id,
            "author": author,
            "content": sent.content,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [self._attachment_payload(f) for f in sent.attachments],
            "embeds": sent.embeds,
            "components": sent.components,
            "pinned": False,
            "type": 0,
            "flags": sent.flags,
        }

    @staticmethod
    def _attachment_payload(file: FakeFile) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": file.id,
            "filename": file.filename,
            "size": len(file.data),
            "url": f"{CDN}/{file.id}/{file.filename}",
            "proxy_url": f"{CDN}/{file.id}/{file.filename}",
        }
        if file.content_type is not None:
            payload["content_type"] = file.content_type
        if file.description is not None:
            payload["description"] = file.description
        return payload

    def _store(
        self,
        channel_id: str,
        data: dict[str, Any],
        interaction_id: str | None = None,
        files: dict[str, FakeFile] | None = None,
    ) -> Sent:
        ref = (data.get("message_reference") or {}).get("message_id")
        sent = Sent(
            str(next(self.ids)),
            channel_id,
            data.get("content") or "",
            str(ref) if ref else None,
            data.get("embeds") or [],
            data.get("components") or [],
            int(data.get("flags") or 0),
            interaction_id,
            data.get("allowed_mentions"),
        )
        self._attach(sent, data, files or {})
        self.messages[sent.id] = sent
        return sent

    def _attach(self, sent: Sent, data: dict[str, Any], files: dict[str, FakeFile]) -> None:
        """Discord's rule for `attachments`: when sent, the message keeps exactly the listed
        ones — existing attachments by id, new uploads by their `files[n]` index (with the
        filename and description given there); when absent, new uploads are added."""
        if "attachments" not in data:
            sent.attachments = sent.attachments + list(files.values())
            return
        kept: list[FakeFile] = []
        for entry in data["attachments"] or []:
            key = str(entry["id"])
            existing = next((f for f in sent.attachments if f.id == key), None)
            if existing is not None:
                kept.append(existing)
            elif key in files:
                upload = files[key]
                filename = entry.get("filename") or upload.filename
                kept.append(
                    replace(
                        upload,
                        filename=filename,
                        content_type=mimetypes.guess_type(filename)[0],
                        description=entry.get("description"),
                    )
                )
        sent.attachments = kept

    async def _read_multipart(
        self, request: web.Request
    ) -> tuple[dict[str, Any], dict[str, FakeFile]]:
        """`payload_json` and the `files[n]` parts (keyed by n) of a multipart request."""
        data: dict[str, Any] = {}
        files: dict[str, FakeFile] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader), "discord.py sends no nested multipart"
            if part.name == "payload_json":
                data = json.loads(await part.text())
            elif part.name is not None and part.name.startswith("files["):
                index = part.name.removeprefix("files[").removesuffix("]")
                filename = part.filename or f"file{index}"
                files[index] = FakeFile(
                    filename,
                    mimetypes.guess_type(filename)[0],
                    bytes(await part.read()),
                    None,
                    str(next(self.ids)),
                )
        return data, files

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix("/api/v10")
        self.calls.append((request.method, path))
        files: dict[str, FakeFile] = {}
        if request.content_type.startswith("multipart/"):
            data, files = await self._read_multipart(request)
        else:
            body = await request.text()
            data = json.loads(body) if body else {}
        try:
            return await self._route(request.method, path.strip("/").split("/"), data, files)
        finally:
            self._touch()

    async def _route(
        self,
        method: str,
        parts: list[str],
        data: dict[str, Any],
        files: dict[str, FakeFile] | None = None,
    ) -> web.StreamResponse:
        files = files or {}
        match method, parts:
            case "GET", ["users", "@me"]:
                return json_response(BOT)
            case "GET", ["gateway", "bot"]:
                return json_response(
                    {
                        "url": f"ws://127.0.0.1:{self.port}/",
                        "shards": self.recommended_shards,
                        "session_start_limit": {
                            "total": 1000,
                            "remaining": 999,
                            "reset_after": 86_400_000,
                            "max_concurrency": 1,
                        },
                    }
                )
            case "GET", ["oauth2", "applications", "@me"]:
                return json_response(
                    {
                        "id": APP_ID,
                        "name": "ohlora",
                        "description": "",
                        "icon": None,
                        "bot_public": True,
                        "bot_require_code_grant": False,
                        "owner": MOD,
                        "verify_key": "00",
                        "flags": 0,
                    }
                )
            case "PUT", ["applications", _, "commands"]:
                self.commands = [
                    dict(
                        c,
                        id=str(900_000_000_000_005_000 + i),
                        application_id=APP_ID,
                        version="1",
                        type=c.get("type", 1),
                        # Discord answers a context menu's (it has none) as ""
                        description=c.get("description") or "",
                    )
                    for i, c in enumerate(data)
                ]
                return json_response(self.commands)
            case "POST", ["channels", channel_id, "typing"]:
                self.typing.append(channel_id)
                return web.Response(status=204)
            case "POST", ["channels", channel_id, "messages"]:
                ref = (data.get("message_reference") or {}).get("message_id")
                if ref and str(ref) in self.deleted:
                    return json_response(
                        {
                            "message": "Invalid Form Body",
                            "code": 50035,
                            "errors": {"message_reference": "Unknown message"},
                        },
                        status=400,
                    )
                sent = self._store(channel_id, data, files=files)
                return json_response(self._message_payload(sent))
            case "PATCH", ["channels", channel_id, "messages", message_id]:
                sent = self.messages[message_id]
                self._edit(sent, data, files)
                return json_response(self._message_payload(sent))
            case "DELETE", ["channels", channel_id, "messages", message_id]:
                self.deleted.add(message_id)
                return web.Response(status=204)
            case "GET", ["guilds", guild_id, "members", user_id]:
                if self.member_fetch_error is not None:
                    return json_response(
                        {"message": "Missing Access", "code": 50001}, status=self.member_fetch_error
                    )
                guild = next((g for g in GUILDS if g.id == guild_id), None)
                for user in guild.members if guild else ():
                    if user["id"] == user_id:
                        roles = self.member_roles.get((guild_id, user_id))
                        return json_response(_member(user, roles=roles))
                return json_response({"message": "Unknown Member", "code": 10007}, status=404)
            case "POST", ["interactions", interaction_id, _, "callback"]:
                return self._callback(interaction_id, data, files)
            case "POST", ["webhooks", _, token]:  # a followup
                interaction_id = token.removeprefix("tok")
                channel = self._channel_of.get(interaction_id, DM)
                sent = self._store(channel, data, interaction_id=interaction_id, files=files)
                # After a deferral (thinking), the first followup is the @original response.
                self._original.setdefault(interaction_id, sent.id)
                return json_response(self._message_payload(sent))
            case "PATCH", ["webhooks", _, token, "messages", message_id]:
                sent = self._webhook_message(token.removeprefix("tok"), message_id)
                self._edit(sent, data, files)
                return json_response(self._message_payload(sent))
            case "GET", ["webhooks", _, token, "messages", message_id]:
                sent = self._webhook_message(token.removeprefix("tok"), message_id)
                return json_response(self._message_payload(sent))
            case "DELETE", ["webhooks", _, token, "messages", message_id]:
                sent = self._webhook_message(token.removeprefix("tok"), message_id)
                self.deleted.add(sent.id)
                return web.Response(status=204)
        more = self._route_moderation(method, parts, data)
        if more is not None:
            return more
        return json_response({"message": "not faked", "code": 0}, status=404)

    def _edit(self, sent: Sent, data: dict[str, Any], files: dict[str, FakeFile]) -> None:
        """A PATCH: the fields it sends replace the message's; attachments as `_attach`."""
        if "content" in data:
            sent.content = data["content"] or ""
        if "embeds" in data:
            sent.embeds = data["embeds"] or []
        if "components" in data:
            sent.components = data["components"] or []
        if "flags" in data and data["flags"] is not None:
            # Only SUPPRESS_EMBEDS / IS_COMPONENTS_V2 may change; an ephemeral stays one.
            sent.flags = (sent.flags & EPHEMERAL_FLAG) | (int(data["flags"]) & ~EPHEMERAL_FLAG)
        self._attach(sent, data, files)

    def _webhook_message(self, interaction_id: str, message_id: str) -> Sent:
        """An interaction's message: a followup by id, or `@original` (its response: the
        message it created, the first followup after a deferral, or the message a component
        is on)."""
        if message_id != "@original":
            return self.messages[message_id]
        original = self._original.get(interaction_id)
        if original is not None:
            return self.messages[original]
        own = [m for m in self.messages.values() if m.interaction_id == interaction_id]
        return own[-1] if own else self.messages[self._origin[interaction_id]]

    def _callback(
        self, interaction_id: str, data: dict[str, Any], files: dict[str, FakeFile] | None = None
    ) -> web.Response:
        kind = data["type"]
        self.callbacks.setdefault(interaction_id, []).append(kind)
        inner = data.get("data") or {}
        origin = self._origin.get(interaction_id)
        resource: dict[str, Any] = {"type": kind}
        message_id: str | None = None
        if kind == 4:  # a new message
            channel = self._channel_of.get(interaction_id, DM)
            sent = self._store(channel, inner, interaction_id=interaction_id, files=files)
            message_id = self._original[interaction_id] = sent.id
            resource["message"] = self._message_payload(sent)
        elif kind in (6, 7) and origin is not None:  # a component's message (7: updated)
            sent = self.messages[origin]
            if kind == 7:
                self._edit(sent, inner, files or {})
                message_id = sent.id
                resource["message"] = self._message_payload(sent)
            self._original[interaction_id] = sent.id
        elif kind == 9:  # MODAL: the form the user now sees (`submit` fills it in)
            self.modals[interaction_id] = inner
        return json_response(
            {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_id": message_id,
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(inner.get("flags", 0) & 64),
                },
                "resource": resource,
            }
        )

    # ---- gateway ---------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        async for frame in ws:
            payload = json.loads(frame.data)
            op = payload["op"]
            if op == 1:
                await ws.send_json({"op": 11})
            elif op == 2:
                self.identifies += 1
                shard = payload["d"].get("shard")
                self.identified.append(shard)
                shard_id, self.shard_count = shard or (0, 1)
                self.shards[shard_id] = ws
                if shard_id == 0:
                    self.ws = ws
                session = f"session-{self.identifies}"
                self._session_shards[session] = shard_id
                mine = [g for g in GUILDS if self.shard_of(g.id) == shard_id]
                ready: dict[str, Any] = {
                    "v": 10,
                    "user": BOT,
                    "guilds": [{"id": g.id, "unavailable": True} for g in mine],
                    "session_id": session,
                    "resume_gateway_url": f"ws://127.0.0.1:{self.port}/",
                    "application": {"id": APP_ID, "flags": 0},
                }
                if shard is not None:
                    ready["shard"] = shard
                await self._send(ws, "READY", ready)
                for guild in mine:
                    await self._send(ws, "GUILD_CREATE", _guild(guild))
                self._connected.set()
            elif op == 6:
                self.resumes += 1
                shard_id = self._session_shards.get(payload["d"].get("session_id"), 0)
                self.shards[shard_id] = ws
                if shard_id == 0:
                    self.ws = ws
                await self._send(ws, "RESUMED", {})
                self._connected.set()
        return ws

    async def _send(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        await ws.send_json({"op": 0, "t": event, "s": self.seq, "d": data})

    def shard_of(self, guild_id: str) -> int:
        return (int(guild_id) >> 22) % self.shard_count

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event down the shard Discord would: its guild's, or shard 0 (DMs)."""
        await asyncio.wait_for(self._connected.wait(), 30)
        guild_id = data.get("guild_id")
        ws = self.ws if guild_id is None else self.shards.get(self.shard_of(guild_id), self.ws)
        assert ws is not None
        await self._send(ws, event, data)

    async def drop(self) -> None:
        """Close the websocket as Discord does on a resumable failure (4000: unknown error)."""
        assert self.ws is not None
        self._connected.clear()
        ws, self.ws = self.ws, None
        await ws.close(code=4000, message=b"fake drop")

    async def connected(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Wait for the bot's gateway connection (after the service loaded its models)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    # ---- what users do ---------------------------------------------------------------
    async def message(
        self,
        content: str,
        *,
        author: dict[str, Any] = MINSU,
        channel: str = DM,
        mentions: tuple[dict[str, Any], ...] = (),
        nicks: dict[str, str] | None = None,
        attachments: int = 0,
        stickers: int = 0,
        reply_to: str | None = None,
        webhook: bool = False,
    ) -> str:
        """`nicks`: server nicknames (user id → nick) of mentioned members; Discord sends each
        mention with its partial `member`, `nick` included."""
        mid = str(next(self.ids))
        data: dict[str, Any] = {
            "id": mid,
            "channel_id": channel,
            "author": author,
            "content": content,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [
                dict(u, member=dict(_member(u, with_user=False), nick=(nicks or {}).get(u["id"])))
                for u in mentions
            ],
            "mention_roles": [],
            "embeds": [],
            "pinned": False,
            "type": 19 if reply_to else 0,
            "attachments": [
                {
                    "id": str(next(self.ids)),
                    "filename": f"photo{i}.png",
                    "size": 1024,
                    "url": "https://cdn.invalid/p.png",
                    "proxy_url": "https://cdn.invalid/p.png",
                }
                for i in range(attachments)
            ],
            "sticker_items": [
                {"id": str(next(self.ids)), "name": "하트", "format_type": 1}
                for _ in range(stickers)
            ],
        }
        assert channel not in (PRIVATE, OUTSIDE_CHAT), "the bot sees no messages there"
        guild = guild_of(channel)
        if webhook:
            data["webhook_id"] = author["id"]
        if guild is not None:
            data["guild_id"] = guild.id
            if not webhook:
                data["member"] = _member(author, with_user=False)
        if reply_to is not None:
            data["message_reference"] = {
                "message_id": reply_to,
                "channel_id": channel,
                "guild_id": guild.id if guild is not None else None,
            }
            original = self.messages.get(reply_to)
            if original is not None:
                data["referenced_message"] = self._message_payload(original)
        self.user_messages[mid] = data
        await self.dispatch("MESSAGE_CREATE", data)
        return mid

    async def edit(self, message_id: str, content: str) -> None:
        """A user edits their message: since API v10 Discord sends MESSAGE_UPDATE with the
        whole message object (a partial one makes discord.py's parser raise)."""
        data = dict(self.user_messages[message_id], content=content, edited_timestamp=TIMESTAMP)
        self.user_messages[message_id] = data
        await self.dispatch("MESSAGE_UPDATE", data)

    async def delete(self, message_id: str, *, channel: str = DM) -> None:
        self.deleted.add(message_id)
        data: dict[str, Any] = {"id": message_id, "channel_id": channel}
        guild = guild_of(channel)
        if guild is not None:
            data["guild_id"] = guild.id
        await self.dispatch("MESSAGE_DELETE", data)

    @staticmethod
    def _context(channel: str) -> int:
        """The interaction `context` Discord gives a channel."""
        if channel == PRIVATE:
            return CONTEXT_PRIVATE_CHANNEL
        return CONTEXT_GUILD if _any_guild_of(channel) is not None else CONTEXT_BOT_DM

    def _offer(self, command: dict[str, Any], install: Install, channel: str) -> None:
        """Raise `NotOffered` where Discord would not show `command`: its `integration_types`
        (unset: the app's default, a guild install) must hold the install and its `contexts`
        (unset: every context, less the DMs when `dm_permission` is false) the place; a guild
        install reaches only the bot's servers and its DM."""
        installs = command.get("integration_types") or [Install.GUILD]
        if install not in installs:
            raise NotOffered(f"/{command['name']} is not offered to a {install.name} install")
        contexts = command.get("contexts")
        if contexts is None:
            every = [CONTEXT_GUILD, CONTEXT_BOT_DM, CONTEXT_PRIVATE_CHANNEL]
            contexts = every if command.get("dm_permission", True) else [CONTEXT_GUILD]
        context = self._context(channel)
        if context not in contexts:
            raise NotOffered(f"/{command['name']} is not offered in context {context}")
        if install is Install.GUILD and context != CONTEXT_BOT_DM and guild_of(channel) is None:
            raise NotOffered(f"the app is not installed in the server of {channel}")

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        user: dict[str, Any],
        channel: str,
        permissions: int,
        install: Install = Install.GUILD,
    ) -> tuple[str, dict[str, Any]]:
        """The payload Discord sends: in a guild the invoker comes as `member` with their
        resolved `permissions` (all of them for the owner); in a DM as `user`, with no guild
        and no member permissions at all. `authorizing_integration_owners` names the install:
        {"0": guild id, or "0" in the bot's DM} for the server's, {"1": user id} for the
        user's own."""
        iid = str(next(self.ids))
        self._channel_of[iid] = channel
        owners = (
            {str(Install.USER.value): user["id"]}
            if install is Install.USER
            else {str(Install.GUILD.value): "0"}
        )
        payload: dict[str, Any] = {
            "id": iid,
            "application_id": APP_ID,
            "type": kind,
            "token": f"tok{iid}",
            "version": 1,
            "channel_id": channel,
            "locale": "ko",
            "app_permissions": str(BOT_PERMISSIONS),
            "entitlements": [],
            "authorizing_integration_owners": owners,
            "attachment_size_limit": FILE_SIZE_LIMIT,
            "data": data,
        }
        guild = _any_guild_of(channel)
        if guild is None:
            payload.update(user=user, context=self._context(channel))
            if channel == PRIVATE:  # a DM between two people: the bot is not in it
                others = [u for u in (MINSU, JIHO) if u["id"] != user["id"]]
                payload.update(
                    channel={"id": PRIVATE, "type": 1, "recipients": others},
                    app_permissions=str(USER_INSTALL_PERMISSIONS),
                )
            else:
                payload["channel"] = {"id": channel, "type": 1}
        else:
            if user["id"] == guild.owner["id"]:
                permissions = ALL_PERMISSIONS
            if install is Install.GUILD:
                owners[str(Install.GUILD.value)] = guild.id
            if guild is OUTSIDE:
                payload["app_permissions"] = str(USER_INSTALL_PERMISSIONS)
            payload.update(
                guild_id=guild.id,
                context=CONTEXT_GUILD,
                guild_locale="ko",
                guild={"id": guild.id, "locale": "ko", "features": []},
                member=_member(
                    user,
                    permissions=permissions,
                    roles=self.member_roles.get((guild.id, user["id"])),
                ),
                channel={
                    "id": channel,
                    "type": 0,
                    "guild_id": guild.id,
                    "name": dict(guild.channels)[channel],
                    "position": 0,
                    "permission_overwrites": [],
                },
            )
        self._owners[iid] = owners
        return iid, payload

    def _inherit(self, iid: str, payload: dict[str, Any], message: Sent) -> None:
        """A component on an interaction's answer is authorized by the same install."""
        if message.interaction_id in self._owners:
            owners = self._owners[message.interaction_id]
            payload["authorizing_integration_owners"] = self._owners[iid] = dict(owners)

    def registered(self, name: str, kind: int = 1) -> dict[str, Any]:
        """The synced command payload (`kind`: 1 slash, 2 user menu, 3 message menu)."""
        found = next(
            (c for c in self.commands if c["name"] == name and c.get("type", 1) == kind), None
        )
        assert found is not None, f"no command {name!r} of type {kind} was synced"
        return found

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: dict[str, Any] = MINSU,
        channel: str = DM,
        permissions: int = 0,
        target: dict[str, Any] | None = None,
        install: Install = Install.GUILD,
    ) -> str:
        """Invoke a slash command; `target` is a user option (resolved like Discord does)."""
        command = self.registered(name)
        self._offer(command, install, channel)
        opts = [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()]
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": 1, "options": opts}
        if target is not None:
            opts.append({"name": "user", "type": 6, "value": target["id"]})
            resolved: dict[str, Any] = {"users": {target["id"]: target}}
            guild = guild_of(channel)
            if guild is not None and target in guild.members:
                resolved["members"] = {target["id"]: _member(target, with_user=False)}
            data["resolved"] = resolved
        iid, payload = self._interaction(2, data, user, channel, permissions, install)
        await self.dispatch("INTERACTION_CREATE", payload)
        return iid

    def button(self, message: Sent, label: str) -> dict[str, Any] | None:
        """The button with this label on a message the bot sent, if it has one."""
        return next(
            (c for c in _walk(message.components) if c["type"] == 2 and c.get("label") == label),
            None,
        )

    def select_menu(self, message: Sent, custom_id: str | None = None) -> dict[str, Any] | None:
        """The string select (the first, or the one with this custom_id) on a message."""
        return next(
            (
                c
                for c in _walk(message.components)
                if c["type"] == 3 and custom_id in (None, c.get("custom_id"))
            ),
            None,
        )

    async def select(
        self,
        message: Sent,
        values: list[str],
        *,
        custom_id: str | None = None,
        user: dict[str, Any] = MINSU,
        channel: str = DM,
        permissions: int = 0,
    ) -> str:
        """Pick `values` in a string select on a message the bot sent; the client lets a user
        pick only listed options, between `min_values` and `max_values` of them."""
        menu = self.select_menu(message, custom_id)
        assert menu is not None, f"no select {custom_id or ''!r} on {message.content!r}"
        offered = {o["value"] for o in menu.get("options", [])}
        assert set(values) <= offered, f"{values} not among the options {sorted(offered)}"
        low, high = menu.get("min_values", 1), menu.get("max_values", 1)
        assert low <= len(values) <= high, f"{len(values)} values, not {low}..{high}"
        assert not menu.get("disabled"), "a disabled select cannot be used"
        data = {"custom_id": menu["custom_id"], "component_type": 3, "values": list(values)}
        iid, payload = self._interaction(3, data, user, channel, permissions)
        payload["message"] = self._component_message(message, user)
        self._inherit(iid, payload, message)
        self._origin[iid] = message.id
        await self.dispatch("INTERACTION_CREATE", payload)
        return iid

    async def context_menu(
        self,
        name: str,
        target: Sent | str,
        *,
        user: dict[str, Any] = MINSU,
        channel: str = DM,
        permissions: int = 0,
        install: Install = Install.GUILD,
    ) -> str:
        """Use a message context menu (type 3) on `target`: a message the bot sent (its
        author the bot) or the id of one a user sent (`message`). Discord sends `target_id`
        and the message in `resolved.messages`."""
        command = self.registered(name, kind=3)
        self._offer(command, install, channel)
        if isinstance(target, Sent):
            message_id, resolved = target.id, self._message_payload(target)
        else:
            message_id, resolved = target, dict(self.user_messages[target])
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": 3,
            "target_id": message_id,
            "resolved": {"messages": {message_id: resolved}},
        }
        iid, payload = self._interaction(2, data, user, channel, permissions, install)
        await self.dispatch("INTERACTION_CREATE", payload)
        return iid

    async def click(
        self,
        message: Sent,
        label: str,
        *,
        user: dict[str, Any] = MINSU,
        channel: str = DM,
        permissions: int = 0,
    ) -> str:
        """Press the button with this label on a message the bot sent."""
        button = self.button(message, label)
        assert button is not None, f"no button {label!r} on {message.content!r}"
        data = {"custom_id": button["custom_id"], "component_type": 2}
        iid, payload = self._interaction(3, data, user, channel, permissions)
        payload["message"] = self._component_message(message, user)
        self._inherit(iid, payload, message)
        self._origin[iid] = message.id
        await self.dispatch("INTERACTION_CREATE", payload)
        return iid

    # ---- moderation (issue 19): roles, typed options, modals, DMs ----------------------
    def _init_moderation(self) -> None:
        self.modals: dict[str, dict[str, Any]] = {}  # interaction -> the modal it opened
        # (guild, user) -> role ids, sent in the member objects of interactions and fetches
        self.member_roles: dict[tuple[str, str], list[str]] = {}
        self.dm_channels: dict[str, str] = {MINSU["id"]: DM}  # user -> their DM with the bot

    def _route_moderation(
        self, method: str, parts: list[str], data: dict[str, Any]
    ) -> web.Response | None:
        match method, parts:
            case "POST", ["users", "@me", "channels"]:  # `User.create_dm`
                user_id = str(data["recipient_id"])
                user = next(
                    (u for u in KNOWN_USERS if u["id"] == user_id),
                    {"id": user_id, "username": f"user{user_id[-4:]}", "discriminator": "0"},
                )
                channel = self.dm_channels.setdefault(user_id, str(next(self.ids)))
                return json_response(
                    {"id": channel, "type": 1, "recipients": [user], "last_message_id": None}
                )
            case "GET", ["users", user_id]:  # `Client.fetch_user` (no member cache)
                known = next((u for u in KNOWN_USERS if u["id"] == user_id), None)
                if known is not None:
                    return json_response(known)
                return json_response({"message": "Unknown User", "code": 10013}, status=404)
        return None

    def _component_message(self, message: Sent, user: dict[str, Any]) -> dict[str, Any]:
        """The message a component is on, as an interaction carries it (an interaction's
        response also names the interaction it answered)."""
        payload = self._message_payload(message)
        if message.interaction_id is not None:
            payload["interaction_metadata"] = {
                "id": message.interaction_id,
                "type": 2,
                "user": user,
                "authorizing_integration_owners": self._owners.get(message.interaction_id, {}),
            }
        return payload

    def dms(self, user: dict[str, Any]) -> list[Sent]:
        """What the bot sent the user privately (not interaction answers)."""
        channel = self.dm_channels.get(user["id"])
        return [] if channel is None else self.in_channel(channel)

    async def command(
        self,
        path: str,
        options: list[dict[str, Any]] | None = None,
        *,
        resolved: dict[str, Any] | None = None,
        user: dict[str, Any] = MINSU,
        channel: str = DM,
        permissions: int = 0,
        install: Install = Install.GUILD,
    ) -> str:
        """Invoke `path` ("config mod-role add"): subcommand groups nest as Discord nests
        them; `options` are typed option objects (`option`, `user_option`, ...)."""
        name, *subs = path.split()
        command = self.registered(name)
        self._offer(command, install, channel)
        opts: list[dict[str, Any]] = list(options or [])
        for depth, sub in reversed(list(enumerate(subs))):
            kind = 1 if depth == len(subs) - 1 else 2  # SUB_COMMAND, SUB_COMMAND_GROUP
            opts = [{"name": sub, "type": kind, "options": opts}]
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": 1, "options": opts}
        if resolved:
            data["resolved"] = resolved
        iid, payload = self._interaction(2, data, user, channel, permissions, install)
        await self.dispatch("INTERACTION_CREATE", payload)
        return iid

    def modal(self, interaction_id: str) -> dict[str, Any] | None:
        return self.modals.get(interaction_id)

    async def submit(
        self,
        opened_by: str,
        values: dict[str, str],
        *,
        user: dict[str, Any] = MINSU,
        channel: str = DM,
        permissions: int = 0,
    ) -> str:
        """Fill in the modal that interaction `opened_by` answered with (text inputs by their
        label) and submit it: MODAL_SUBMIT carries the modal's custom_id and every input's
        value, in the rows the modal had, plus the message when it was opened from a button."""
        modal = self.modals[opened_by]

        def filled(component: dict[str, Any]) -> dict[str, Any]:
            if component["type"] == 1:  # an action row
                return {"type": 1, "components": [filled(c) for c in component["components"]]}
            if component["type"] == 18:  # a label around one component
                label = component.get("label")
                inner = dict(component["component"], label=label)
                return {"type": 18, "component": filled(inner)}
            value = values.get(component.get("label", ""), component.get("value") or "")
            return {"type": component["type"], "custom_id": component["custom_id"], "value": value}

        data = {
            "custom_id": modal["custom_id"],
            "components": [filled(c) for c in modal["components"]],
        }
        iid, payload = self._interaction(5, data, user, channel, permissions)
        origin = self._origin.get(opened_by)
        if origin is not None:
            payload["message"] = self._component_message(self.messages[origin], user)
            self._inherit(iid, payload, self.messages[origin])
            self._origin[iid] = origin
        elif opened_by in self._owners:  # a modal a command opened: that command's install
            payload["authorizing_integration_owners"] = dict(self._owners[opened_by])
        await self.dispatch("INTERACTION_CREATE", payload)
        return iid


KNOWN_USERS = (BOT, MINSU, JIHO, MOD, STRANGER)


def option(name: str, value: Any, kind: int = 3) -> dict[str, Any]:
    """A slash option (3 string, 4 integer, 5 boolean)."""
    return {"name": name, "type": kind, "value": value}


def user_option(
    name: str, user: dict[str, Any], guild: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A user option and its `resolved` part (with the member when in that guild)."""
    resolved: dict[str, Any] = {"users": {user["id"]: user}}
    where = next((g for g in GUILDS if g.id == guild), None)
    if where is not None and user in where.members:
        resolved["members"] = {user["id"]: _member(user, with_user=False)}
    return {"name": name, "type": 6, "value": user["id"]}, resolved


def role_option(name: str, role_id: str, guild: str) -> tuple[dict[str, Any], dict[str, Any]]:
    roles = dict(next(g for g in GUILDS if g.id == guild).roles)
    return (
        {"name": name, "type": 8, "value": role_id},
        {"roles": {role_id: _role(role_id, roles[role_id], 1)}},
    )


def channel_option(name: str, channel_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    guild = guild_of(channel_id)
    assert guild is not None
    resolved = {
        "id": channel_id,
        "type": 0,
        "name": dict(guild.channels)[channel_id],
        "permissions": str(ALL_PERMISSIONS),
        "guild_id": guild.id,
    }
    return {"name": name, "type": 7, "value": channel_id}, {"channels": {channel_id: resolved}}
