"""A local server speaking the OpenAI completions API, generating with the real tiny models.

It plays vLLM serving one LoRA module per role (`model` = the role name): the request's
prompts, `max_tokens`, `temperature`, `stop`, `seed` and `include_stop_str_in_output` are
honoured by `RoleModels.generate`, and every request is kept for shape checks.

A `Mode` makes it misbehave as a broken server would (never answer, trickle bytes forever,
redirect, answer too much); `only_if` limits that to requests with a given text in a prompt,
so other users' requests are answered normally meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from typing import Any

from aiohttp import web

ROLE_NAMES = ("output_message", "summary", "memory", "eyes_mouth_pose")
TRICKLE_INTERVAL_S = 0.05  # a byte this often: no read ever waits long, the body never ends
OVERSIZE_CHUNK_BYTES = 64 * 1024


class Mode(Enum):
    NORMAL = "normal"
    SILENT = "silent"  # reads the request, never answers
    TRICKLE = "trickle"  # 200 and a JSON body that never ends, one byte at a time
    REDIRECT = "redirect"  # `redirect_status` to `redirect_to`
    OVERSIZED = "oversized"  # a valid answer preceded by `oversize_bytes` of whitespace
    OVER_BUDGET = "over_budget"  # each text three times `max_tokens` characters long


class CompletionsServer:
    def __init__(self, roles: Any) -> None:
        self.roles = roles
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer this many requests with HTTP 500
        self.mode = Mode.NORMAL
        self.only_if: str | None = None  # misbehave only when a prompt contains this
        self.redirect_to = ""
        self.redirect_status = 307
        self.oversize_bytes = 0
        self.misbehaving = asyncio.Event()  # set when a request meets the mode
        self.headers: list[dict[str, str]] = []  # of every request, whatever its path
        self.peers: list[Any] = []  # the client's (host, port) of each request
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_route("*", "/{tail:.*}", self._elsewhere)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _elsewhere(self, request: web.Request) -> web.Response:
        """Any other path (e.g. where a followed redirect would land): recorded, 404."""
        self.headers.append(dict(request.headers))
        return web.json_response({"error": {"message": "no such path"}}, status=404)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        if self.mode is not Mode.NORMAL and (
            self.only_if is None or any(self.only_if in p for p in prompts)
        ):
            self.misbehaving.set()
            return await self._misbehave(request, body)
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": {"message": "engine dead"}}, status=500)
        if body.get("model") not in ROLE_NAMES:
            return web.json_response({"error": {"message": "unknown model"}}, status=404)
        [marker] = body["stop"]
        generated = await asyncio.to_thread(
            self.roles.generate,
            body["model"],
            prompts,
            temperature=float(body["temperature"]),
            max_new_tokens=int(body["max_tokens"]),
            seed=body.get("seed"),
        )
        choices = []
        for i, g in enumerate(generated):
            text = g.text
            if g.hit_end and not body.get("include_stop_str_in_output"):
                text = text[: -len(marker)]
            choices.append(
                {
                    "index": i,
                    "text": text,
                    "finish_reason": "stop" if g.hit_end else "length",
                    "stop_reason": marker if g.hit_end else None,
                }
            )
        return web.Response(
            body=json.dumps(
                {
                    "id": "cmpl-test",
                    "object": "text_completion",
                    "model": body["model"],
                    "choices": choices,
                }
            ).encode(),
            content_type="application/json",
        )

    async def _misbehave(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if self.mode is Mode.SILENT:
            await self._stopping.wait()
            return web.Response(status=503)
        if self.mode is Mode.REDIRECT:
            return web.Response(status=self.redirect_status, headers={"Location": self.redirect_to})
        if self.mode is Mode.OVER_BUDGET:
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            text = "가" * (3 * int(body["max_tokens"]))
            return web.json_response(
                {
                    "choices": [
                        {"index": i, "text": text, "finish_reason": "length", "stop_reason": None}
                        for i in range(len(prompts))
                    ]
                }
            )
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            if self.mode is Mode.OVERSIZED:
                sent = 0
                while sent < self.oversize_bytes:
                    await response.write(b" " * OVERSIZE_CHUNK_BYTES)
                    sent += OVERSIZE_CHUNK_BYTES
                await response.write(json.dumps({"choices": []}).encode())
                await response.write_eof()
                return response
            await response.write(b"{")
            while not self._stopping.is_set():  # TRICKLE: the object never closes
                await response.write(b" ")
                await asyncio.sleep(TRICKLE_INTERVAL_S)
        except (ConnectionError, RuntimeError):  # the client gave up
            pass
        return response
