"""A toy model workspace (tokenizer, two toy bases, four adapters) built once per session.

The builders live in `tests.toy_models` (the suite's `toy_preset` adds the S-BERTs to the same
build); `tests/engine/runtime/test_roles.py` imports `toy_workspace_for` from here too.
"""

from __future__ import annotations

import pytest
import torch

from tests.toy_models import (
    TOY_ADAPTER_ROWS,
    TOY_BATCH,
    TOY_PRETRAIN_EPOCHS,
    TOY_PRETRAIN_LR,
    TOY_ROWS,
    ToyWorkspace,
    build_toy_bases,
    toy_preset,
    toy_workspace_for,
)

__all__ = [
    "TOY_ADAPTER_ROWS",
    "TOY_BATCH",
    "TOY_PRETRAIN_EPOCHS",
    "TOY_PRETRAIN_LR",
    "TOY_ROWS",
    "ToyWorkspace",
    "build_toy_bases",
    "toy_preset",
    "toy_workspace_for",
]

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_workspace(tmp_path_factory: pytest.TempPathFactory) -> ToyWorkspace:
    return toy_workspace_for(tmp_path_factory)
