"""Role adapters merged into one copy per role of the weights they adapt (mixed-role batches).

peft's per-row adapter selection (`adapter_names`) runs each LoRA layer as the base matmul
plus, per adapter, an indexed sub-batch through A and B: on the tiny Llama a 10-row
reply+summary batch then costs 1.8x a merged model's, and even one role's LoRA pass costs
1.3x a merged one at batch 1. Here every LoRA-wrapped linear becomes a `RoleLinear` that
holds W + scale * B @ A for each role (peft's own `get_delta_weight`, as `merge_and_unload`
computes it); a batch whose rows are grouped by role sends each group's slice through its
role's weight, one matmul per role. The price is one copy of the adapted weights per role.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn


class RoleRows:
    """Which role each row of the next forward passes belongs to, as contiguous slices.

    Shared by every `RoleLinear` of one base; set before each batch (`route`)."""

    def __init__(self) -> None:
        self.segments: tuple[tuple[str, int, int], ...] = ()

    def route(self, roles: Sequence[str]) -> None:
        """Rows ``i`` use ``roles[i]``; a role's rows must be adjacent (sort the batch first)."""
        segments: list[tuple[str, int, int]] = []
        for i, role in enumerate(roles):
            if segments and segments[-1][0] == role:
                segments[-1] = (role, segments[-1][1], i + 1)
            elif any(seen == role for seen, _, _ in segments):
                raise ValueError(f"rows of role {role} are not adjacent: {list(roles)}")
            else:
                segments.append((role, i, i + 1))
        if not segments:
            raise ValueError("no rows to route")
        self.segments = tuple(segments)


class RoleLinear(nn.Module):
    """A linear layer with one merged weight per role, chosen per row slice (`RoleRows`)."""

    def __init__(
        self, weights: dict[str, torch.Tensor], bias: torch.Tensor | None, rows: RoleRows
    ) -> None:
        super().__init__()
        self.weights = nn.ParameterDict(
            {role: nn.Parameter(weight, requires_grad=False) for role, weight in weights.items()}
        )
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        self.rows = rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        segments = self.rows.segments
        if len(segments) == 1:
            return F.linear(x, self.weights[segments[0][0]], self.bias)
        if x.shape[0] != segments[-1][2]:
            raise ValueError(f"routed {segments[-1][2]} rows, got a batch of {x.shape[0]}")
        return torch.cat(
            [F.linear(x[start:end], self.weights[role], self.bias) for role, start, end in segments]
        )


@torch.no_grad()
def merge_roles(model: Any, roles: Sequence[str]) -> tuple[nn.Module, RoleRows]:
    """The transformers model inside peft ``model`` with each LoRA linear replaced by a
    `RoleLinear` over ``roles`` (a role that does not adapt a layer shares its base weight)."""
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    rows = RoleRows()
    inner: nn.Module = model.get_base_model()  # ``model`` is a peft PeftModel (untyped)
    for name, module in list(inner.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        if not isinstance(module, LoraLinear):
            raise TypeError(
                f"{name}: only LoRA on linear layers can be merged, not {type(module).__name__}"
            )
        base = cast(nn.Linear, module.get_base_layer())  # a LoRA `Linear` wraps a linear
        weights = {
            role: (base.weight + module.get_delta_weight(role))
            if role in module.lora_A
            else base.weight
            for role in roles
        }
        parent, _, attribute = name.rpartition(".")
        setattr(inner.get_submodule(parent), attribute, RoleLinear(weights, base.bias, rows))
    return inner, rows
