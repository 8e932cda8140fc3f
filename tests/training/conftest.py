"""A toy model workspace (tokenizer, two toy bases, four adapters) built once per session.

`tests/engine/runtime/test_roles.py` imports `toy_workspace_for` too, so both packages share one build.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from engine.runtime.presets import PRODUCTION_ROLES, ROLES, Preset
from training.data import corpus_texts, load_rows, pretraining_texts
from training.pretrain import base_roles, pretrain_base
from training.tokenizer import build_tokenizer

TOY_ROWS = 32  # train rows the toy bases see
TOY_PRETRAIN_EPOCHS = 8
TOY_PRETRAIN_LR = 3e-3
TOY_ADAPTER_ROWS = 8
TOY_BATCH = 8

torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class ToyWorkspace:
    root: Path
    preset: Preset

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"


def toy_preset(root: Path) -> Preset:
    """A preset over the toy bases with a one-epoch, batch-8 schedule for every role."""
    roles = {
        name: replace(spec, epochs=1, batch_size=TOY_BATCH)
        for name, spec in PRODUCTION_ROLES.items()
    }
    return Preset(
        name="toy",
        kanana_base=str(root / "kanana_base"),
        polyglot_base=str(root / "polyglot_base"),
        sbert_base="",
        artifacts=root,
        roles=roles,
    )


def build_toy_bases(root: Path) -> None:
    """Tokenizer over the whole corpus, then both toy bases on the first TOY_ROWS train rows."""
    tokenizer = build_tokenizer(corpus_texts(), root / "tokenizer")
    rows = load_rows("train")[:TOY_ROWS]
    for kind in ("kanana", "polyglot"):
        pretrain_base(
            kind,
            tokenizer,
            pretraining_texts(base_roles(kind), rows),
            root / f"{kind}_base",
            epochs=TOY_PRETRAIN_EPOCHS,
            size="toy",
            lr=TOY_PRETRAIN_LR,
        )


_CACHE: dict[str, ToyWorkspace] = {}


def toy_workspace_for(factory: pytest.TempPathFactory) -> ToyWorkspace:
    """Build (once per session) toy bases and all four toy adapters."""
    if "workspace" not in _CACHE:
        from training.finetune import finetune_role

        root = factory.mktemp("toy")
        build_toy_bases(root)
        preset = toy_preset(root)
        for role in ROLES:
            finetune_role(preset, role, max_rows=TOY_ADAPTER_ROWS)
        _CACHE["workspace"] = ToyWorkspace(root, preset)
    return _CACHE["workspace"]


@pytest.fixture(scope="session")
def toy_workspace(tmp_path_factory: pytest.TempPathFactory) -> ToyWorkspace:
    return toy_workspace_for(tmp_path_factory)
