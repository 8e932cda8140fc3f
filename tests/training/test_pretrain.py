"""Tiny bases: production architectures, trained from scratch by Trainer, loadable by Auto classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXForCausalLM, LlamaForCausalLM

from tests.training.conftest import ToyWorkspace
from training.data import load_rows, pretraining_texts
from training.pretrain import MODEL_SIZES, base_roles, pretrain_base, tiny_config

VOCAB = 14_000


@pytest.mark.parametrize(
    ("kind", "cls"), [("kanana", LlamaForCausalLM), ("polyglot", GPTNeoXForCausalLM)]
)
def test_configs_use_the_production_architectures(kind: str, cls: type) -> None:
    config = tiny_config(kind, VOCAB)
    model = AutoModelForCausalLM.from_config(tiny_config(kind, VOCAB, "toy"))
    assert isinstance(model, cls)
    hidden, layers, heads, ffn = MODEL_SIZES["tiny"]
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.intermediate_size,
    ) == (hidden, layers, heads, ffn)
    assert config.tie_word_embeddings and config.vocab_size == VOCAB
    assert (
        model.get_output_embeddings().weight.data_ptr()
        == model.get_input_embeddings().weight.data_ptr()
    )


def test_base_roles_split_kanana_and_polyglot() -> None:
    assert base_roles("kanana") == ("output_message", "summary")
    assert base_roles("polyglot") == ("memory", "eyes_mouth_pose")


def test_pretrained_toy_bases_load_and_learned(toy_workspace: ToyWorkspace) -> None:
    for kind in ("kanana", "polyglot"):
        out = toy_workspace.root / f"{kind}_base"
        assert (out / "model.safetensors").is_file()
        model = AutoModelForCausalLM.from_pretrained(out)
        tokenizer = AutoTokenizer.from_pretrained(out)
        assert model.config.vocab_size == len(tokenizer)
        assert model.dtype == torch.float32


def test_pretrain_loss_falls_and_is_seeded(tmp_path: Path, toy_workspace: ToyWorkspace) -> None:
    tokenizer = AutoTokenizer.from_pretrained(toy_workspace.tokenizer_dir)
    texts = pretraining_texts(base_roles("polyglot"), load_rows("train")[:16])
    runs = [
        pretrain_base(
            "polyglot",
            tokenizer,
            texts,
            tmp_path / f"run{i}",
            epochs=6,
            size="toy",
            lr=3e-3,
            batch_size=8,
        )
        for i in range(2)
    ]
    assert runs[0]["final_loss"] < runs[0]["first_loss"] - 0.5
    assert runs[0]["final_loss"] == pytest.approx(runs[1]["final_loss"], rel=1e-4)
    assert (tmp_path / "run0" / "tokenizer.json").is_file()
