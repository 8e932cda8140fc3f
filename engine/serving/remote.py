"""Generation on an OpenAI-compatible completions server (vLLM with one LoRA module per role).

`CompletionsGenerator` is a drop-in for `engine.runtime.lm.RoleModels` behind the role procedures:
same prompts, end markers, token budgets, temperatures and retries; only the forward passes
move to the server. The S-BERT models and the tokenizers (for the 48-token guard and the
reply's total-length budget) stay in this process. Calls are blocking HTTP and run on the
model worker's thread, like local generation; a batch is sent as concurrent requests grouped
by token budget, so the server's continuous batching sees all rows at once.

A server that hangs must not hold the model worker (and every user behind it): each call has
an overall deadline (connect, wait and the whole body, not a per-read timeout a trickling
server never trips), a size cap on the answer, and a circuit breaker per server that fails
calls at once while the server is down. Redirects are never followed (they would carry the
API key elsewhere), and error messages, which end up in `turns.error`, name the server
without its credentials or query.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from transformers import PreTrainedTokenizerBase

from engine.runtime.lm import Generated, MissingBaseModel, load_tokenizer, resolve_base
from engine.runtime.presets import ROLES, Preset, Role
from engine.serving.breaker import (
    DEFAULT_BREAKER_COOLDOWN_S,
    DEFAULT_BREAKER_FAILURES,
    BackendUnavailable,
    CircuitBreaker,
)

log = logging.getLogger(__name__)
# httpx logs every request's full URL, user, password and query included, at INFO (httpcore
# more at DEBUG): the service logs at INFO, so keep theirs to warnings.
for _chatty in ("httpx", "httpcore"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

COMPLETIONS_PATH = "/completions"
TOP_K = 50  # as local sampling (vLLM accepts top_k; OpenAI ignores what it does not know)
MAX_PARALLEL_REQUESTS = 16
DEFAULT_TIMEOUT_S = 60.0  # a request's overall deadline: connecting, waiting, the whole body
CONNECT_TIMEOUT_S = 10.0  # of that deadline, the most a connection may take
# A connection that fails to open (refused, reset while connecting) is tried this many more
# times: nothing was sent yet, so a retry cannot run a generation twice. Failures after the
# request went out are never retried (the breaker and the batcher decide what happens next).
CONNECT_RETRIES = 2
# 16 rows of at most 128 tokens are a few KB of JSON; anything near this is not an answer.
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_ERROR_DETAIL_CHARS = 200  # of a server's error message, kept in the exception
LOOPBACK_NAMES = frozenset({"localhost"})


class RemoteGenerationError(BackendUnavailable):
    """The completions server failed or answered something unusable."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # e.g. http://gpu-node:8000/v1
    model: str  # the LoRA module name the server knows this role by


def redacted_url(url: str) -> str:
    """``url`` as it may be logged or stored: no user, password, query or fragment."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_in_clear(urls: list[str]) -> list[str]:
    """The servers (redacted) an API key would reach over plain http:// off this machine."""
    return sorted(
        {redacted_url(u) for u in urls if urlsplit(u).scheme == "http" and not is_loopback(u)}
    )


def completions_url(base_url: str) -> httpx.URL:
    """The completions endpoint under ``base_url`` (its query, if any, kept)."""
    url = httpx.URL(base_url)
    return url.copy_with(path=url.path.rstrip("/") + COMPLETIONS_PATH)


