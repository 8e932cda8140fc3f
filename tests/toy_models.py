"""Toy-sized models built in seconds inside the test session, through the real training code.

A toy preset has everything `engine.serving.hub.LocalBackend.load` needs (tokenizer, both
bases, the four role adapters, the S-BERT encoder and its ethics and memory models), each a few
thousand parameters trained for a step or two. Tests of plumbing (batching, processes, the
pipeline, remote serving, merged weights) use it; what the demo models *say* is tested on the
demo models (the ``demo_models`` marker, tests/conftest.py).

Both builders cache per session so that every package shares one build.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from engine.runtime.presets import PRODUCTION_ROLES, ROLES, Preset

TOY_ROWS = 32  # train rows the toy bases see
TOY_PRETRAIN_EPOCHS = 8
TOY_PRETRAIN_LR = 3e-3
TOY_ADAPTER_ROWS = 8
TOY_BATCH = 8
# The S-BERTs: a toy encoder over the first corpus texts, one short pass for each task.
TOY_ENCODER_TEXTS = 300
TOY_ENCODER_EPOCHS = 2
TOY_ETHICS_ROWS = 60
TOY_MEMORY_COMBS = 24
TOY_SBERT_EPOCHS = 1

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class ToyWorkspace:
    root: Path
    preset: Preset

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"


def toy_preset(root: Path, sbert_base: str = "") -> Preset:
    """A preset over the toy bases with a one-epoch, batch-8 schedule for every role."""
    roles = {
        name: replace(spec, epochs=1, batch_size=TOY_BATCH)
        for name, spec in PRODUCTION_ROLES.items()
    }
    return Preset(
        name="toy",
        kanana_base=str(root / "kanana_base"),
        polyglot_base=str(root / "polyglot_base"),
        sbert_base=sbert_base,
        artifacts=root,
        roles=roles,
    )


def build_toy_bases(root: Path) -> None:
    """Tokenizer over the whole corpus, then both toy bases on the first TOY_ROWS train rows."""
    from training.data import corpus_texts, load_rows, pretraining_texts
    from training.pretrain import base_roles, pretrain_base
    from training.tokenizer import build_tokenizer

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


def build_toy_sbert(preset: Preset) -> None:
    """The toy S-BERT encoder at ``preset.sbert_base``, then the ethics and memory models."""
    from training.encoder import build_encoder, encoder_corpus
    from training.sbert import train_ethics, train_memory

    build_encoder(
        encoder_corpus()[:TOY_ENCODER_TEXTS],
        Path(preset.sbert_base),
        size="toy",
        mlm_epochs=TOY_ENCODER_EPOCHS,
        show_progress=False,
    )
    train_ethics(preset, epochs=TOY_SBERT_EPOCHS, max_rows=TOY_ETHICS_ROWS, show_progress=False)
    train_memory(preset, epochs=TOY_SBERT_EPOCHS, max_rows=TOY_MEMORY_COMBS, show_progress=False)


_CACHE: dict[str, ToyWorkspace] = {}


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def toy_workspace_for(factory: pytest.TempPathFactory) -> ToyWorkspace:
    """Build (once per session) toy bases and all four toy adapters."""
    if "workspace" not in _CACHE:
        from training.finetune import finetune_role

        _one_thread()
        root = factory.mktemp("toy")
        build_toy_bases(root)
        preset = toy_preset(root)
        for role in ROLES:
            finetune_role(preset, role, max_rows=TOY_ADAPTER_ROWS)
        _CACHE["workspace"] = ToyWorkspace(root, preset)
    return _CACHE["workspace"]


def toy_serving_preset_for(factory: pytest.TempPathFactory) -> Preset:
    """The toy workspace plus its S-BERTs: a complete preset `LocalBackend.load` accepts."""
    if "serving" not in _CACHE:
        workspace = toy_workspace_for(factory)
        _one_thread()
        preset = replace(workspace.preset, sbert_base=str(workspace.root / "sbert_encoder"))
        build_toy_sbert(preset)
        _CACHE["serving"] = ToyWorkspace(workspace.root, preset)
    return _CACHE["serving"].preset


TOY_MODELS_DIR = "toy_models"  # the folder to pass as OHLORA_MODELS_DIR


def toy_models_dir_for(factory: pytest.TempPathFactory) -> Path:
    """A models folder whose ``tiny`` preset is the toy one: ``<dir>/tiny`` links to the toy
    workspace, which gets a complete manifest for the data shipped now. A ``main.py``
    subprocess started with ``OHLORA_MODELS_DIR=<dir>`` then loads the toy models through the
    same settings, checks and loading code as the demo models, in seconds instead of a minute
    (for crash, restart and signal plumbing; what the demo models say is tested on them)."""
    if "models_dir" not in _CACHE:
        from engine.runtime.presets import tiny
        from training.bootstrap import is_built
        from training.manifest import Manifest, data_hashes

        preset = toy_serving_preset_for(factory)
        models = factory.mktemp(TOY_MODELS_DIR)
        (models / "tiny").symlink_to(preset.artifacts, target_is_directory=True)
        Manifest(preset="tiny", seed=0, data=data_hashes(), complete=True).save(
            preset.manifest_path
        )
        assert is_built(tiny(models)), "main.py would start the 15-minute demo bootstrap"
        _CACHE["models_dir"] = ToyWorkspace(models, preset)
    return _CACHE["models_dir"].root
