"""Role adapters merged into per-role weights: the same outputs as peft's adapters, faster."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from engine.runtime.lm import Request, RoleModels, prefill_groups
from engine.runtime.merged import RoleLinear, RoleRows


def test_rows_are_routed_as_contiguous_role_slices() -> None:
    rows = RoleRows()
    rows.route(["reply", "reply", "summary"])
    assert rows.segments == (("reply", 0, 2), ("summary", 2, 3))
    with pytest.raises(ValueError, match="not adjacent"):
        rows.route(["reply", "summary", "reply"])
    with pytest.raises(ValueError, match="no rows"):
        rows.route([])


def test_a_role_linear_sends_each_slice_through_its_own_weight() -> None:
    rows = RoleRows()
    weights = {"a": torch.eye(2), "b": 2 * torch.eye(2)}
    layer = RoleLinear(weights, torch.tensor([0.0, 1.0]), rows)
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    rows.route(["a", "b", "b"])
    assert layer(x).tolist() == [[1.0, 2.0], [2.0, 3.0], [2.0, 3.0]]
    rows.route(["b"])  # one role: the whole batch, whatever its size
    assert layer(x).tolist() == [[2.0, 3.0]] * 3
    rows.route(["a", "b"])
    with pytest.raises(ValueError, match="routed 2 rows"):
        layer(x)


def test_prefill_groups_keep_one_role_each_and_split_where_padding_costs_more() -> None:
    groups = prefill_groups(["r", "s", "r", "r", "s"], [10, 50, 12, 90, 52])
    assert sorted(map(sorted, groups)) == [[0, 2], [1, 4], [3]]
    assert prefill_groups([], []) == []
    assert prefill_groups(["r"] * 4, [20, 21, 22, 23]) == [[0, 1, 2, 3]]


@pytest.fixture(scope="module")
def unmerged(toy_preset: Any) -> RoleModels:
    return RoleModels.from_preset(toy_preset, merge=False)


def test_merged_models_replace_every_lora_layer(toy_backend: Any, unmerged: RoleModels) -> None:
    from peft.tuners.lora import LoraLayer

    merged = toy_backend.roles
    for base, model in merged.models.items():
        layers = [m for m in model.modules() if isinstance(m, RoleLinear)]
        assert layers and not any(isinstance(m, LoraLayer) for m in model.modules())
        assert set(layers[0].weights) == {
            r for r, spec in merged.preset.roles.items() if spec.base == base
        }
    assert set(unmerged.role_rows) == set()  # peft's adapters kept as they are


@pytest.mark.parametrize("role", ["output_message", "summary", "memory", "eyes_mouth_pose"])
def test_merged_weights_give_peft_adapters_logits_and_greedy_text(
    toy_backend: Any, unmerged: RoleModels, role: str
) -> None:
    from engine.rules import prompts
    from training.data import load_rows

    merged = toy_backend.roles
    texts = [prompts.reply_prompt(r.input_data) for r in load_rows("valid")[:4]]
    batch = merged.tokenizers[role](texts[:1], return_tensors="pt")
    base = merged.preset.roles[role].base
    merged.role_rows[base].route([role])
    unmerged.models[base].set_adapter(role)
    with torch.inference_mode():
        want = unmerged.models[base](**batch).logits
        got = merged.models[base](**batch).logits
    assert torch.allclose(got, want, atol=1e-4)
    requests = [Request(role, t, 0.0, max_new_tokens=16) for t in texts]
    assert [g.text for g in merged.generate_rows(requests)] == [
        g.text for g in unmerged.generate_rows(requests)
    ]
