"""Training the ethics classifier and the memory retriever S-BERTs (reference §4.3, §5.1).

Both are ``SentenceTransformer(models.Transformer(base) + mean pooling)`` trained with
`SentenceTransformerTrainer` and the cosine-similarity MSE objective of `CosineSimilarityLoss`,
then calibrated on a validation part of the *train* rows and saved with ``ohlora_sbert.json``
beside the model (preprocessing stage, thresholds, validation numbers) for `engine.runtime.sbert`.

* tiny preset, ethics: the base (``<artifacts>/sbert_use``, `use_base_dir`, built on demand) is
  the frozen USE + character n-gram feature module (`engine.runtime.use_module`, issue 20); the
  model is that module, given a Kiwi morpheme-similarity block whose anchors are the content
  morphemes of the ethics train rows, plus a trained `Dense` head (`USE_HEADS`); preprocessing
  ``none``.
* tiny preset, memory (and ethics with ``size="toy"`` in tests): the project's MLM-pretrained
  morpheme BERT (`training.encoder`) at ``preset.sbert_base``, built on demand; preprocessing
  ``kiwi``. The memory task stays there because on the USE base it measured worse (test r
  0.53-0.56 against 0.674, seed 0: the frozen vectors overfit the 72 training combs).
* production preset: ``klue/roberta-base`` (or a local copy) through the same code; preprocessing
  ``none``. A hub id that is not in the local cache raises `SbertBaseMissing` at once.

Ethics: pairs (prompt, category name) labelled 1/0, harmful categories oversampled, 15 % of the
train rows (stratified) held out and the validation paraphrases (`ETHICS_VALIDATION_CSV`) to
calibrate per-category thresholds and the 일반 veto. By default one training row holds a prompt
with all four category names (`CategoryCosineSimilarityLoss`): the same loss over the same four
pairs, the prompt encoded once and the names once per batch (~3× cheaper on a CPU);
``grouped=False`` trains the plain pair rows. The loss is upstream's squared error, or on the USE
base a softmax over the four scaled cosines (`EthicsObjective`).

Memory: pairs (memory_0, user_prompt_1, similarity_score). Labels depend only on the two
combs' keys, so by default a batch of combs is trained on all its B×B pairs
(`CombMatrixCosineSimilarityLoss`, ~70× fewer encoder passes than one row per pair), and the
LLM fine-tuning set's train rows with a ``memory`` item whose key class occurs in the training
combs add 107 (item, prompt) rows. Validation holds out 10 % of the combs (the test set's combs
are all new); the retrieval threshold maximises F1 of label == 1.0 on it.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.rules.ethics_rules import ETHICS_CATEGORIES, NORMAL_NAME, NORMAL_VETO
from engine.runtime.lm import MissingBaseModel
from engine.runtime.morphemes import PREPROCESS_NONE, get_preprocessor
from engine.runtime.presets import DATA_DIR, Preset
from engine.runtime.sbert import read_sbert_config
from training.data import read_csv
from training.encoder import (
    KIND_ENCODER,
    KIND_USE,
    MAX_SEQ_LENGTH,
    build_encoder,
    build_use_base,
    encoder_corpus,
    write_sbert_config,
)

logger = logging.getLogger(__name__)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HARMFUL = tuple(c for c in ETHICS_CATEGORIES if c != NORMAL_NAME)


class EthicsObjective(StrEnum):
    """What `CosineSimilarityLoss` makes of a prompt's four cosines to the category names.

    ``mse``: the squared error to the one-hot label (upstream's loss). ``softmax``: the cosines ×
    `SOFTMAX_SCALE` through a softmax, cross-entropy to the label (the library's own
    ``loss_fct`` / ``cos_score_transformation`` hooks). On the USE base the squared error fits
    the n-grams' spelling and leaves new phrasings as 일반; see `USE_ETHICS_DEFAULTS`.
    """

    MSE = "mse"
    SOFTMAX = "softmax"


# Thresholds sit this fraction of the remaining gap to 1.0 above the highest-scoring
# non-vetoed 일반 validation prompt (0.984 → 0.988, 0.95 → 0.9625).
THRESHOLD_MARGIN = 0.25
# New phrasings of the four categories written as validation rows (issue 20; not upstream's, in
# no split, none of them in the paraphrase test set): with the 15 % of the train rows held out they
# calibrate the thresholds, and they chose the softmax objective and its settings.
ETHICS_VALIDATION_CSV = DATA_DIR.parent / "ethics_validation_paraphrases.csv"
# The temperature of the softmax objective: cosines in [-1, 1] become logits in [-10, 10].
SOFTMAX_SCALE = 10.0
# Settings chosen on the validation part of the train rows (see the module's report).
ETHICS_DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 32,
    "lr": 2e-4,
    "balance": 0.5,
    "objective": EthicsObjective.MSE,
    "margin": THRESHOLD_MARGIN,
}
# Memory same_side_weight 0.3 over 0.0: mean validation r 0.623 vs 0.615 and MSE 0.0485 vs 0.0487
# over seeds 0-2 (8 held-out combs per seed, so within seed noise).
MEMORY_DEFAULTS: dict[str, Any] = {
    "epochs": 60,
    "batch_size": 32,
    "lr": 8e-4,
    "same_side_weight": 0.3,
    "extra_pairs": True,
    "refit": False,
}
# The same settings for the USE base (a trained Dense head over frozen features), chosen on the
# validation part of the train rows (seed 0, 132 prompts): one linear layer with the n-gram part
# at half weight 0.962, at 0.3 weight 0.955, harmful rows oversampled to 1.0 × 일반 0.955,
# tanh hidden layer of 512 0.947 (balance 0.5 or 1.0). Objective and margin chosen on the
# validation paraphrases (93 prompts; mean argmax accuracy over seeds 0-2, a replica of this
# training): squared error 0.688, softmax × 5 0.720, × 7 0.763, × 10 0.789 (n-gram weight 0.25:
# 0.771, 1.0: 0.728; balance 0.25: 0.713; 60 epochs 0.781; squared error + softmax 0.68-0.74).
# Margin 0 flags 28 / 28 / 43 of their 61 harmful prompts against 23 / 25 / 38 at 0.25 with the
# same 0 / 2 / 1 false flags (thresholds from the held-out train rows alone).
USE_ETHICS_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 32,
    "lr": 3e-3,
    "balance": 0.5,
    "objective": EthicsObjective.SOFTMAX,
    "margin": 0.0,
}
USE_MEMORY_DEFAULTS: dict[str, Any] = {**MEMORY_DEFAULTS, "epochs": 60, "lr": 1e-3}
# The trained head on the USE base: Dense(features → hidden, tanh) → Dense(hidden → out).
USE_HEAD_HIDDEN = 512
USE_HEAD_OUT = 256
# The tasks of the tiny preset trained on the USE base (see the module docstring) and its folder.
USE_TASKS = frozenset({"ethics"})
USE_BASE_DIR = "sbert_use"
# Per task: the head's sizes (hidden 0: one linear layer), the n-gram part's weight and the
# morpheme-similarity block's (0: none; its anchors are the content morphemes of the task's train
# rows). Ethics, chosen on validation rows only (cross-fitted flags on the held-out train rows +
# validation paraphrases, seeds 0-6): with the block at 0.5 (anchors in ≥ 2 train prompts,
# similarities above 0.5) 70 % of harmful prompts flagged at 2.1 % 일반 flagged, without it 65 %
# at 2.8 %; argmax accuracy unchanged (0.773 vs 0.770); weight 1.0 0.675 at 3.5 %, shift 0.6
# 0.670 at 2.1 %, anchors in ≥ 1 prompt 0.639 at 3.6 % (seeds 0-2).
USE_HEADS: dict[str, dict[str, Any]] = {
    "ethics": {"hidden": 0, "out": USE_HEAD_OUT, "ngram_scale": 0.5, "morpheme_scale": 0.5},
    "memory": {"hidden": USE_HEAD_HIDDEN, "out": USE_HEAD_OUT, "ngram_scale": 1.0},
}


class SbertBaseMissing(MissingBaseModel):
    """The S-BERT base model is neither a local directory nor in the Hugging Face cache."""


# ---------------------------------------------------------------------------------------------
# Base model
# ---------------------------------------------------------------------------------------------


def resolve_base(base: str) -> Path:
    """A local directory for ``base`` (a path, or a hub id already in the HF cache)."""
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise SbertBaseMissing(f"S-BERT base directory {path} has no config.json")
        return path
    if path.is_absolute() or base.startswith((".", "~")) or base.count("/") > 1:
        raise SbertBaseMissing(f"S-BERT base directory {path} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(base, local_files_only=True))
    except Exception as exc:
        raise SbertBaseMissing(
            f"S-BERT base {base!r} is not available locally. Download it once with network access "
            f"(`HF_HUB_OFFLINE=0 huggingface-cli download {base}`, or "
            f'`python -c "from huggingface_hub import snapshot_download; '
            f"snapshot_download('{base}')\"`), or point the preset at a local copy with "
            f"engine.runtime.presets.with_bases(preset, sbert_base='/path/to/{base.split('/')[-1]}')."
        ) from exc


def base_preprocess(base_dir: Path) -> str:
    """The preprocessing the base was built with (``none`` for any outside checkpoint)."""
    return read_sbert_config(base_dir).get("preprocess", PREPROCESS_NONE)


def base_kind(base_dir: Path) -> str:
    """``use`` (frozen USE features) or ``encoder`` (a transformer checkpoint: any outside one)."""
    return str(read_sbert_config(base_dir).get("kind", KIND_ENCODER))


def load_base_model(
    base_dir: Path,
    *,
    max_seq_length: int = MAX_SEQ_LENGTH,
    hidden: int | None = None,
    out: int | None = None,
    ngram_scale: float | None = None,
    morpheme_scale: float = 0.0,
    anchor_texts: Sequence[str] = (),
):
    """The untrained S-BERT on the CPU: ``Transformer(base) + mean pooling`` for a transformer
    base; for a USE base its feature module + ``Dense(hidden, tanh)`` + ``Dense(out)``, the
    module given a morpheme block (anchors fitted on ``anchor_texts``) when ``morpheme_scale``."""
    from sentence_transformers import SentenceTransformer

    if base_kind(base_dir) == KIND_USE:
        import torch
        from sentence_transformers.sentence_transformer.modules import Dense

        from engine.runtime.sbert import load_sentence_transformer
        from engine.runtime.use_module import fit_morpheme_anchors

        features = load_sentence_transformer(base_dir)[0]
        if ngram_scale is not None:
            features.ngram_scale = float(ngram_scale)
        if morpheme_scale:
            features.set_morpheme_anchors(fit_morpheme_anchors(anchor_texts), morpheme_scale)
        dim = features.get_embedding_dimension()
        hidden = USE_HEAD_HIDDEN if hidden is None else hidden
        out = USE_HEAD_OUT if out is None else out
        head: list[Any] = (
            [
                Dense(dim, hidden, activation_function=torch.nn.Tanh()),
                Dense(hidden, out, activation_function=None),
            ]
            if hidden
            else [Dense(dim, out, activation_function=None)]
        )
        return SentenceTransformer(modules=[features, *head], device="cpu")
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(str(base_dir), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def use_base_dir(preset: Preset) -> Path:
    """Where the tiny preset keeps its USE feature base."""
    return preset.artifacts / USE_BASE_DIR


def ensure_use_base(preset: Preset, *, seed: int = 0) -> Path:
    """The tiny preset's USE feature base, built (seconds) if missing."""
    path = use_base_dir(preset)
    if not (path / "modules.json").is_file():
        logger.info("building the tiny S-BERT base (USE features) at %s", path)
        build_use_base(encoder_corpus(), path, seed=seed)
    return path


def ensure_encoder(
    preset: Preset,
    *,
    size: str = "tiny",
    seed: int = 0,
    mlm_epochs: float | None = None,
    show_progress: bool = True,
) -> Path:
    """The preset's S-BERT base directory; the tiny preset's encoder is built if missing."""
    path = Path(preset.sbert_base)
    if preset.name == "tiny" and not (path / "config.json").is_file():
        logger.info("building the tiny S-BERT encoder at %s", path)
        build_encoder(
            encoder_corpus(),
            path,
            size=size,
            seed=seed,
            mlm_epochs=mlm_epochs,
            show_progress=show_progress,
        )
    return resolve_base(preset.sbert_base)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def load_ethics_csv(path: Path, split: str | None = None) -> list[tuple[str, str]]:
    """``(prompt, category name)`` rows of a ``user_prompt,category`` CSV; with ``split``, only
    the rows whose ``type`` column holds it."""
    return [
        (r["user_prompt"], r["category"])
        for r in read_csv(path)
        if split is None or r["type"] == split
    ]


def load_ethics_rows(data_dir: Path = DATA_DIR, split: str = "train") -> list[tuple[str, str]]:
    """``(prompt, category name)`` rows of one split of the ethics CSV."""
    return load_ethics_csv(data_dir / "ethics_train_test_dataset.csv", split)


def stratified_split(
    rows: Sequence[tuple[str, str]],
    fraction: float,
    seed: int,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, validation): ``fraction`` of each category held out, seeded."""
    by_cat: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_cat[row[1]].append(row)
    rng = random.Random(seed)
    train, val = [], []
    for cat in sorted(by_cat):
        items = list(by_cat[cat])
        rng.shuffle(items)
        n_val = round(len(items) * fraction) if fraction > 0 else 0
        n_val = min(max(n_val, 1 if fraction > 0 and len(items) > 1 else 0), len(items) - 1)
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def oversample(rows: Sequence[tuple[str, str]], balance: float, seed: int) -> list[tuple[str, str]]:
    """Repeat each harmful category's rows up to ``balance`` × the 일반 count (never fewer)."""
    counts = Counter(cat for _, cat in rows)
    target = balance * counts.get(NORMAL_NAME, 0)
    rng = random.Random(seed)
    out = list(rows)
    for cat in HARMFUL:
        items = [r for r in rows if r[1] == cat]
        extra = round(target) - len(items)
        if not items or extra <= 0:
            continue
        out += items * (extra // len(items)) + rng.sample(items, extra % len(items))
    return out


# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------


def _category_loss_class():
    import torch
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    class CategoryCosineSimilarityLoss(CosineSimilarityLoss):
        """`CosineSimilarityLoss` over (prompt, category name) pairs, grouped by prompt.

        Columns: the prompt, then one column per category name (the same string in every row);
        the label is the prompt's one-hot vector. The loss is the MSE between the cosines and
        the labels, exactly `CosineSimilarityLoss` on the four pairs, but the names are encoded
        once per batch (first row of each column) instead of once per pair.
        """

        def forward(self, sentence_features, labels):
            features = list(sentence_features)
            prompts = self.model(features[0])["sentence_embedding"]
            firsts = []
            for column in features[1:]:
                first = {
                    k: (v[:1] if isinstance(v, torch.Tensor) and v.dim() > 0 else v)
                    for k, v in column.items()
                }
                firsts.append(self.model(first)["sentence_embedding"])
            names = torch.cat(firsts, dim=0)
            cos = (
                torch.nn.functional.normalize(prompts, dim=-1)
                @ torch.nn.functional.normalize(names, dim=-1).T
            )
            cos = self.cos_score_transformation(cos)
            return self.loss_fct(cos, labels.to(cos.dtype))

    return CategoryCosineSimilarityLoss


def _category_loss(model, objective: EthicsObjective, scale: float = SOFTMAX_SCALE):
    """The grouped ethics loss for ``objective``: `CosineSimilarityLoss`'s own squared error, or
    its ``loss_fct`` / ``cos_score_transformation`` set to a softmax over ``scale`` × cosine."""
    import torch

    loss_class = _category_loss_class()
    if objective is EthicsObjective.MSE:
        return loss_class(model)

    class CosineScale(torch.nn.Module):
        """Cosines → logits (a fixed temperature: the runtime still reads plain cosines)."""

        def forward(self, cos: torch.Tensor) -> torch.Tensor:
            return scale * cos

    return loss_class(
        model, loss_fct=torch.nn.CrossEntropyLoss(), cos_score_transformation=CosineScale()
    )


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


def calibrate_ethics(
    scores: Sequence[dict[str, float]],
    labels: Sequence[str],
    *,
    margin: float = THRESHOLD_MARGIN,
    floor: float = 0.5,
    max_false_flags: int | None = None,
    max_false_rate: float = 0.02,
) -> tuple[dict[str, float], float, dict[str, Any]]:
    """Per-category thresholds and the 일반 veto from validation scores.

    For each candidate veto v, every harmful category's threshold is put just above the highest
    score that category gets from a 일반 prompt the veto lets through, so no 일반 validation
    prompt is flagged: ``top + margin × (1 − top)`` rounded up to 4 decimals, at least ``floor``.
    With ``max_false_flags`` = k > 0, up to k of the highest-scoring 일반 prompts may be left
    above a threshold when that flags at least 2 more harmful prompts per 일반 prompt given up
    (a single mislabelled-looking 일반 prompt otherwise pins a threshold near 1.0). ``None``:
    ``round(max_false_rate × 일반 validation prompts)`` (3 of the 96 + 32 일반 prompts of the
    default split and validation paraphrases).

    Objective: harmful prompts flagged with their own category − those flagged with a wrong one
    − 2 × 일반 prompts flagged; among equally good settings the veto closest to upstream's 0.5 is
    kept. Returns (thresholds, veto, stats).
    """
    from itertools import combinations

    normal = [s for s, y in zip(scores, labels) if y == NORMAL_NAME]
    harmful = [(s, y) for s, y in zip(scores, labels) if y != NORMAL_NAME]
    if max_false_flags is None:
        max_false_flags = round(max_false_rate * len(normal))
    candidates = sorted({round(x / 100, 2) for x in range(20, 101)} | {1.01})
    results = []
    for veto in candidates:
        passing = [k for k, s in enumerate(normal) if s[NORMAL_NAME] < veto]
        # Prompts worth giving up: the 3 highest of each category among those passing.
        worst = sorted(
            {k for cat in HARMFUL for k in sorted(passing, key=lambda k: -normal[k][cat])[:3]}
        )
        for n_given in range(0, min(max_false_flags, len(worst)) + 1):
            for given_up in combinations(worst, n_given):
                kept = [normal[k] for k in passing if k not in given_up]
                thresholds = {}
                for cat in HARMFUL:
                    top = max((s[cat] for s in kept), default=-1.0)
                    raised = math.ceil((top + margin * (1.0 - top)) * 10_000) / 10_000
                    thresholds[cat] = max(raised, floor)
                right = wrong = 0
                for s, y in harmful:
                    if s[NORMAL_NAME] >= veto:
                        continue
                    flagged = {c for c in HARMFUL if s[c] >= thresholds[c]}
                    right += y in flagged
                    wrong += bool(flagged - {y})
                false = sum(
                    1 for k in passing if any(normal[k][c] >= thresholds[c] for c in HARMFUL)
                )
                objective = right - wrong - 2 * false
                results.append(
                    (
                        objective,
                        -false,
                        -abs(veto - NORMAL_VETO),
                        veto,
                        thresholds,
                        right,
                        wrong,
                        false,
                    )
                )
    best = max(results, key=lambda r: r[:3])
    _, _, _, veto, thresholds, right, wrong, false = best
    stats = {
        "val_harmful": len(harmful),
        "val_flagged_right": int(right),
        "val_flagged_wrong_category": int(wrong),
        "val_normal": len(normal),
        "val_false_flags": int(false),
        "max_false_flags": max_false_flags,
    }
    return dict(thresholds), veto, stats


def calibrate_memory(scores: Sequence[float], labels: Sequence[float]) -> tuple[float, dict]:
    """The retrieval threshold maximising F1 of (label == 1.0) vs (score ≥ t)."""
    positives = sum(1 for y in labels if y >= 1.0)
    pairs = sorted(zip(scores, labels), key=lambda p: -p[0])
    best_f1, best_t, tp, seen = -1.0, 1.0, 0, 0
    for i, (s, y) in enumerate(pairs):
        seen += 1
        tp += y >= 1.0
        if i + 1 < len(pairs) and pairs[i + 1][0] == s:
            continue  # thresholds sit between distinct scores
        precision = tp / seen
        recall = tp / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best_f1:
            best_f1, best_t = f1, s
    return round(float(best_t), 4), {"val_f1": round(best_f1, 4), "val_positives": positives}


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _training_args(
    out_dir: Path,
    *,
    epochs: float,
    batch_size: int,
    lr: float,
    seed: int,
    show_progress: bool,
    steps_per_epoch: int,
):
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=str(out_dir / "_trainer_tmp"),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=0.1,  # 10 % of all steps, as upstream
        lr_scheduler_type="linear",
        weight_decay=0.01,
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch),
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        disable_tqdm=not show_progress,
        dataloader_pin_memory=False,
    )


