"""A local server speaking the OpenAI completions API, generating with the real tiny models.

It plays vLLM serving one LoRA module per role (`model` = the role name): the request's
prompts, `max_tokens`, `temperature`, `stop`, `seed` and `include_stop_str_in_output` are
honoured by `RoleModels.generate`, and every request is kept for shape checks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

ROLE_NAMES = ("output_message", "summary", "memory", "eyes_mouth_pose")


class CompletionsServer:
    def __init__(self, roles: Any) -> None:
        self.roles = roles
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer this many requests with HTTP 500
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": {"message": "engine dead"}}, status=500)
        if body.get("model") not in ROLE_NAMES:
            return web.json_response({"error": {"message": "unknown model"}}, status=404)
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        [marker] = body["stop"]
        generated = await asyncio.to_thread(
            self.roles.generate, body["model"], prompts, temperature=float(body["temperature"]),
            max_new_tokens=int(body["max_tokens"]), seed=body.get("seed"))
        choices = []
        for i, g in enumerate(generated):
            text = g.text
            if g.hit_end and not body.get("include_stop_str_in_output"):
                text = text[: -len(marker)]
            choices.append({"index": i, "text": text,
                            "finish_reason": "stop" if g.hit_end else "length",
                            "stop_reason": marker if g.hit_end else None})
        return web.Response(body=json.dumps({"id": "cmpl-test", "object": "text_completion",
                                             "model": body["model"], "choices": choices}).encode(),
                            content_type="application/json")
