"""The tiny preset's shared S-BERT encoder: a small BERT over Kiwi morpheme tokens, MLM-pretrained.

`build_encoder` (1) runs the corpus through the preprocessing stage (Kiwi ``form/tag`` tokens by
default, see `engine.runtime.morphemes`), (2) builds a word-level vocabulary over those tokens, (3) creates
a small `BertConfig` (``tiny`` ≈ 3.7 M parameters; ``toy`` for tests) whose word vectors start from
Kiwi's own morpheme similarities (`kiwi_embeddings`: the pretrained Korean signal a 3.7 M model
trained on ~3,000 sentences lacks; measured +0.04 ethics validation accuracy), (4) pretrains it
with masked language modelling through the transformers `Trainer` and
`DataCollatorForLanguageModeling`, and (5) saves model + tokenizer with ``save_pretrained`` so
`sentence_transformers.models.Transformer` loads the directory like any Hugging Face checkpoint. The preprocessing name is written beside it
(``ohlora_sbert.json``) and is inherited by the S-BERT models trained from it.

The corpus (`encoder_corpus`) is the ethics *train* prompts, the four category names, the memory
retriever's *train* combs and the LLM fine-tuning texts; never a test split.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.rules.ethics_rules import ETHICS_CATEGORIES
from engine.runtime.morphemes import PREPROCESS_KIWI, PREPROCESS_NONE, get_preprocessor
from engine.runtime.presets import DATA_DIR
from engine.runtime.sbert import SBERT_CONFIG_NAME
from training.data import read_csv

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_SEQ_LENGTH = 64
# ``kind`` in a base's ohlora_sbert.json: the MLM-pretrained morpheme BERT, or the frozen
# USE + character n-gram features (`engine.runtime.use_module`), the tiny preset's default.
KIND_ENCODER = "encoder"
KIND_USE = "use"


@dataclass(frozen=True)
class EncoderSize:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    mlm_epochs: float
    mlm_batch: int
    mlm_lr: float


SIZES: dict[str, EncoderSize] = {
    # ≈ 3.7 M parameters with a ~2k-token vocabulary.
    "tiny": EncoderSize(
        hidden=256, layers=4, heads=4, intermediate=1024, mlm_epochs=4, mlm_batch=32, mlm_lr=5e-4
    ),
    # ≈ 75 k parameters: for tests only.
    "toy": EncoderSize(
        hidden=32, layers=1, heads=2, intermediate=64, mlm_epochs=10, mlm_batch=16, mlm_lr=3e-3
    ),
}


def encoder_corpus(data_dir: Path = DATA_DIR) -> list[str]:
    """Raw Korean text for the vocabulary and MLM: train splits only (no ethics/memory test rows)."""
    texts: list[str] = list(ETHICS_CATEGORIES)
    texts += [
        r["user_prompt"]
        for r in read_csv(data_dir / "ethics_train_test_dataset.csv")
        if r["type"] == "train"
    ]
    combs = data_dir / "v2_memory_sbert" / "train_dataset_combs.txt"
    texts += [
        line.strip() for line in combs.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    for row in read_csv(data_dir / "OhLoRA_fine_tuning_v3.csv"):
        texts += [
            row[c] for c in ("input_data", "output_message", "memory", "summary") if row.get(c)
        ]
    return [t for t in texts if t.strip()]


default_corpus = encoder_corpus


def build_tokenizer(preprocessed: Iterable[str], min_freq: int = 1):
    """A word-level `PreTrainedTokenizerFast` over whitespace-separated (morpheme) tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    counts = Counter(tok for text in preprocessed for tok in text.split())
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for tok, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= min_freq and tok not in vocab:
            vocab[tok] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_SEQ_LENGTH,
    )


def bert_config(vocab_size: int, size: str = "tiny"):
    from transformers import BertConfig

    spec = SIZES[size]
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.intermediate,
        max_position_embeddings=MAX_SEQ_LENGTH * 2,
        type_vocab_size=2,
        pad_token_id=0,
    )


def kiwi_embeddings(tokens: list[str], dim: int, *, scale: float = 0.02):
    """Initial word vectors for ``form/tag`` tokens from Kiwi's CoNgram morpheme similarities.

    Kiwi ('cong' model) gives a cosine similarity for any two morphemes it knows but no vectors;
    the centred similarity matrix of the known tokens is factorised (top ``dim`` eigenpairs) into
    vectors whose dot products reproduce it, scaled to BERT's init size (``scale`` per dimension).
    Returns ``{token: tensor(dim)}`` for the tokens Kiwi knows.
    """
    import torch

    from engine.runtime.morphemes import get_kiwi

    kiwi = get_kiwi()
    known: list[tuple[str, tuple[str, str]]] = []
    for token in tokens:
        form, _, tag = token.rpartition("/")
        if not form or not tag:
            continue
        try:
            kiwi.morpheme_similarity((form, tag), (form, tag))
        except ValueError:  # Kiwi's answer for a morpheme it does not know
            continue
        known.append((token, (form, tag)))
    n = len(known)
    if n < 2:
        return {}
    gram = torch.eye(n, dtype=torch.float64)
    for i in range(n):
        a = known[i][1]
        for j in range(i + 1, n):
            gram[i, j] = gram[j, i] = kiwi.morpheme_similarity(a, known[j][1])
    centred = gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()
    values, vectors = torch.linalg.eigh(centred)
    top = torch.argsort(values, descending=True)[:dim]
    x = vectors[:, top] * values[top].clamp(min=0).sqrt()
    if x.shape[1] < dim:
        x = torch.cat([x, torch.zeros(n, dim - x.shape[1], dtype=x.dtype)], dim=1)
    x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-8) * (scale * dim**0.5)
    return {token: x[i].float() for i, (token, _) in enumerate(known)}


