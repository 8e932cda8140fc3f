"""Reproducible builds: a toy bootstrap twice with one seed writes the same files, the manifest
records their checksums, `verify` finds any change, and old manifests still count as built."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.runtime.presets import Preset, tiny
from tests.conftest import clean_env
from tests.training.conftest import ToyWorkspace
from training import bootstrap as boot
from training.__main__ import EXIT_DIFFERENT, EXIT_FAILED, EXIT_OK, main
from training.manifest import Change, Difference, Manifest, compare_checksums, file_sha256
from training.reproducible import reproducible

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 600
TOY_ROWS = 16  # train rows of the toy bases
TOY_EPOCHS = 2
TOY_ADAPTER_ROWS = 8
TOY_ENCODER_TEXTS = 200
TOY_SBERT_ROWS = 40
TOY_THREADS = 1


def _toy_stages() -> tuple[boot.Stage, ...]:
    """The bootstrap's stages at toy size (same functions, same output folders)."""
    from transformers import AutoTokenizer

    from training.data import corpus_texts, load_rows, pretraining_texts
    from training.encoder import build_encoder, encoder_corpus
    from training.finetune import finetune_role
    from training.pretrain import base_roles, pretrain_base
    from training.sbert import train_ethics, train_memory
    from training.tokenizer import build_tokenizer

    def tokenizer(preset: Preset, seed: int) -> dict[str, Any]:
        return {"vocab_size": len(build_tokenizer(corpus_texts(), preset.artifacts / "tokenizer"))}

    def base(kind: str) -> Callable[[Preset, int], dict[str, Any]]:
        def run(preset: Preset, seed: int) -> dict[str, Any]:
            tok = AutoTokenizer.from_pretrained(preset.artifacts / "tokenizer")
            texts = pretraining_texts(base_roles(kind), load_rows("train")[:TOY_ROWS])
            out = Path(preset.kanana_base if kind == "kanana" else preset.polyglot_base)
            return pretrain_base(kind, tok, texts, out, epochs=TOY_EPOCHS, size="toy", seed=seed)

        return run

    def adapter(role: str) -> Callable[[Preset, int], dict[str, Any]]:
        return lambda preset, seed: finetune_role(
            preset, role, epochs=1, max_rows=TOY_ADAPTER_ROWS, seed=seed
        )

    def encoder(preset: Preset, seed: int) -> dict[str, Any]:
        return build_encoder(
            encoder_corpus()[:TOY_ENCODER_TEXTS],
            Path(preset.sbert_base),
            size="toy",
            mlm_epochs=1,
            seed=seed,
            show_progress=False,
        )

    def ethics(preset: Preset, seed: int) -> dict[str, Any]:
        return train_ethics(
            preset, epochs=1, max_rows=TOY_SBERT_ROWS, seed=seed, size="toy", show_progress=False
        )

    def memory(preset: Preset, seed: int) -> dict[str, Any]:
        return train_memory(
            preset, epochs=1, max_rows=TOY_SBERT_ROWS, seed=seed, size="toy", show_progress=False
        )

    by_name = {
        "tokenizer": tokenizer,
        "kanana_base": base("kanana"),
        "polyglot_base": base("polyglot"),
        "sbert_encoder": encoder,
        "sbert_ethics": ethics,
        "sbert_memory": memory,
        "adapter_output_message": adapter("output_message"),
        "adapter_memory": adapter("memory"),
    }
    return tuple(
        boot.Stage(s.name, s.outputs, by_name[s.name]) for s in boot.STAGES if s.name in by_name
    )


def build_toy(root: Path) -> Preset:
    """One toy build under ``root`` (seed 0, `TOY_THREADS`)."""
    preset = tiny(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boot, "STAGES", _toy_stages())
        boot.bootstrap(preset, seed=0, threads=TOY_THREADS)
    return preset


