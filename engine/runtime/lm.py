"""The four LoRA roles on their two bases, with batched generation (reference §1, §2.3, §2.4).

Each base is loaded once and carries its two role adapters, as named peft adapters or (the
default) folded into one weight copy per role (`engine.runtime.merged`); each row of a batch goes
through its own role's weights. Prompts are left-padded into one batch; every row stops on
its own at the role's end marker (found by decoding, not by hard-coded ids), at EOS, or at its
own token budget, so batched and one-by-one generation agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from engine.runtime.merged import RoleRows, merge_roles
from engine.runtime.presets import ROLES, Base, Preset, Role

TOP_K = 50  # transformers' historical sampling default, which upstream relied on (top_p 1.0)
GREEDY_TEMPERATURE = 1e-4  # a greedy row in a sampled batch: softmax this sharp picks the best
BYTE_TOKEN = "<0x{:02X}>"  # the spelling a BPE byte fallback looks up (our tiny tokenizer)
BYTE_COUNT = 256
# A forward pass costs about as much as this many prompt tokens (tiny preset, one CPU core:
# ~5 ms fixed, ~0.15 ms a token), so prefill groups split where padding would cost more.
PREFILL_SPLIT_TOKENS = 32
# Extra tokens decoded beyond the marker length when looking for it in a row's tail.
TAIL_SLACK_TOKENS = 2
_PATH_PREFIXES = ("/", ".", "~")
# A loaded base: a peft `PeftModel` (adapters switched per call) or, merged, the transformers
# model with `RoleLinear` layers. Neither library types the calls made on it (`generate`,
# `set_adapter`, `load_adapter` come back as Tensor | Module), hence Any.
Base_LM = Any


class MissingBaseModel(RuntimeError):
    """A base model is neither a local directory nor in the local Hugging Face cache."""


class MissingAdapter(RuntimeError):
    """A role adapter has not been trained (or was deleted)."""


@dataclass(frozen=True)
class Generated:
    """One generated continuation: text after the prompt, tokens generated, end marker seen.

    A row cut off by ``max_steps`` is not ``finished``: its ``ids`` (all tokens generated so
    far) are passed back as its prefix to continue it in a later batch.
    """

    text: str
    new_tokens: int
    hit_end: bool
    ids: tuple[int, ...] = ()
    finished: bool = True
    # An unfinished row's attention keys/values (`RowCache`), so continuing it needs no prefill.
    cache: RowCache | None = field(default=None, compare=False, repr=False)


# Per layer (keys, values), each [heads, tokens, head_dim]: the cache of a row's tokens but the
# last one, which is fed when the row continues.
RowCache = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_dtype() -> torch.dtype:
    """bf16 on a GPU that supports it (as upstream), float32 on CPU (bf16 matmuls are slow there)."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def never_download() -> None:
    """Put the Hugging Face hub client offline in this process and the model children it
    spawns. Loads pass ``local_files_only`` already, but the client still calls the hub for
    a cached file (an "agent registry" fetched while building request headers) unless offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True


def resolve_base(name: str, field: str) -> str:
    """A loadable base location, or MissingBaseModel with one line saying what to do.

    ``field`` is the preset field (kanana_base / polyglot_base) the user should point at a
    local copy; a hub id is accepted only when it is in the local Hugging Face cache: the
    service never downloads a model (every load passes ``local_files_only``), whatever
    HF_HUB_OFFLINE says, so what it runs is what the operator put on the machine.
    """
    never_download()
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MissingBaseModel(
                f"{path} has no config.json; rebuild it or point {field} elsewhere"
            )
        return str(path)
    if name.startswith(_PATH_PREFIXES) or name.count("/") != 1:
        raise MissingBaseModel(
            f"base model directory {name} does not exist; build it (python -m training bootstrap) "
            f"or point {field} at an existing one"
        )
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return name
    raise MissingBaseModel(
        f"base model {name} is not in the local Hugging Face cache (the service never downloads "
        f"models): run `hf download {name} --local-dir DIR` and point {field} at DIR "
        f"(engine.runtime.presets.with_bases(preset, {field}=DIR)) or set HF_HOME to a cache holding it"
    )


def load_base(name: str, field: str) -> PreTrainedModel:
    """The base in the serving dtype on the serving device; unreadable files become MissingBaseModel."""
    location = resolve_base(name, field)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=model_dtype(), local_files_only=True
        )
    except OSError as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        fix = (
            "rebuild it (python -m training bootstrap --force)"
            if Path(location).is_dir()
            else f"download it and point {field} at the local copy"
        )
        raise MissingBaseModel(f"could not load base model {name} ({first_line}); {fix}") from error
    # transformers types `PreTrainedModel.to` through a decorator that mypy misreads.
    moved: PreTrainedModel = cast(Any, model).to(device())
    return moved


def load_tokenizer(*locations: str | Path) -> PreTrainedTokenizerBase:
    """The first tokenizer found among ``locations`` (adapter folder first, then base)."""
    never_download()
    for location in locations:
        if Path(location).is_dir() and not (Path(location) / "tokenizer_config.json").is_file():
            continue
        tokenizer = AutoTokenizer.from_pretrained(str(location), local_files_only=True)
        if tokenizer.pad_token is None:  # Kanana: pad = EOS, as upstream
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer
    raise MissingBaseModel(f"no tokenizer in {', '.join(map(str, locations))}")


def byte_fallback_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of ``<0xNN>`` byte-fallback tokens (none for byte-level BPE production tokenizers)."""
    vocab = tokenizer.get_vocab()
    return sorted(vocab[t] for t in (BYTE_TOKEN.format(b) for b in range(BYTE_COUNT)) if t in vocab)