def write_sbert_config(directory: Path, data: dict) -> None:
    (directory / SBERT_CONFIG_NAME).write_text(
        json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


def build_encoder(
    corpus: list[str],
    out_dir: Path,
    *,
    size: str = "tiny",
    mlm_epochs: float | None = None,
    mlm_seconds: float | None = None,
    seed: int = 0,
    preprocess: str = PREPROCESS_KIWI,
    min_freq: int = 1,
    kiwi_init: bool = True,
    show_progress: bool = True,
) -> dict:
    """Build the vocabulary, MLM-pretrain a small BERT on ``corpus`` and save it to ``out_dir``.

    ``mlm_epochs`` defaults to the size's schedule (the LR schedule always runs to its end);
    ``mlm_seconds`` optionally stops earlier as a wall-clock safety net. Returns a summary dict
    (parameters, vocabulary size, first/last MLM loss, seconds).
    """
    import torch
    from datasets import Dataset
    from transformers import (
        BertForMaskedLM,
        BertModel,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    if size not in SIZES:
        raise ValueError(f"unknown encoder size {size!r} (one of {sorted(SIZES)})")
    spec = SIZES[size]
    epochs = spec.mlm_epochs if mlm_epochs is None else mlm_epochs
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    texts = [t for t in get_preprocessor(preprocess).batch(corpus) if t.strip()]
    tokenizer = build_tokenizer(texts, min_freq=min_freq)
    set_seed(seed)
    model = BertForMaskedLM(bert_config(len(tokenizer), size))
    n_params = sum(p.numel() for p in model.bert.parameters())
    kiwi_known = 0
    if kiwi_init and preprocess == PREPROCESS_KIWI:
        vocab = tokenizer.get_vocab()
        vectors = kiwi_embeddings(sorted(vocab, key=vocab.__getitem__), spec.hidden)
        weight = model.bert.embeddings.word_embeddings.weight
        with torch.no_grad():
            for token, vector in vectors.items():
                weight[vocab[token]] = vector
        kiwi_known = len(vectors)

    dataset = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=MAX_SEQ_LENGTH),
        batched=True,
        remove_columns=["text"],
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=seed)

    class _Deadline(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if mlm_seconds is not None and time.perf_counter() - started > mlm_seconds:
                control.should_training_stop = True

    losses: list[float] = []

    class _Losses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    steps_per_epoch = max(1, -(-len(texts) // spec.mlm_batch))
    args = TrainingArguments(
        output_dir=str(out_dir / "_mlm_tmp"),
        num_train_epochs=epochs,
        per_device_train_batch_size=spec.mlm_batch,
        learning_rate=spec.mlm_lr,
        weight_decay=0.01,
        warmup_steps=0.06,
        lr_scheduler_type="linear",
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 2),
        logging_first_step=True,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        disable_tqdm=not show_progress,
        dataloader_pin_memory=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[_Deadline(), _Losses()],
    )
    trainer.train()

    # Save the bare encoder (with a pooler so AutoModel loads it without missing weights).
    encoder = BertModel(model.config, add_pooling_layer=True)
    encoder.load_state_dict(model.bert.state_dict(), strict=False)
    encoder.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_sbert_config(
        out_dir, {"preprocess": preprocess, "kind": KIND_ENCODER, "size": size, "seed": seed}
    )
    shutil.rmtree(out_dir / "_mlm_tmp", ignore_errors=True)
    return {
        "params": n_params,
        "vocab_size": len(tokenizer),
        "kiwi_init_tokens": kiwi_known,
        "corpus_texts": len(texts),
        "mlm_epochs": epochs,
        "mlm_steps": trainer.state.global_step,
        "mlm_loss_first": losses[0] if losses else None,
        "mlm_loss_last": losses[-1] if losses else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def build_use_base(
    corpus: list[str],
    out_dir: Path,
    *,
    seed: int = 0,
    min_df: int | None = None,
    max_features: int | None = None,
) -> dict:
    """The tiny preset's S-BERT base: frozen USE features plus a character 1–3-gram tf-idf
    vocabulary fitted on ``corpus`` (train texts only), saved as a sentence-transformers
    directory holding one `USEFeatures` module (its config only; nothing is trained here)."""
    from sentence_transformers import SentenceTransformer

    from engine.runtime.use_module import NGRAM_MAX_FEATURES, NGRAM_MIN_DF, USEFeatures, fit_ngrams

    started = time.perf_counter()
    out_dir = Path(out_dir)
    vocab, idf = fit_ngrams(
        corpus,
        min_df=NGRAM_MIN_DF if min_df is None else min_df,
        max_features=NGRAM_MAX_FEATURES if max_features is None else max_features,
    )
    model = SentenceTransformer(modules=[USEFeatures(vocab, idf)], device="cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    write_sbert_config(
        out_dir, {"preprocess": PREPROCESS_NONE, "kind": KIND_USE, "size": "use", "seed": seed}
    )
    return {
        "kind": KIND_USE,
        "ngram_features": len(vocab),
        "corpus_texts": len(corpus),
        "dimension": model.get_embedding_dimension(),
        "seconds": round(time.perf_counter() - started, 1),
    }
