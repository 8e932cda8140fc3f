"""Tiny stand-in bases trained from scratch: Llama for Kanana, GPT-NeoX for Polyglot-Ko.

The architectures match production so that the same LoRA target modules, loading code and
adapter format apply; only sizes differ. Training goes through transformers' Trainer.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForLanguageModeling,
    GPTNeoXConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

from engine.runtime.presets import PRODUCTION_ROLES, ROLES, Base

Size = Literal["tiny", "toy"]

# (hidden, layers, heads, FFN). tiny: feasibility's Llama body (4 M parameters; 6.8 M with the
# 14 k-token tied embedding); toy: unit tests.
MODEL_SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (256, 4, 4, 704),
    "toy": (32, 2, 2, 64),
}
MAX_POSITIONS = 256  # replies budget 128 total tokens; summaries need ~70 + 64
NEOX_ROTARY_PCT = 0.5  # Polyglot-Ko rotates half of each head
INIT_RANGE = 0.02

PRETRAIN_LR = 3e-3  # high for a 7 M model: few epochs fit the time budget
PRETRAIN_BATCH = 16
PRETRAIN_WARMUP = 0.05  # fraction of steps
WEIGHT_DECAY = 0.0
# Epochs per tiny base: 8 left the Llama base underfit (loss 1.7, word salad even on train
# prompts); 16 reaches loss ~0.46 in ~4.5 min on 2 threads and reproduces train replies. The
# bases carry the formats at inference (LoRA trains with the template in context, which serving
# prompts never contain), so the budget goes here rather than to LoRA.
TINY_EPOCHS: dict[str, float] = {"kanana": 16, "polyglot": 12}
LOG_FRACTION = 0.05  # log the loss 20 times per run, whatever its length


def base_roles(kind: Base) -> tuple[str, ...]:
    """Roles served by one base: their texts are that base's pretraining corpus."""
    return tuple(role for role in ROLES if PRODUCTION_ROLES[role].base == kind)


def tiny_config(
    kind: Base,
    vocab_size: int,
    size: Size = "tiny",
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> PretrainedConfig:
    """A LlamaConfig (kanana) or GPTNeoXConfig (polyglot) of the given size, tied embeddings."""
    hidden, layers, heads, ffn = MODEL_SIZES[size]
    special: dict[str, Any] = {}
    if tokenizer is not None:
        special = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    if kind == "kanana":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            intermediate_size=ffn,
            max_position_embeddings=MAX_POSITIONS,
            tie_word_embeddings=True,
            initializer_range=INIT_RANGE,
            **special,
        )
    if kind == "polyglot":
        return GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=ffn,
            rope_parameters={"partial_rotary_factor": NEOX_ROTARY_PCT},  # was `rotary_pct`
            max_position_embeddings=MAX_POSITIONS,
            tie_word_embeddings=True,
            initializer_range=INIT_RANGE,
            **special,
        )
    raise ValueError(f"unknown base kind {kind!r}")


class TokenizedTexts(Dataset):
    """Texts tokenised once (BOS prepended, no EOS: the end marker ends every text)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> None:
        self.items = [{"input_ids": ids} for ids in tokenizer(texts)["input_ids"]]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.items[index]


def training_arguments(
    out_dir: Path,
    *,
    epochs: float,
    batch_size: int,
    lr: float,
    seed: int,
    warmup: float = 0.0,
    group_by_length: bool = False,
    **extra: Any,
) -> TrainingArguments:
    """Settings shared by pretraining and LoRA: no checkpoints, no reporting, seeded order."""
    use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        lr_scheduler_type="linear",
        warmup_steps=warmup,
        weight_decay=WEIGHT_DECAY,
        logging_steps=LOG_FRACTION,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        bf16=use_bf16,
        disable_tqdm=False,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        **extra,
    )


def loss_summary(trainer: Trainer, started: float) -> dict[str, float]:
    """First and last logged loss, mean loss, steps and wall time of a finished run."""
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    train = [entry for entry in trainer.state.log_history if "train_loss" in entry]
    return {
        "first_loss": float(losses[0]) if losses else float("nan"),
        "final_loss": float(losses[-1]) if losses else float("nan"),
        "train_loss": float(train[-1]["train_loss"]) if train else float("nan"),
        "steps": float(trainer.state.global_step),
        "seconds": round(time.perf_counter() - started, 2),
    }


def pretrain_base(
    kind: Base,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    out_dir: Path,
    *,
    epochs: float,
    seed: int = 0,
    size: Size = "tiny",
    batch_size: int = PRETRAIN_BATCH,
    lr: float = PRETRAIN_LR,
) -> dict[str, float]:
    """Train a causal LM from scratch on ``texts`` and save model + tokenizer to ``out_dir``.

    The texts are the role texts *without* the response template (`training.data.pretraining_text`),
    so the base answers straight after a start marker, as the inference prompts require.
    """
    started = time.perf_counter()
    set_seed(seed)
    config = tiny_config(kind, len(tokenizer), size, tokenizer=tokenizer)
    model = AutoModelForCausalLM.from_config(config)
    dataset = TokenizedTexts(tokenizer, texts)
    tokenizer.padding_side = "right"
    trainer = Trainer(
        model=model,
        args=training_arguments(
            out_dir / "_trainer",
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            warmup=PRETRAIN_WARMUP,
            group_by_length=True,
        ),
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
    )
    trainer.train()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    shutil.rmtree(out_dir / "_trainer", ignore_errors=True)
    summary = loss_summary(trainer, started)
    summary["parameters"] = float(sum(p.numel() for p in model.parameters()))
    return summary