def suppressed_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids never to generate: byte-fallback pieces (half a syllable), BOS, pad, unknown.

    EOS stays allowed: it ends a row like the end marker does.
    """
    ids = set(byte_fallback_ids(tokenizer))
    for token_id in (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id):
        if token_id is not None and token_id != tokenizer.eos_token_id:
            ids.add(token_id)
    return sorted(ids)


class TopKSampler(LogitsProcessor):
    """Temperature + top-k sampling inside the logits pipeline; `generate` then runs greedy.

    It draws each row's next token from the softmax of its k best scores at the temperature —
    the distribution transformers' sampler draws from with the same temperature and top_k —
    and leaves only that token finite. `torch.multinomial` over the whole vocabulary takes a
    quarter of a batched decoding step on CPU; over k entries it costs nothing.
    """

    def __init__(self, temperature: float | list[float], top_k: int) -> None:
        temperatures = [temperature] if isinstance(temperature, (int, float)) else list(temperature)
        if min(temperatures) <= 0:
            raise ValueError("temperature must be positive; use greedy decoding for 0")
        # One temperature for every row, or one per row (a batch mixing roles).
        self.temperature = (
            temperatures[0]
            if isinstance(temperature, (int, float))
            else torch.tensor(temperatures).unsqueeze(-1)
        )
        self.top_k = top_k

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        values, indices = torch.topk(scores, min(self.top_k, scores.shape[-1]), dim=-1)
        temperature = self.temperature
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.to(values.device)
        probs = torch.softmax(values.float() / temperature, dim=-1)
        chosen = indices.gather(-1, torch.multinomial(probs, num_samples=1))
        picked = torch.full_like(scores, float("-inf"))
        return cast(torch.FloatTensor, picked.scatter_(-1, chosen, 0.0))


class EndMarkerCriteria(StoppingCriteria):
    """Per-row stop: the decoded tail of the row's generated tokens (its carried-over prefix
    included) contains the row's end marker, or the row used its own budget. Returns one flag
    per row so finished rows stop independently."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        markers: list[str],
        prompt_width: int,
        limits: torch.Tensor,
        prefix_lengths: list[int],
    ) -> None:
        self.tokenizer = tokenizer
        self.markers = markers
        self.prompt_width = prompt_width  # prompt + prefix, left-padded
        self.limits = limits
        self.prefix_lengths = prefix_lengths
        # Every allowed token decodes to >= 1 character, so this many tokens cover the marker.
        self.tail = max(len(marker) for marker in markers) + TAIL_SLACK_TOKENS

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None = None, **kwargs: object
    ) -> torch.BoolTensor:
        new_len = input_ids.shape[1] - self.prompt_width
        rows = input_ids[:, -min(self.tail, new_len + max(self.prefix_lengths)) :].tolist()
        tails = self.tokenizer.batch_decode(
            [
                row[-min(self.tail, new_len + prefix) :]
                for row, prefix in zip(rows, self.prefix_lengths)
            ],
            skip_special_tokens=True,
        )
        hit = torch.tensor(
            [marker in tail for marker, tail in zip(self.markers, tails)], device=input_ids.device
        )
        return cast(torch.BoolTensor, hit | (self.limits.to(input_ids.device) <= new_len))


