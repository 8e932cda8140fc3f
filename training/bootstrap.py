"""Build the embedded default ("tiny" preset) from the shipped data only, resumably.

Stages run in order; each finished stage is recorded in the manifest, so an interrupted
bootstrap resumes where it stopped, and changed data rebuilds everything. Each stage runs
seeded from the same seed on a fixed thread count (`training.reproducible`), so a resumed build
equals an uninterrupted one, and the sha256 of every file it wrote goes into the manifest:
`verify` checks the files on disk against it, and two builds compare with
`training.manifest.compare_checksums`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from engine.runtime.presets import ROLES, Base, Preset
from training.data import HELD_OUT_ROLES
from training.manifest import (
    MANIFEST_VERSION,
    Difference,
    Manifest,
    artifact_checksums,
    compare_checksums,
    data_hashes,
    directory_bytes,
)
from training.reproducible import TRAIN_THREADS, reproducible

log = logging.getLogger(__name__)

DEFAULT_SEED = 0


@dataclass(frozen=True)
class Stage:
    name: str
    outputs: Callable[[Preset], list[Path]]
    run: Callable[[Preset, int], dict[str, Any]]
    # Raised when the stage's recipe changes: a build recorded with an older one reruns it.
    version: int = 1


def _tokenizer(preset: Preset, seed: int) -> dict[str, Any]:
    from training.data import load_rows, pretraining_text
    from training.tokenizer import build_tokenizer

    rows = load_rows("train") + load_rows("valid")
    texts = [pretraining_text(role, r) for r in load_rows("train") for role in ROLES]
    texts += [r.input_data for r in rows] + [r.output_message for r in rows]
    tok = build_tokenizer(texts, preset.artifacts / "tokenizer")
    return {"vocab_size": len(tok)}


def _pretrain(kind: Base) -> Callable[[Preset, int], dict[str, Any]]:
    def run(preset: Preset, seed: int) -> dict[str, Any]:
        from transformers import AutoTokenizer

        from training.data import load_rows, pretraining_texts
        from training.pretrain import TINY_EPOCHS, pretrain_base

        roles = [r for r in ROLES if preset.roles[r].base == kind]
        texts = pretraining_texts(roles, load_rows("train"))
        tok = AutoTokenizer.from_pretrained(preset.artifacts / "tokenizer")
        out = Path(preset.kanana_base if kind == "kanana" else preset.polyglot_base)
        return pretrain_base(kind, tok, texts, out, epochs=TINY_EPOCHS[kind], seed=seed)

    return run


def _adapter_outputs(role: str) -> Callable[[Preset], list[Path]]:
    return lambda preset: [preset.adapter_dir(role)]


def _adapter(role: str) -> Callable[[Preset, int], dict[str, Any]]:
    def run(preset: Preset, seed: int) -> dict[str, Any]:
        from training.finetune import finetune_role

        return finetune_role(preset, role, seed=seed)

    return run


def _encoder(preset: Preset, seed: int) -> dict[str, Any]:
    from training.encoder import build_encoder, encoder_corpus

    return build_encoder(encoder_corpus(), Path(preset.sbert_base), seed=seed)


def _use_base_outputs(preset: Preset) -> list[Path]:
    from training.sbert import use_base_dir

    return [use_base_dir(preset)]


def _use_base(preset: Preset, seed: int) -> dict[str, Any]:
    from training.encoder import build_use_base, encoder_corpus
    from training.sbert import use_base_dir

    return build_use_base(encoder_corpus(), use_base_dir(preset), seed=seed)


def _sbert(task: str) -> Callable[[Preset, int], dict[str, Any]]:
    def run(preset: Preset, seed: int) -> dict[str, Any]:
        from training.sbert import train_ethics, train_memory

        return (train_ethics if task == "ethics" else train_memory)(preset, seed=seed)

    return run


# Version 2 of the bases and of the background roles' adapters: trained without the held-out
# train rows of those roles (`training.data.HELD_OUT_ROLES`, issue 20).
HELD_OUT_VERSION = 2

STAGES: tuple[Stage, ...] = (
    Stage("tokenizer", lambda p: [p.artifacts / "tokenizer"], _tokenizer),
    Stage("kanana_base", lambda p: [Path(p.kanana_base)], _pretrain("kanana"), HELD_OUT_VERSION),
    Stage(
        "polyglot_base", lambda p: [Path(p.polyglot_base)], _pretrain("polyglot"), HELD_OUT_VERSION
    ),
    *(
        Stage(
            f"adapter_{r}",
            _adapter_outputs(r),
            _adapter(r),
            HELD_OUT_VERSION if r in HELD_OUT_ROLES else 1,
        )
        for r in ROLES
    ),
    Stage("sbert_encoder", lambda p: [Path(p.sbert_base)], _encoder),
    Stage("sbert_use_base", _use_base_outputs, _use_base),
    # Issue 20: the ethics S-BERT is a trained Dense head on this frozen USE + n-gram base. A
    # build from before lacks the stage, so it is stale and everything from here reruns.
    # Version 2: trained with the softmax objective (`training.sbert.EthicsObjective`).
    # Version 3: its input module has the Kiwi morpheme-similarity block (`USE_HEADS`).
    Stage("sbert_ethics", lambda p: [p.sbert_dir("ethics")], _sbert("ethics"), 3),
    Stage("sbert_memory", lambda p: [p.sbert_dir("memory")], _sbert("memory")),
)


def is_built(preset: Preset) -> bool:
    """True when a complete manifest exists for the data shipped now (with or without
    checksums: builds of manifest version 1 count) and no stage it recorded was built by an
    older version of that stage (`Stage.version`: then `bootstrap` reruns that stage)."""
    manifest = Manifest.load(preset.manifest_path)
    return bool(
        manifest
        and manifest.complete
        and manifest.data == data_hashes()
        and not _outdated(manifest)
    )


def _outdated(manifest: Manifest) -> list[str]:
    """The stages a manifest that records stages lacks, or recorded with another
    `Stage.version` than today's (a manifest recording no stage at all is not checked)."""
    if not manifest.stages:
        return []
    return [
        s.name
        for s in STAGES
        if (record := manifest.stages.get(s.name)) is None or record.version != s.version
    ]