def _train(model, dataset, loss, out_dir: Path, *, epochs, batch_size, lr, seed, show_progress):
    import shutil

    from sentence_transformers import SentenceTransformerTrainer

    steps = math.ceil(len(dataset) / batch_size)
    args = _training_args(
        out_dir,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        show_progress=show_progress,
        steps_per_epoch=steps,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    trainer.train()
    shutil.rmtree(out_dir / "_trainer_tmp", ignore_errors=True)
    return trainer


def _prepare(
    preset: Preset,
    size: str,
    seed: int,
    show_progress: bool,
    task: str = "ethics",
    anchor_texts: Sequence[str] = (),
):
    from transformers import set_seed

    if preset.name == "tiny" and size == "tiny" and task in USE_TASKS:
        base_dir = ensure_use_base(preset, seed=seed)
    else:
        base_dir = ensure_encoder(preset, size=size, seed=seed, show_progress=show_progress)
    preprocess = base_preprocess(base_dir)
    set_seed(seed)
    return (
        base_dir,
        preprocess,
        load_base_model(base_dir, **USE_HEADS[task], anchor_texts=anchor_texts),
    )


def _settings(base_dir: Path, task: str, given: dict[str, Any]) -> dict[str, Any]:
    """The asked-for training settings, the base kind's defaults for those left as None."""
    use = base_kind(base_dir) == KIND_USE
    if task == "ethics":
        defaults = USE_ETHICS_DEFAULTS if use else ETHICS_DEFAULTS
    else:
        defaults = USE_MEMORY_DEFAULTS if use else MEMORY_DEFAULTS
    return {k: (defaults[k] if v is None else v) for k, v in given.items()}


def _freeze_word_embeddings(model, freeze: bool) -> bool:
    """Optionally keep the encoder's word vectors fixed while fine-tuning (off by default:
    measured worse for both tasks on the tiny encoder)."""
    if freeze and hasattr(model[0], "auto_model"):
        model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    return bool(freeze)


def _cosines(model, a: Sequence[str], b: Sequence[str]) -> list[float]:
    ea = model.encode(
        list(a),
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=False,
        batch_size=128,
    )
    eb = model.encode(
        list(b),
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=False,
        batch_size=128,
    )
    return (ea * eb).sum(-1).tolist()


def train_ethics(
    preset: Preset,
    *,
    epochs: float | None = None,
    seed: int = 0,
    size: str = "tiny",
    max_rows: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    balance: float | None = None,
    objective: EthicsObjective | None = None,
    val_fraction: float = 0.15,
    margin: float | None = None,
    validation_csv: Path | None = ETHICS_VALIDATION_CSV,
    max_false_flags: int | None = None,
    grouped: bool = True,
    freeze_embeddings: bool = False,
    data_dir: Path = DATA_DIR,
    out_dir: Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train, calibrate and save the ethics classifier to ``preset.sbert_dir('ethics')``.

    ``size`` is the tiny encoder's size when it has to be built (``toy`` in tests); ``max_rows``
    caps the train rows (stratified) for quick runs. Settings left as None take the base kind's
    defaults (`ETHICS_DEFAULTS`, `USE_ETHICS_DEFAULTS`). ``validation_csv`` (None: none) adds
    its rows to the held-out train rows that calibrate the thresholds. Returns a summary
    (validation numbers, thresholds, veto, seconds, output directory).
    """
    from datasets import Dataset

    started = time.perf_counter()
    out_dir = Path(out_dir or preset.sbert_dir("ethics"))
    rows = load_ethics_rows(data_dir, "train")
    base_dir, preprocess, model = _prepare(
        preset, size, seed, show_progress, anchor_texts=[p for p, _ in rows]
    )
    chosen = _settings(
        base_dir,
        "ethics",
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "balance": balance,
            "objective": objective,
            "margin": margin,
        },
    )
    epochs, batch_size, lr, balance = (
        chosen["epochs"],
        chosen["batch_size"],
        chosen["lr"],
        chosen["balance"],
    )
    objective = EthicsObjective(chosen["objective"])
    margin = float(chosen["margin"])
    prep = get_preprocessor(preprocess)
    frozen = _freeze_word_embeddings(model, freeze_embeddings)

    if max_rows is not None and max_rows < len(rows):
        rows, _ = stratified_split(rows, 1 - max_rows / len(rows), seed)
    train_rows, val_rows = stratified_split(rows, val_fraction, seed)
    train_rows = oversample(train_rows, balance, seed)
    random.Random(seed).shuffle(train_rows)

    prompts = prep.batch([p for p, _ in train_rows])
    names = prep.batch(ETHICS_CATEGORIES)
    if grouped:
        data: dict[str, list] = {"prompt": prompts}
        for i, name in enumerate(names):
            data[f"category_{i}"] = [name] * len(prompts)
        data["label"] = [[float(c == cat) for cat in ETHICS_CATEGORIES] for _, c in train_rows]
        loss = _category_loss(model, objective)
    else:
        if objective is not EthicsObjective.MSE:
            raise ValueError("the softmax objective needs the grouped rows (grouped=True)")
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

        data = {"prompt": [], "category": [], "label": []}
        for text, (_, cat) in zip(prompts, train_rows):
            for name, raw in zip(names, ETHICS_CATEGORIES):
                data["prompt"].append(text)
                data["category"].append(name)
                data["label"].append(float(raw == cat))
        loss = CosineSimilarityLoss(model)
    dataset = Dataset.from_dict(data)
    train_started = time.perf_counter()
    _train(
        model,
        dataset,
        loss,
        out_dir,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        show_progress=show_progress,
    )
    train_seconds = time.perf_counter() - train_started

    # Validation scores → accuracy and calibration.
    model.eval()
    extra_rows = load_ethics_csv(validation_csv) if validation_csv is not None else []
    calibration_rows = val_rows + extra_rows
    scores = _ethics_scores(model, prep.batch([p for p, _ in calibration_rows]), names)
    labels = [c for _, c in calibration_rows]
    thresholds, veto, stats = calibrate_ethics(
        scores, labels, margin=margin, max_false_flags=max_false_flags
    )
    n_val = len(val_rows)

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    summary = {
        "task": "ethics",
        "preprocess": preprocess,
        "categories": list(ETHICS_CATEGORIES),
        "thresholds": thresholds,
        "normal_veto": veto,
        "base": str(base_dir),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "balance": balance,
        "objective": str(objective),
        "margin": margin,
        "grouped": grouped,
        "freeze_embeddings": frozen,
        "train_prompts": len(train_rows),
        "val_prompts": len(val_rows),
        "val_accuracy": argmax_accuracy(scores[:n_val], labels[:n_val]),
        "val_paraphrases": len(extra_rows),
        "val_paraphrase_accuracy": argmax_accuracy(scores[n_val:], labels[n_val:]),
        **stats,
    }
    write_sbert_config(out_dir, summary)
    return {
        **summary,
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "out_dir": str(out_dir),
    }


def argmax_accuracy(scores: Sequence[dict[str, float]], labels: Sequence[str]) -> float:
    """The share of prompts whose highest-scoring category is their label (0.0 for none)."""
    right = sum(max(s, key=s.__getitem__) == y for s, y in zip(scores, labels))
    return round(right / len(labels), 4) if labels else 0.0


def _ethics_scores(model, texts: Sequence[str], names: Sequence[str]) -> list[dict[str, float]]:
    if not texts:
        return []
    emb = model.encode(
        list(texts),
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=False,
        batch_size=128,
    )
    cat = model.encode(
        list(names), convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
    )
    return [dict(zip(ETHICS_CATEGORIES, row)) for row in (emb @ cat.T).tolist()]


def load_memory_pairs(path: Path) -> list[tuple[str, str, float]]:
    """``(memory_0, user_prompt_1, similarity_score)`` pairs of a memory CSV (§4.3)."""
    return [
        (r["memory_0"], r["user_prompt_1"], float(r["similarity_score"])) for r in read_csv(path)
    ]


def load_memory_combs(path: Path) -> tuple[list[tuple[str, str]], dict[tuple[int, int], float]]:
    """The combs (memory, user prompt) of a memory CSV and the label of each (i, j) row:
    the label of pair (memory of comb i, prompt of comb j)."""
    combs: dict[tuple[str, str], int] = {}
    labels: dict[tuple[int, int], float] = {}
    for r in read_csv(path):
        i = combs.setdefault((r["memory_0"], r["user_prompt_0"]), len(combs))
        j = combs.setdefault((r["memory_1"], r["user_prompt_1"]), len(combs))
        labels[(i, j)] = float(r["similarity_score"])
    return list(combs), labels


def memory_key_class(memory: str) -> tuple[str, ...] | None:
    """What a memory item's label depends on (§4.3): its key, or its value when the key is
    상태; 좋아하는 아이돌 counts as 좋아하는 가수. None when the item is not ``[key: value]``."""
    text = memory.strip()
    if not (text.startswith("[") and text.endswith("]") and ":" in text):
        return None
    key, value = (part.strip() for part in text[1:-1].split(":", 1))
    if key == "좋아하는 아이돌":
        key = "좋아하는 가수"
    return ("상태", value) if key == "상태" else (key,)


def load_memory_extra(data_dir: Path = DATA_DIR) -> list[tuple[str, str]]:
    """(memory item, user prompt) rows of the LLM fine-tuning set's *train* split whose
    ``memory`` column holds an item: more prompts for the retriever (no test rows)."""
    rows = read_csv(data_dir / "OhLoRA_fine_tuning_v3.csv")
    return [
        (r["memory"].strip(), r["input_data"])
        for r in rows
        if r.get("data_type") == "train" and memory_key_class(r.get("memory") or "")
    ]


def _memory_matrix_loss_class():
    import torch
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    class CombMatrixCosineSimilarityLoss(CosineSimilarityLoss):
        """`CosineSimilarityLoss` over every (memory_i, prompt_j) pair of a batch of combs.

        Rows are (memory, prompt, key-class index); the loss is the MSE between
        cos(memory_i, prompt_j) and the label of (class_i, class_j) from the train CSV, over all
        B×B pairs of the batch whose label is known. Each text is encoded once per batch instead of once per pair.
        """

        table: torch.Tensor  # a buffer (`register_buffer`), so it moves with the model

        def __init__(self, model, table, same_side_weight: float = 0.0):
            super().__init__(model)
            self.register_buffer("table", table, persistent=False)
            self.same_side_weight = same_side_weight

        def forward(self, sentence_features, labels):
            features = list(sentence_features)
            memories = self.model(features[0])["sentence_embedding"]
            prompts = self.model(features[1])["sentence_embedding"]
            cos = (
                torch.nn.functional.normalize(memories, dim=-1)
                @ torch.nn.functional.normalize(prompts, dim=-1).T
            )
            index = labels.long()
            target = self.table.to(cos.device)[index][:, index].to(cos.dtype)
            known = ~torch.isnan(target)
            loss = self.loss_fct(self.cos_score_transformation(cos)[known], target[known])
            if self.same_side_weight:
                # The label is about the two combs' keys, so it holds for (memory_i, memory_j)
                # and (prompt_i, prompt_j) too (the CSV's memory_1 / user_prompt_0 columns).
                for emb in (memories, prompts):
                    unit = torch.nn.functional.normalize(emb, dim=-1)
                    side = unit @ unit.T
                    loss = loss + self.same_side_weight * self.loss_fct(
                        self.cos_score_transformation(side)[known], target[known]
                    )
            return loss

    return CombMatrixCosineSimilarityLoss


def _memory_training_set(
    model,
    combs,
    labels,
    memories,
    prompts,
    use_combs,
    *,
    prep,
    grouped,
    extra_pairs,
    same_side_weight,
    data_dir,
    max_rows,
    seed,
):
    """(dataset, loss, extra rows) for training on the combs ``use_combs``."""
    import torch
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    train_combs = list(use_combs)
    extra_rows = 0
    if grouped:
        # Labels depend only on the two combs' key classes (§4.3), so rows are (memory, prompt,
        # class) and the table is class × class, built from the training combs' rows alone.
        classes = [memory_key_class(m) for m, _ in combs]
        class_ids: dict[tuple[str, ...] | None, int] = {}
        for i in train_combs:
            class_ids.setdefault(classes[i], len(class_ids))
        table = torch.full((len(class_ids), len(class_ids)), float("nan"))
        for i in train_combs:
            for j in train_combs:
                if (i, j) in labels:
                    table[class_ids[classes[i]], class_ids[classes[j]]] = labels[(i, j)]
        rows = [(memories[i], prompts[i], class_ids[classes[i]]) for i in train_combs]
        if extra_pairs:
            extra = [
                (m, p) for m, p in load_memory_extra(data_dir) if memory_key_class(m) in class_ids
            ]
            if max_rows is not None:
                extra = extra[:max_rows]
            extra_rows = len(extra)
            extra_memories = prep.batch([m for m, _ in extra])
            extra_prompts = prep.batch([p for _, p in extra])
            rows += [
                (extra_memories[k], extra_prompts[k], class_ids[memory_key_class(raw)])
                for k, (raw, _) in enumerate(extra)
            ]
        random.Random(seed).shuffle(rows)
        dataset = Dataset.from_dict(
            {
                "memory": [m for m, _, _ in rows],
                "prompt": [p for _, p, _ in rows],
                "label": [c for _, _, c in rows],
            }
        )
        loss = _memory_matrix_loss_class()(model, table, same_side_weight)
    else:
        train_pairs = [(i, j) for i in train_combs for j in train_combs if (i, j) in labels]
        random.Random(seed).shuffle(train_pairs)
        dataset = Dataset.from_dict(
            {
                "memory": [memories[i] for i, _ in train_pairs],
                "prompt": [prompts[j] for _, j in train_pairs],
                "score": [labels[p] for p in train_pairs],
            }
        )
        loss = CosineSimilarityLoss(model)
    return dataset, loss, extra_rows


def train_memory(
    preset: Preset,
    *,
    epochs: float | None = None,
    seed: int = 0,
    size: str = "tiny",
    max_rows: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    val_fraction: float = 0.1,
    grouped: bool = True,
    same_side_weight: float | None = None,
    extra_pairs: bool | None = None,
    freeze_embeddings: bool = False,
    refit: bool | None = None,
    data_dir: Path = DATA_DIR,
    out_dir: Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train, calibrate and save the memory retriever to ``preset.sbert_dir('memory')``.

    Pairs (memory_0, user_prompt_1, similarity_score) of the v2 train CSV, cosine MSE.
    Validation holds out a seeded ``val_fraction`` of the *combs* (lines of the combs file), like
    the test set, whose combs are all new: validation pairs are (any memory, held-out prompt),
    training pairs use no held-out comb. The retrieval threshold maximises F1 of
    (label == 1.0) vs (cosine ≥ t) on the validation pairs.

    ``grouped`` (default): rows are combs and each batch trains on all its B×B pairs
    (`CombMatrixCosineSimilarityLoss`), so an epoch is one pass over the combs; otherwise rows
    are the pairs themselves with `CosineSimilarityLoss` (an epoch is one pass over the pairs).
    ``max_rows`` caps the number of combs (for quick runs). ``refit`` trains a second model on
    all the combs after calibrating on the first and saves that one (twice the time). Settings
    left as None take the base kind's defaults (`MEMORY_DEFAULTS`, `USE_MEMORY_DEFAULTS`).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir or preset.sbert_dir("memory"))
    base_dir, preprocess, model = _prepare(preset, size, seed, show_progress, "memory")
    chosen = _settings(
        base_dir,
        "memory",
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "same_side_weight": same_side_weight,
            "extra_pairs": extra_pairs,
            "refit": refit,
        },
    )
    epochs, batch_size, lr = chosen["epochs"], chosen["batch_size"], chosen["lr"]
    same_side_weight, extra_pairs, refit = (
        chosen["same_side_weight"],
        chosen["extra_pairs"],
        chosen["refit"],
    )
    prep = get_preprocessor(preprocess)
    frozen = _freeze_word_embeddings(model, freeze_embeddings)

    combs, labels = load_memory_combs(data_dir / "v2_memory_sbert" / "train_dataset.csv")
    order = list(range(len(combs)))
    random.Random(seed).shuffle(order)
    if max_rows is not None:
        order = order[: max(4, max_rows)]
    n_val = max(1, round(len(order) * val_fraction))
    val_combs, train_combs = order[:n_val], order[n_val:]
    memories = prep.batch([m for m, _ in combs])
    prompts = prep.batch([p for _, p in combs])

    def build(model, use_combs):
        return _memory_training_set(
            model,
            combs,
            labels,
            memories,
            prompts,
            use_combs,
            prep=prep,
            grouped=grouped,
            extra_pairs=extra_pairs,
            same_side_weight=same_side_weight,
            data_dir=data_dir,
            max_rows=max_rows,
            seed=seed,
        )

    dataset, loss, extra_rows = build(model, train_combs)
    train_started = time.perf_counter()
    _train(
        model,
        dataset,
        loss,
        out_dir,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        show_progress=show_progress,
    )
    train_seconds = time.perf_counter() - train_started

    model.eval()
    val_pairs = [(i, j) for j in val_combs for i in order if (i, j) in labels]
    val_scores = _cosines(
        model, [memories[i] for i, _ in val_pairs], [prompts[j] for _, j in val_pairs]
    )
    val_labels = [labels[p] for p in val_pairs]
    threshold, stats = calibrate_memory(val_scores, val_labels)
    mse = sum((a - b) ** 2 for a, b in zip(val_scores, val_labels)) / max(1, len(val_pairs))

    if refit:
        # Same settings, a fresh start from the base, every comb; keeps the calibration above.
        from transformers import set_seed

        set_seed(seed)
        model = load_base_model(base_dir, **USE_HEADS["memory"])
        _freeze_word_embeddings(model, freeze_embeddings)
        dataset, loss, extra_rows = build(model, order)
        refit_started = time.perf_counter()
        _train(
            model,
            dataset,
            loss,
            out_dir,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            show_progress=show_progress,
        )
        train_seconds += time.perf_counter() - refit_started
        model.eval()

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    summary = {
        "task": "memory",
        "preprocess": preprocess,
        "memory_threshold": threshold,
        "base": str(base_dir),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "grouped": grouped,
        "same_side_weight": same_side_weight if grouped else 0.0,
        "freeze_embeddings": frozen,
        "extra_pairs": extra_rows,
        "refit": refit,
        "train_combs": len(order) if refit else len(train_combs),
        "val_combs": len(val_combs),
        "val_pairs": len(val_pairs),
        "val_mse": round(mse, 4),
        "val_r": round(_pearson(val_scores, val_labels), 4),
        **stats,
    }
    write_sbert_config(out_dir, summary)
    return {
        **summary,
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "out_dir": str(out_dir),
    }


def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    n = len(a)
    if n < 2:
        return 0.0
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else 0.0
