"""Bootstrap orchestration: stages run once, resume after a crash, rebuild on new data."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.runtime.presets import tiny
from training import bootstrap as boot
from training.manifest import Manifest


def _stages(
    calls: list[str], fail_at: str | None = None, versions: dict[str, int] | None = None
) -> tuple[boot.Stage, ...]:
    def make(name: str) -> boot.Stage:
        def run(preset, seed):  # type: ignore[no-untyped-def]
            calls.append(name)
            out = preset.artifacts / name
            out.mkdir(parents=True)
            (out / "weights.bin").write_bytes(b"x" * 10)
            if name == fail_at:
                raise RuntimeError("killed mid-stage")
            return {"loss": 0.5}

        return boot.Stage(name, lambda p: [p.artifacts / name], run, (versions or {}).get(name, 1))

    return tuple(make(n) for n in ("a", "b", "c"))


def test_runs_each_stage_once_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(boot, "STAGES", _stages(calls))
    preset = tiny(tmp_path)
    manifest = boot.bootstrap(preset)
    assert calls == ["a", "b", "c"]
    assert manifest.complete and boot.is_built(preset)
    assert set(manifest.stages) == {"a", "b", "c"} and manifest.artifact_bytes >= 30
    assert manifest.libraries["torch"].startswith("2.13")
    boot.bootstrap(preset)
    assert calls == ["a", "b", "c"]  # nothing re-run


def test_resumes_after_a_crash_and_redoes_the_broken_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    preset = tiny(tmp_path)
    monkeypatch.setattr(boot, "STAGES", _stages(calls, fail_at="b"))
    with pytest.raises(RuntimeError):
        boot.bootstrap(preset)
    assert not boot.is_built(preset)
    monkeypatch.setattr(boot, "STAGES", _stages(calls))
    boot.bootstrap(preset)  # b's half-written folder is removed, so mkdir succeeds
    assert calls == ["a", "b", "b", "c"]
    assert boot.is_built(preset)


def test_changed_data_or_seed_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    preset = tiny(tmp_path)
    monkeypatch.setattr(boot, "STAGES", _stages(calls))
    boot.bootstrap(preset)
    manifest = Manifest.load(preset.manifest_path)
    assert manifest is not None
    manifest.data = {"OhLoRA_fine_tuning_v3.csv": "stale"}
    manifest.save(preset.manifest_path)
    assert not boot.is_built(preset)
    boot.bootstrap(preset)
    assert calls == ["a", "b", "c"] * 2
    boot.bootstrap(preset, seed=1)
    assert calls == ["a", "b", "c"] * 3


def test_corrupt_manifest_counts_as_not_built(tmp_path: Path) -> None:
    preset = tiny(tmp_path)
    preset.artifacts.mkdir(parents=True)
    preset.manifest_path.write_text("{not json", encoding="utf-8")
    assert Manifest.load(preset.manifest_path) is None
    assert not boot.is_built(preset)


def test_a_stage_whose_recipe_changed_reruns_with_every_later_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    preset = tiny(tmp_path)
    monkeypatch.setattr(boot, "STAGES", _stages(calls))
    boot.bootstrap(preset)
    monkeypatch.setattr(boot, "STAGES", _stages(calls, versions={"b": 2}))
    assert not boot.is_built(preset)
    boot.bootstrap(preset)
    assert calls == ["a", "b", "c", "b", "c"]
    assert boot.is_built(preset)
    manifest = Manifest.load(preset.manifest_path)
    assert manifest is not None and manifest.stages["b"].version == 2


def test_the_stages_trained_without_the_held_out_rows_are_a_new_recipe() -> None:
    """A build from before the held-out rows existed is stale from its first base on."""
    versions = {s.name: s.version for s in boot.STAGES}
    assert versions["kanana_base"] == versions["polyglot_base"] == boot.HELD_OUT_VERSION
    for role in ("summary", "memory", "eyes_mouth_pose"):
        assert versions[f"adapter_{role}"] == boot.HELD_OUT_VERSION
    assert versions["adapter_output_message"] == versions["tokenizer"] == 1


def test_an_ethics_model_of_an_older_recipe_is_stale() -> None:
    """The softmax objective (version 2) and the morpheme-similarity block (version 3) are new
    recipes of the ethics stage, so a build holding an older model retrains it (and the memory
    S-BERT after it); the shared USE base is unchanged (the block is added at training time)."""
    from training.sbert import USE_ETHICS_DEFAULTS, USE_HEADS, EthicsObjective

    versions = {s.name: s.version for s in boot.STAGES}
    assert USE_ETHICS_DEFAULTS["objective"] is EthicsObjective.SOFTMAX
    assert USE_HEADS["ethics"]["morpheme_scale"] > 0
    assert versions["sbert_ethics"] == 3
    assert versions["sbert_memory"] == versions["sbert_use_base"] == 1