class CompletionsGenerator:
    """`generate(role, prompts, ...)` over HTTP; `count_tokens` locally.

    One HTTP client (its connections reused) and one thread pool for the concurrent requests
    of a batch, both closed by `close`.
    """

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        tokenizers: Mapping[str, PreTrainedTokenizerBase],
        end_markers: Mapping[str, str],
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        breaker_failures: int = DEFAULT_BREAKER_FAILURES,
        breaker_cooldown_s: float = DEFAULT_BREAKER_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.tokenizers = dict(tokenizers)
        self.end_markers = dict(end_markers)
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self._urls = {role: completions_url(e.base_url) for role, e in self.endpoints.items()}
        # One breaker per server: the Polyglot server down leaves the Kanana roles served.
        self.breakers = {
            url: CircuitBreaker(
                f"completions server {redacted_url(url)}",
                failures=breaker_failures,
                cooldown_s=breaker_cooldown_s,
                clock=clock,
            )
            for url in sorted({e.base_url for e in self.endpoints.values()})
        }
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            follow_redirects=False,  # a redirect would take the Authorization header along
            # Kept-alive connections, reused by every call (the limits go on the transport).
            transport=httpx.HTTPTransport(
                retries=CONNECT_RETRIES,
                limits=httpx.Limits(
                    max_connections=MAX_PARALLEL_REQUESTS,
                    max_keepalive_connections=MAX_PARALLEL_REQUESTS,
                ),
            ),
        )
        self._pool = ThreadPoolExecutor(MAX_PARALLEL_REQUESTS, thread_name_prefix="ohlora-remote")
        if api_key:
            exposed = key_in_clear([e.base_url for e in self.endpoints.values()])
            if exposed:
                log.warning(
                    "the completions API key goes over plain http:// to %s, readable "
                    "on the way: use https:// (or a server on this machine)",
                    ", ".join(exposed),
                )

    @classmethod
    def from_preset(
        cls,
        preset: Preset,
        base_urls: Mapping[str, str],
        *,
        model_prefix: str = "",
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        breaker_failures: int = DEFAULT_BREAKER_FAILURES,
        breaker_cooldown_s: float = DEFAULT_BREAKER_COOLDOWN_S,
    ) -> CompletionsGenerator:
        """One endpoint per role (`base_urls` maps a base name, kanana/polyglot, to its server)."""
        endpoints: dict[str, Endpoint] = {}
        tokenizers: dict[str, PreTrainedTokenizerBase] = {}
        markers: dict[str, str] = {}
        for role in ROLES:
            spec = preset.roles[role]
            endpoints[role] = Endpoint(base_urls[spec.base].rstrip("/"), model_prefix + role)
            markers[role] = spec.end
            adapter = preset.adapter_dir(role)
            locations: list[str | Path] = (
                [adapter] if (adapter / "tokenizer_config.json").is_file() else []
            )
            try:
                locations.append(resolve_base(preset.base_for(role), f"{spec.base}_base"))
            except MissingBaseModel:
                if not locations:
                    raise
            tokenizers[role] = load_tokenizer(*locations)
        return cls(
            endpoints,
            tokenizers,
            markers,
            api_key=api_key,
            timeout_s=timeout_s,
            breaker_failures=breaker_failures,
            breaker_cooldown_s=breaker_cooldown_s,
        )

    def close(self) -> None:
        """Drop queued requests and the connections (one still reading ends by its deadline)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizers[Role.REPLY](text)["input_ids"])

    def generate(
        self,
        role: str,
        prompts: list[str],
        *,
        temperature: float,
        max_new_tokens: int | None = None,
        max_length: int | None = None,
        seed: int | None = None,
        prefixes: list[tuple[int, ...]] | None = None,
        caches: list[object] | None = None,
        max_steps: int | None = None,
    ) -> list[Generated]:
        """Every row to its end; ``max_steps`` is ignored (the server batches continuously
        itself), so no row comes back unfinished and ``prefixes`` (and ``caches``) stay empty.

        Raises `RemoteGenerationError` when any request fails or misses the deadline, and
        `engine.serving.breaker.CircuitOpen` (sending nothing) while the server's breaker is open."""
        if max_new_tokens is None and max_length is None:
            raise ValueError("give max_new_tokens and/or max_length")
        if prefixes and any(prefixes):
            raise ValueError("the completions backend never leaves a row unfinished")
        tokenizer = self.tokenizers[role]
        budgets: list[int] = []
        for prompt in prompts:
            budget = max_new_tokens
            if max_length is not None:
                left = max_length - len(tokenizer(prompt)["input_ids"])
                budget = left if budget is None else min(budget, left)
            assert budget is not None  # one of the two was given
            budgets.append(budget)
        groups: dict[int, list[int]] = {}
        for i, budget in enumerate(budgets):
            if budget > 0:
                groups.setdefault(budget, []).append(i)
        results = [Generated("", 0, False)] * len(prompts)
        if not groups:
            return results
        breaker = self.breakers[self.endpoints[role].base_url]
        breaker.before()
        try:
            answers = self._send_all(role, groups, prompts, temperature, seed)
        except Exception:  # a failed probe must reopen the breaker, whatever it raised
            breaker.failed()
            raise
        breaker.succeeded()
        for rows, generated in answers:
            for i, g in zip(rows, generated):
                results[i] = g
        return results

    def _send_all(
        self,
        role: str,
        groups: dict[int, list[int]],
        prompts: list[str],
        temperature: float,
        seed: int | None,
    ) -> list[tuple[list[int], list[Generated]]]:
        """The groups' requests at once, waited for no longer than the deadline: a request
        still reading then is abandoned (it ends by its own deadline on its pool thread)."""
        deadline = time.monotonic() + self.timeout_s
        futures: dict[Future[list[Generated]], list[int]] = {
            self._pool.submit(
                self._request, role, [prompts[i] for i in rows], budget, temperature, seed, deadline
            ): rows
            for budget, rows in groups.items()
        }
        done, pending = wait(futures, timeout=self.timeout_s, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        if pending:
            raise RemoteGenerationError(
                f"{self._where(role)}: no complete answer within {self.timeout_s:g} s"
            )
        return [(futures[f], f.result()) for f in futures]

    def _where(self, role: str) -> str:
        return f"completions server {redacted_url(self.endpoints[role].base_url)}"

    def _request(
        self,
        role: str,
        prompts: list[str],
        max_tokens: int,
        temperature: float,
        seed: int | None,
        deadline: float,
    ) -> list[Generated]:
        endpoint = self.endpoints[role]
        marker = self.end_markers[role]
        body: dict[str, object] = {
            "model": endpoint.model,
            "prompt": prompts,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": 1.0,
            "stop": [marker],
            "include_stop_str_in_output": True,
            "skip_special_tokens": True,
        }
        if temperature > 0:
            body["top_k"] = TOP_K
        if seed is not None:
            body["seed"] = seed
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:  # queued behind other requests past the deadline
            raise RemoteGenerationError(f"{self._where(role)}: no time left to send the request")
        timeout = httpx.Timeout(remaining, connect=min(remaining, CONNECT_TIMEOUT_S))
        try:
            with self._client.stream(
                "POST",
                self._urls[role],
                content=json.dumps(body).encode(),
                headers=headers,
                timeout=timeout,
            ) as response:
                raw = self._read(role, response, deadline)
        except httpx.TimeoutException as exc:  # the deadline, as the waiting caller says it
            raise RemoteGenerationError(
                f"{self._where(role)}: no complete answer within {self.timeout_s:g} s"
            ) from exc
        except httpx.HTTPError as exc:  # refused, reset, protocol errors
            raise RemoteGenerationError(f"{self._where(role)}: {type(exc).__name__}") from exc
        try:
            payload = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise RemoteGenerationError(f"{self._where(role)}: the answer is not JSON") from exc
        if not isinstance(payload, dict):
            raise RemoteGenerationError(f"{self._where(role)}: the answer is not a JSON object")
        choices = sorted(
            (c for c in payload.get("choices") or [] if isinstance(c, dict)),
            key=lambda c: c.get("index", 0),
        )
        if len(choices) != len(prompts):
            raise RemoteGenerationError(
                f"{self._where(role)} returned {len(choices)} choices for {len(prompts)} prompts"
            )
        return [self._generated(role, choice, marker, max_tokens) for choice in choices]

    def _read(self, role: str, response: httpx.Response, deadline: float) -> bytes:
        """The whole body, within the deadline and the size cap; an HTTP error raises."""
        status = response.status_code
        if response.is_redirect or 300 <= status < 400:
            raise RemoteGenerationError(
                f"{self._where(role)}: HTTP {status} redirect, not followed (point the base URL "
                f"at the server itself)"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise RemoteGenerationError(
                f"{self._where(role)}: an answer of {declared} bytes (the limit is "
                f"{self.max_response_bytes})"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise RemoteGenerationError(
                    f"{self._where(role)}: an answer over {self.max_response_bytes} bytes"
                )
            if time.monotonic() > deadline:
                raise RemoteGenerationError(
                    f"{self._where(role)}: no complete answer within {self.timeout_s:g} s"
                )
            chunks.append(chunk)
        raw = b"".join(chunks)
        if status >= 400:
            raise RemoteGenerationError(f"{self._where(role)}: HTTP {status}{_detail(raw)}")
        return raw

    def _generated(
        self, role: str, choice: Mapping[str, object], marker: str, max_tokens: int
    ) -> Generated:
        """One choice as the local models would give it; never more than ``max_tokens``
        tokens, whatever the server sent (its text re-enters prompts and reaches users)."""
        text = str(choice.get("text") or "")
        finish = choice.get("finish_reason")
        # vLLM names the stop string it matched; a plain OpenAI server says only "stop".
        matched = choice.get("stop_reason", marker if finish == "stop" else None) == marker
        cut = text.find(marker)
        if cut >= 0:
            text = text[: cut + len(marker)]
        elif matched:
            text += marker  # the server left the stop string out
        hit = cut >= 0 or matched
        tokenizer = self.tokenizers[role]
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        eos = int(finish == "stop" and not hit)  # it stopped on the end-of-text token
        if len(ids) > max_tokens:  # the server went past the budget it was given
            log.warning(
                "%s sent %d tokens for a budget of %d; cut", self._where(role), len(ids), max_tokens
            )
            text = str(tokenizer.decode(ids[:max_tokens], skip_special_tokens=True))
            return Generated(text=text, new_tokens=max_tokens, hit_end=False)
        return Generated(text=text, new_tokens=min(len(ids) + eos, max_tokens), hit_end=hit)


def _detail(raw: bytes) -> str:
    """A server's error message, short (``: message``), or nothing."""
    try:
        payload = json.loads(raw.decode("utf-8"))
        error = payload.get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError, KeyError, TypeError):
        return ""
    return f": {str(message)[:MAX_ERROR_DETAIL_CHARS]}" if message else ""