def _stale(manifest: Manifest, hashes: dict[str, str], seed: int, threads: int | None) -> bool:
    """Another data set, seed or asked-for thread count starts over (a manifest that recorded
    no thread count, version 1, is resumed)."""
    return (
        manifest.data != hashes
        or manifest.seed != seed
        or (threads is not None and manifest.threads not in (None, threads))
    )


def bootstrap(
    preset: Preset, *, seed: int = DEFAULT_SEED, force: bool = False, threads: int | None = None
) -> Manifest:
    """Run every stage not yet done for this data, seed and thread count (None: the one the
    manifest recorded, else `TRAIN_THREADS`); returns the saved manifest. Stages done by an
    older version get their files' checksums added."""
    if preset.name != "tiny":
        raise ValueError("bootstrap builds the tiny preset; production bases are downloaded")
    hashes = data_hashes()
    loaded = Manifest.load(preset.manifest_path)
    if loaded is not None and not force and not _stale(loaded, hashes, seed, threads):
        manifest = loaded
    else:
        manifest = Manifest(
            preset=preset.name, seed=seed, data=hashes, threads=threads or TRAIN_THREADS
        )
    threads = threads or manifest.threads or TRAIN_THREADS
    manifest.complete = False
    bar = tqdm(STAGES, desc="OhLoRA tiny models", unit="stage")
    rerun = False  # once a stage runs, every later one does (it may build on that one)
    for stage in bar:
        bar.set_postfix_str(stage.name)
        outputs = stage.outputs(preset)
        done = manifest.stages.get(stage.name)
        if (
            not rerun
            and done is not None
            and done.version == stage.version
            and all(p.exists() for p in outputs)
        ):
            if not done.files:
                done.files = artifact_checksums(outputs, preset.artifacts)
            continue
        rerun = True
        for out in outputs:
            shutil.rmtree(out, ignore_errors=True)  # never build on a half-written stage
        start = time.perf_counter()
        with reproducible(seed, threads):  # every stage from the seed: resuming changes nothing
            metrics = stage.run(preset, seed)
        manifest.record(
            stage.name,
            time.perf_counter() - start,
            metrics,
            artifact_checksums(outputs, preset.artifacts),
            stage.version,
        )
        manifest.save(preset.manifest_path)
        log.info("stage %s done in %.0f s", stage.name, manifest.stages[stage.name].seconds)
    manifest.artifact_bytes = directory_bytes(preset.artifacts)
    manifest.version = MANIFEST_VERSION  # every stage has its checksums now
    manifest.complete = True
    manifest.save(preset.manifest_path)
    return manifest


@dataclass(frozen=True)
class Verification:
    """The files of a build on disk against its manifest."""

    differences: list[Difference]
    files: int  # files the manifest lists
    unrecorded: list[str]  # stages without checksums (an older build): not verified
    complete: bool  # the manifest says every stage was built

    @property
    def ok(self) -> bool:
        return self.complete and bool(self.files) and not self.differences and not self.unrecorded


def verify(preset: Preset, manifest: Manifest | None = None) -> Verification:
    """Compare every stage output on disk with the checksums in ``manifest`` (default: the
    preset's own): a file missing, changed or not listed is a difference."""
    if manifest is None:
        manifest = Manifest.load(preset.manifest_path)
    if manifest is None:
        raise FileNotFoundError(f"no readable manifest at {preset.manifest_path}")
    recorded = [s for s in STAGES if s.name in manifest.stages and manifest.stages[s.name].files]
    on_disk = artifact_checksums([p for s in recorded for p in s.outputs(preset)], preset.artifacts)
    expected = {
        path: digest for s in recorded for path, digest in manifest.stages[s.name].files.items()
    }
    return Verification(
        compare_checksums(expected, on_disk),
        len(expected),
        manifest.unrecorded_stages,
        manifest.complete,
    )