@dataclass(frozen=True)
class Request:
    """One row of a generation call: its role (adapter), prompt, sampling and budgets, and,
    for a row being continued, the tokens it already generated and their cache."""

    role: str
    prompt: str
    temperature: float
    max_new_tokens: int | None = None
    max_length: int | None = None  # total: prompt + new tokens
    prefix: tuple[int, ...] = ()
    cache: RowCache | None = field(default=None, compare=False, repr=False)

    def limit(self, prompt_tokens: int) -> int:
        """New tokens this row may still generate."""
        if self.max_new_tokens is None and self.max_length is None:
            raise ValueError("give max_new_tokens and/or max_length")
        unbounded = torch.iinfo(torch.int32).max
        return min(
            self.max_new_tokens if self.max_new_tokens is not None else unbounded,
            self.max_length - prompt_tokens if self.max_length is not None else unbounded,
        ) - len(self.prefix)


def _left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows left-padded to the longest, and their attention mask."""
    width = max(len(row) for row in rows)
    return (
        torch.tensor([[pad] * (width - len(row)) + row for row in rows]),
        torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows]),
    )


def prefill_groups(roles: list[str], lengths: list[int]) -> list[list[int]]:
    """Rows (indices) to prefill together: one role per group, similar lengths. A padded
    token costs as much as a real one, so a row starts a new group where joining the last
    one would add more padding than a forward pass of its own costs."""
    groups: list[list[int]] = []
    for role in dict.fromkeys(roles):
        group: list[int] = []
        for i in sorted((i for i, r in enumerate(roles) if r == role), key=lengths.__getitem__):
            if group and len(group) * (lengths[i] - lengths[group[-1]]) > PREFILL_SPLIT_TOKENS:
                groups.append(group)
                group = []
            group.append(i)
        groups.append(group)
    return groups


class RoleModels:
    """Loaded bases with their role adapters; `generate` runs one role on a batch of prompts."""

    def __init__(
        self,
        preset: Preset,
        models: dict[Base, Base_LM],
        tokenizers: dict[str, PreTrainedTokenizerBase],
        role_rows: dict[Base, RoleRows] | None = None,
    ) -> None:
        self.preset = preset
        # peft models, or merged ones (`engine.runtime.merged`) for the bases in role_rows
        self.models = models
        self.tokenizers = tokenizers
        self.role_rows = role_rows or {}
        self._suppressed = {role: suppressed_token_ids(tok) for role, tok in tokenizers.items()}

    @classmethod
    def from_preset(
        cls, preset: Preset, roles: tuple[str, ...] = ROLES, *, merge: bool = True
    ) -> RoleModels:
        """Load each needed base once and attach its roles' adapters under the role names;
        ``merge`` then folds them into per-role weights (`engine.runtime.merged`; faster, and one
        more copy of the adapted weights per role)."""
        from peft import PeftModel

        models: dict[Base, Base_LM] = {}
        tokenizers: dict[str, PreTrainedTokenizerBase] = {}
        for role in roles:
            spec = preset.roles[role]
            adapter = preset.adapter_dir(role)
            if not (adapter / "adapter_config.json").is_file():
                raise MissingAdapter(
                    f"no adapter for role {role} in {adapter}; train it first "
                    f"(python -m training bootstrap / finetune)"
                )
            if spec.base not in models:
                base = load_base(preset.base_for(role), f"{spec.base}_base")
                models[spec.base] = PeftModel.from_pretrained(
                    base, str(adapter), adapter_name=role, local_files_only=True
                )
            else:
                models[spec.base].load_adapter(
                    str(adapter), adapter_name=role, local_files_only=True
                )
            tokenizers[role] = load_tokenizer(
                adapter, resolve_base(preset.base_for(role), f"{spec.base}_base")
            )
        role_rows: dict[Base, RoleRows] = {}
        for base_name, model in list(models.items()):
            if merge:
                on_base = tuple(r for r in roles if preset.roles[r].base == base_name)
                models[base_name], role_rows[base_name] = merge_roles(model, on_base)
            models[base_name].eval()
        return cls(preset, models, tokenizers, role_rows)

    def _route(self, base: Base, roles: list[str]) -> dict[str, list[str]]:
        """Point each row of the next forward passes at its role's weights; the keyword
        arguments those passes need (peft's per-row ``adapter_names`` for several roles)."""
        if base in self.role_rows:
            self.role_rows[base].route(roles)
            return {}
        self.models[base].set_adapter(roles[0])
        return {} if len(set(roles)) == 1 else {"adapter_names": roles}

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the reply tokenizer, special tokens included (48-token guard)."""
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
        caches: list[RowCache | None] | None = None,
        max_steps: int | None = None,
    ) -> list[Generated]:
        """Continue each prompt with ``role``'s adapter; sampling if temperature > 0, else greedy.

        ``max_length`` is a per-row *total* budget (prompt + new tokens, as upstream's reply
        budget of 128), independent of the batch's padding; ``max_new_tokens`` caps new tokens.
        ``prefixes`` are tokens a row already generated (an unfinished row continued; they
        count against its budgets), and ``max_steps`` bounds this call's decoding steps: a row
        still going then comes back unfinished, so a long row does not hold a whole batch;
        it carries its cache, which ``caches`` gives back when it continues.
        """
        if max_new_tokens is None and max_length is None:
            raise ValueError("give max_new_tokens and/or max_length")
        prefixes = prefixes or [()] * len(prompts)
        caches = caches or [None] * len(prompts)
        if not len(prefixes) == len(caches) == len(prompts):
            raise ValueError("one prefix and one cache per prompt")
        return self.generate_rows(
            [
                Request(role, prompt, temperature, max_new_tokens, max_length, tuple(prefix), cache)
                for prompt, prefix, cache in zip(prompts, prefixes, caches)
            ],
            seed=seed,
            max_steps=max_steps,
        )

    @torch.inference_mode()
    def generate_rows(
        self, requests: list[Request], *, seed: int | None = None, max_steps: int | None = None
    ) -> list[Generated]:
        """`generate` with every row its own role, sampling and budget. Rows of different
        roles on one base run as one batch, each through its own adapter (peft's per-row
        adapter selection); see `generate` for the rest."""
        if not requests:
            return []
        roles = [r.role for r in requests]
        bases = {self.preset.roles[role].base for role in roles}
        if len(bases) != 1:
            raise ValueError(f"one batch runs on one base, not {sorted(bases)}")
        base = bases.pop()
        tokenizer = self.tokenizers[roles[0]]
        markers = [self.preset.roles[role].end for role in roles]
        prompt_ids = tokenizer([r.prompt for r in requests])["input_ids"]
        prefixes = [list(r.prefix) for r in requests]
        limits = [r.limit(len(ids)) for r, ids in zip(requests, prompt_ids)]
        results: list[Generated | None] = [
            None if limit > 0 else self._finish(tokenizer, marker, prefix, [], 0)
            for limit, prefix, marker in zip(limits, prefixes, markers)
        ]
        # Rows grouped by role (stable), so each role's rows are one slice of the batch.
        active = sorted(
            (i for i, result in enumerate(results) if result is None), key=roles.__getitem__
        )
        if not active:
            return [r for r in results if r is not None]

        rows = [list(prompt_ids[i]) + prefixes[i] for i in active]
        pad = tokenizer.pad_token_id
        input_ids, attention = _left_padded(rows, pad)
        width = input_ids.shape[1]
        row_limits = torch.tensor([limits[i] for i in active])
        steps = (
            int(row_limits.max()) if max_steps is None else min(int(row_limits.max()), max_steps)
        )
        temperatures = [requests[i].temperature for i in active]
        sampler: list[LogitsProcessor] = []
        if max(temperatures) > 0:
            # Greedy rows beside sampled ones (never the case in serving) sample near-greedily.
            sampler = [
                TopKSampler(
                    temperatures[0]
                    if len(set(temperatures)) == 1
                    else [max(t, GREEDY_TEMPERATURE) for t in temperatures],
                    TOP_K,
                )
            ]
        config = GenerationConfig(
            max_new_tokens=steps,
            do_sample=False,  # sampling, when asked for, is the TopKSampler's (top_p stays 1.0)
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
            suppress_tokens=self._suppressed[roles[0]] or None,
            return_dict_in_generate=True,
        )
        if seed is not None:
            torch.manual_seed(seed)
        active_roles = [roles[i] for i in active]
        model = self.models[base]
        target = next(model.parameters()).device
        route = partial(self._route, base)
        # Rows are prefilled here, in groups of one role and similar length (less padding than
        # one batch); chunked calls also keep each unfinished row's cache, so a continued row
        # is not prefilled again.
        own_prefill = all(len(row) > 1 for row in rows)
        keep_caches = own_prefill and max_steps is not None
        cache = None
        if own_prefill:
            cache = self._batch_cache(
                model, rows, [requests[i].cache for i in active], target, active_roles, route
            )
        adapters = route(active_roles)
        stop = EndMarkerCriteria(
            tokenizer,
            [markers[i] for i in active],
            width,
            row_limits,
            [len(prefixes[i]) for i in active],
        )
        output = model.generate(
            input_ids=input_ids.to(target),
            attention_mask=attention.to(target),
            generation_config=config,
            cache=cache,
            logits_processor=LogitsProcessorList(sampler),
            stopping_criteria=StoppingCriteriaList([stop]),
            **adapters,
        )
        sequences = output.sequences
        final = output.cache if keep_caches else None
        if final is not None and final.get_seq_length() != sequences.shape[1] - 1:
            final = None  # not the layout expected: continued rows are prefilled again instead
        for b, (row, new_ids) in enumerate(zip(active, sequences[:, width:].tolist())):
            generated = self._finish(tokenizer, markers[row], prefixes[row], new_ids, limits[row])
            if not generated.finished and final is not None:
                start = width - len(rows[b])  # this row's left padding
                generated = replace(
                    generated,
                    cache=tuple(
                        (layer.keys[b, :, start:].clone(), layer.values[b, :, start:].clone())
                        for layer in final.layers
                    ),
                )
            results[row] = generated
        return [r for r in results if r is not None]

    @staticmethod
    def _batch_cache(
        model: torch.nn.Module,
        rows: list[list[int]],
        caches: list[RowCache | None],
        target: torch.device,
        roles: list[str],
        route: Callable[[list[str]], dict[str, list[str]]],
    ) -> DynamicCache:
        """One left-padded cache over every row's tokens but its last: kept rows' caches as
        they are, the other rows prefilled now (in `prefill_groups`)."""
        caches = [
            c if c is not None and c[0][0].shape[1] == len(row) - 1 else None
            for c, row in zip(caches, rows)
        ]
        fresh = [k for k, c in enumerate(caches) if c is None]
        for group in prefill_groups([roles[k] for k in fresh], [len(rows[k]) for k in fresh]):
            chosen = [fresh[g] for g in group]
            for k, c in zip(
                chosen,
                RoleModels._prefill(
                    model, [rows[k][:-1] for k in chosen], target, route([roles[k] for k in chosen])
                ),
            ):
                caches[k] = c
        longest = max(len(row) - 1 for row in rows)
        layers = []
        for layer in range(len(caches[0])):  # type: ignore[arg-type]
            keys, values = zip(
                *(
                    (
                        F.pad(c[layer][0], (0, 0, longest - c[layer][0].shape[1], 0)),
                        F.pad(c[layer][1], (0, 0, longest - c[layer][1].shape[1], 0)),
                    )
                    for c in caches
                    if c is not None
                )
            )
            layers.append((torch.stack(keys), torch.stack(values)))
        return DynamicCache(ddp_cache_data=layers)

    @staticmethod
    def _prefill(
        model: torch.nn.Module,
        rows: list[list[int]],
        target: torch.device,
        adapters: dict[str, list[str]],
    ) -> list[RowCache]:
        """Each row's cache from one left-padded forward pass (positions count real tokens only)."""
        ids, mask = (t.to(target) for t in _left_padded(rows, 0))
        width = ids.shape[1]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=DynamicCache(),
            use_cache=True,
            logits_to_keep=1,
            **adapters,
        )
        return [
            tuple(
                (
                    layer.keys[k, :, width - len(row) :].clone(),
                    layer.values[k, :, width - len(row) :].clone(),
                )
                for layer in out.cache.layers
            )
            for k, row in enumerate(rows)
        ]

    @staticmethod
    def _finish(
        tokenizer: PreTrainedTokenizerBase,
        marker: str,
        prefix: list[int],
        new_ids: list[int],
        limit: int,
    ) -> Generated:
        """Cut a row at its first EOS/pad (rows are padded after they stop) and after the marker.

        The row is unfinished when it stopped only because the call's steps ran out: no
        marker, no EOS, and budget left.
        """
        stops = {tokenizer.eos_token_id, tokenizer.pad_token_id}
        length = next((i for i, token in enumerate(new_ids) if token in stops), len(new_ids))
        ids = prefix + new_ids[:length]
        text = str(tokenizer.decode(ids, skip_special_tokens=True))
        cut = text.find(marker)
        if cut >= 0:
            text = text[: cut + len(marker)]
        # EOS counts as a generated token unless it is only the padding after a marker stop.
        ended_by_eos = (
            cut < 0 and length < len(new_ids) and new_ids[length] == tokenizer.eos_token_id
        )
        finished = cut >= 0 or length < len(new_ids) or length >= limit
        return Generated(
            text=text,
            new_tokens=len(ids) + int(ended_by_eos),
            hit_end=cut >= 0,
            ids=tuple(ids),
            finished=finished,
        )