@pytest.fixture(scope="module")
def toy_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Preset, Preset]:
    """The toy build twice with the same seed: here, and in another folder by another process
    (another string-hash seed, nothing shared in memory)."""
    first = build_toy(tmp_path_factory.mktemp("first"))
    second = tmp_path_factory.mktemp("second")
    code = (
        "import sys; from pathlib import Path; "
        "from tests.training.test_reproducible import build_toy; build_toy(Path(sys.argv[1]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(second)],
        cwd=ROOT,
        env=clean_env(PYTHONHASHSEED="12345"),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return first, tiny(second)


def _manifest(preset: Preset) -> Manifest:
    manifest = Manifest.load(preset.manifest_path)
    assert manifest is not None
    return manifest


def test_the_same_seed_builds_the_same_files(toy_builds: tuple[Preset, Preset]) -> None:
    first, second = (_manifest(p) for p in toy_builds)
    assert first.threads == second.threads == TOY_THREADS and first.version == 2
    for name, record in first.stages.items():
        assert record.files, f"stage {name} recorded no checksums"
        assert all(len(digest) == 64 for digest in record.files.values())
    assert any(path.endswith(".safetensors") for path in first.checksums)
    assert (
        "adapters/output_message/adapter_config.json" in first.checksums
    )  # names the base's folder
    assert compare_checksums(first.checksums, second.checksums) == []


def test_verify_finds_a_changed_a_missing_and_an_extra_file(
    toy_builds: tuple[Preset, Preset],
) -> None:
    preset = toy_builds[1]
    result = boot.verify(preset)
    assert result.ok and result.files == len(_manifest(preset).checksums) and not result.differences
    weights = preset.adapter_dir("memory") / "adapter_model.safetensors"
    original = weights.read_bytes()
    vocab = preset.artifacts / "tokenizer" / "tokenizer_config.json"
    saved_vocab = vocab.read_bytes()
    extra = Path(preset.sbert_base) / "stray.bin"
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        vocab.unlink()
        extra.write_bytes(b"x")
        result = boot.verify(preset)
        assert not result.ok
        assert result.differences == [
            Difference("adapters/memory/adapter_model.safetensors", Change.CHANGED),
            Difference("sbert_encoder/stray.bin", Change.EXTRA),
            Difference("tokenizer/tokenizer_config.json", Change.MISSING),
        ]
    finally:
        weights.write_bytes(original)
        vocab.write_bytes(saved_vocab)
        extra.unlink(missing_ok=True)
    assert boot.verify(preset).ok


def test_the_verify_command_checks_a_build_and_compares_two(
    toy_builds: tuple[Preset, Preset], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = toy_builds
    root = str(first.artifacts.parent)
    assert main(["--artifacts", root, "verify"]) == EXIT_OK
    assert main(["--artifacts", root, "verify", "--against", str(second.manifest_path)]) == EXIT_OK
    assert "same:" in capsys.readouterr().out
    other = _manifest(second)
    other.seed = 1
    other.stages["kanana_base"].files["kanana_base/model.safetensors"] = "0" * 64
    other.save(tmp_path / "other.json")
    assert (
        main(["--artifacts", root, "verify", "--against", str(tmp_path / "other.json")])
        == EXIT_DIFFERENT
    )
    out = capsys.readouterr().out
    assert "changed: kanana_base/model.safetensors" in out and "note: seed: 0 != 1" in out


def test_finetune_role_is_seeded_whatever_ran_before(
    toy_workspace: ToyWorkspace, tmp_path: Path
) -> None:
    """The LoRA weights' random init comes from the seed, not from the generator's state."""
    from training.finetune import finetune_role

    weights = []
    for draw in (1, 7):
        torch.manual_seed(draw)  # what earlier work left in the generator
        out = tmp_path / f"after{draw}"
        finetune_role(
            toy_workspace.preset, "memory", max_rows=TOY_ADAPTER_ROWS, seed=0, output_dir=out
        )
        weights.append(file_sha256(out / "adapter_model.safetensors"))
    assert weights[0] == weights[1]


def test_reproducible_restores_the_callers_torch_settings() -> None:
    threads = torch.get_num_threads()
    with reproducible(3, threads=threads + 1):
        assert torch.get_num_threads() == threads + 1
        assert torch.are_deterministic_algorithms_enabled()
        drawn = torch.rand(3)
    with reproducible(3, threads=threads + 1):
        assert torch.equal(torch.rand(3), drawn)  # seeded
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


# ---- compatibility with builds of manifest version 1 (no checksums) ----------------------


def _version_1_build(preset: Preset) -> None:
    """Artifacts and a manifest exactly as the bootstrap wrote them before checksums."""
    from training.manifest import data_hashes

    for stage in boot.STAGES:
        for out in stage.outputs(preset):
            out.mkdir(parents=True, exist_ok=True)
            (out / "weights.bin").write_bytes(stage.name.encode())
    stages = {
        s.name: {"seconds": 1.0, "metrics": {}, "finished_at": "2026-12-01T23:17:43+00:00"}
        for s in boot.STAGES
    }
    old = {
        "preset": "tiny",
        "seed": 0,
        "data": data_hashes(),
        "libraries": {"torch": "2.13.0"},
        "stages": stages,
        "evaluation": {},
        "artifact_bytes": 10,
        "complete": True,
        "version": 1,
    }
    preset.manifest_path.write_text(json.dumps(old), encoding="utf-8")


def test_a_version_1_build_is_still_built_and_gets_checksums_without_rebuilding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every stage at its first recipe, as when manifests had no checksums (a stage whose recipe
    # changed since is stale whatever the manifest's format: `test_bootstrap`).
    monkeypatch.setattr(
        boot, "STAGES", tuple(boot.Stage(s.name, s.outputs, s.run) for s in boot.STAGES)
    )
    preset = tiny(tmp_path)
    _version_1_build(preset)
    assert boot.is_built(preset)
    manifest = _manifest(preset)
    assert manifest.threads is None and manifest.checksums == {}
    assert set(manifest.unrecorded_stages) == {s.name for s in boot.STAGES}
    assert not boot.verify(preset).ok
    assert main(["--artifacts", str(tmp_path), "verify"]) == EXIT_DIFFERENT
    assert "built by an older version" in capsys.readouterr().out

    def never(preset: Preset, seed: int) -> dict[str, Any]:
        raise AssertionError("a built stage was run again")

    monkeypatch.setattr(
        boot, "STAGES", tuple(boot.Stage(s.name, s.outputs, never) for s in boot.STAGES)
    )
    boot.bootstrap(preset)  # nothing rebuilt: only the checksums are added
    manifest = _manifest(preset)
    assert manifest.unrecorded_stages == [] and manifest.version == 2
    assert (
        manifest.checksums["tokenizer/weights.bin"]
        == boot.artifact_checksums([preset.artifacts / "tokenizer"], preset.artifacts)[
            "tokenizer/weights.bin"
        ]
    )
    assert boot.is_built(preset) and boot.verify(preset).ok


def test_sbert_command_passes_the_chosen_ethics_objective(tmp_path: Path, monkeypatch) -> None:
    """`python -m training sbert --task ethics --objective mse` trains with that objective; left
    out, the base's default (None) applies; on the memory task the flag is refused."""
    import training.sbert
    from training.sbert import EthicsObjective

    seen: list[object] = []
    monkeypatch.setattr(
        training.sbert, "train_ethics", lambda preset, seed, objective: seen.append(objective) or {}
    )
    root = str(tmp_path)
    assert main(["--artifacts", root, "sbert", "--task", "ethics", "--objective", "mse"]) == EXIT_OK
    assert main(["--artifacts", root, "sbert", "--task", "ethics"]) == EXIT_OK
    assert seen == [EthicsObjective.MSE, None]
    assert main(["--artifacts", root, "sbert", "--task", "memory", "--objective", "mse"]) == (
        EXIT_FAILED
    )
