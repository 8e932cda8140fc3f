"""Generation on an OpenAI-compatible completions server (vLLM with one LoRA module per role).

`CompletionsGenerator` is a drop-in for `engine.lm.RoleModels` behind the role procedures:
same prompts, end markers, token budgets, temperatures and retries; only the forward passes
move to the server. The S-BERT models and the tokenizers (for the 48-token guard and the
reply's total-length budget) stay in this process. Calls are blocking HTTP and run on the
model worker's thread, like local generation; a batch is sent as concurrent requests grouped
by token budget, so the server's continuous batching sees all rows at once.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from engine.lm import Generated, MissingBaseModel, load_tokenizer, resolve_base
from engine.presets import ROLES, Preset

log = logging.getLogger(__name__)

COMPLETIONS_PATH = "/completions"
TOP_K = 50  # as local sampling (vLLM accepts top_k; OpenAI ignores what it does not know)
MAX_PARALLEL_REQUESTS = 16
DEFAULT_TIMEOUT_S = 60.0


class RemoteGenerationError(RuntimeError):
    """The completions server failed or answered something unusable."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # e.g. http://gpu-node:8000/v1
    model: str  # the LoRA module name the server knows this role by


class CompletionsGenerator:
    """`generate(role, prompts, ...)` over HTTP; `count_tokens` locally."""

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        tokenizers: Mapping[str, PreTrainedTokenizerBase],
        end_markers: Mapping[str, str],
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.tokenizers = dict(tokenizers)
        self.end_markers = dict(end_markers)
        self.api_key = api_key
        self.timeout_s = timeout_s

    @classmethod
    def from_preset(cls, preset: Preset, base_urls: Mapping[str, str], *, model_prefix: str = "",
                    api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> CompletionsGenerator:
        """One endpoint per role (`base_urls` maps a base name, kanana/polyglot, to its server)."""
        endpoints, tokenizers, markers = {}, {}, {}
        for role in ROLES:
            spec = preset.roles[role]
            endpoints[role] = Endpoint(base_urls[spec.base].rstrip("/"), model_prefix + role)
            markers[role] = spec.end
            adapter = preset.adapter_dir(role)
            locations = [adapter] if (adapter / "tokenizer_config.json").is_file() else []
            try:
                locations.append(resolve_base(preset.base_for(role), f"{spec.base}_base"))
            except MissingBaseModel:
                if not locations:
                    raise
            tokenizers[role] = load_tokenizer(*locations)
        return cls(endpoints, tokenizers, markers, api_key=api_key, timeout_s=timeout_s)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizers["output_message"](text)["input_ids"])

    def generate(self, role: str, prompts: list[str], *, temperature: float,
                 max_new_tokens: int | None = None, max_length: int | None = None,
                 seed: int | None = None, prefixes: list[tuple[int, ...]] | None = None,
                 caches: list[object] | None = None,
                 max_steps: int | None = None) -> list[Generated]:
        """Every row to its end; ``max_steps`` is ignored (the server batches continuously
        itself), so no row comes back unfinished and ``prefixes`` (and ``caches``) stay empty."""
        if max_new_tokens is None and max_length is None:
            raise ValueError("give max_new_tokens and/or max_length")
        if prefixes and any(prefixes):
            raise ValueError("the completions backend never leaves a row unfinished")
        tokenizer = self.tokenizers[role]
        budgets = []
        for prompt in prompts:
            budget = max_new_tokens if max_new_tokens is not None else max_length
            if max_length is not None:
                budget = min(budget, max_length - len(tokenizer(prompt)["input_ids"]))
            budgets.append(budget)
        groups: dict[int, list[int]] = {}
        for i, budget in enumerate(budgets):
            if budget > 0:
                groups.setdefault(budget, []).append(i)
        results = [Generated("", 0, False)] * len(prompts)
        if not groups:
            return results
        with ThreadPoolExecutor(min(MAX_PARALLEL_REQUESTS, len(groups))) as pool:
            answers = pool.map(
                lambda item: (item[1], self._request(role, [prompts[i] for i in item[1]],
                                                     item[0], temperature, seed)),
                groups.items())
            for rows, generated in answers:
                for i, g in zip(rows, generated):
                    results[i] = g
        return results

    def _request(self, role: str, prompts: list[str], max_tokens: int, temperature: float,
                 seed: int | None) -> list[Generated]:
        endpoint = self.endpoints[role]
        marker = self.end_markers[role]
        body: dict[str, object] = {
            "model": endpoint.model, "prompt": prompts, "max_tokens": max_tokens,
            "temperature": temperature, "top_p": 1.0, "stop": [marker],
            "include_stop_str_in_output": True, "skip_special_tokens": True,
        }
        if temperature > 0:
            body["top_k"] = TOP_K
        if seed is not None:
            body["seed"] = seed
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(endpoint.base_url + COMPLETIONS_PATH,
                                         data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise RemoteGenerationError(f"completions server {endpoint.base_url}: {exc}") from exc
        choices = sorted(payload.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != len(prompts):
            raise RemoteGenerationError(
                f"completions server returned {len(choices)} choices for {len(prompts)} prompts")
        return [self._generated(role, choice, marker) for choice in choices]

    def _generated(self, role: str, choice: Mapping[str, object], marker: str) -> Generated:
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
        new_tokens = len(self.tokenizers[role](text, add_special_tokens=False)["input_ids"])
        return Generated(text=text, new_tokens=new_tokens + int(finish == "stop" and not hit),
                         hit_end=hit)
