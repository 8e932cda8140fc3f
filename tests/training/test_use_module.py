"""The frozen USE + character n-gram input module: features, save/load, runtime loading gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from engine.runtime.morphemes import content_morphemes, morpheme_similarities
from engine.runtime.sbert import EthicsClassifier, MemoryRetriever, load_sentence_transformer
from engine.runtime.use_module import (
    MODULE_TYPE,
    USE_DIM,
    USEFeatures,
    char_ngrams,
    fit_morpheme_anchors,
    fit_ngrams,
)
from training.encoder import KIND_USE, build_use_base
from training.sbert import base_kind, load_base_model

torch.set_num_threads(1)

TEXTS = ["로라야 사랑해", "정치 얘기 하자", "사랑해 로라", "정치 싫어", "밥 먹었어?"]


def test_char_ngrams_and_fit() -> None:
    grams = char_ngrams("사랑 해")
    assert grams[" 사"] == 1 and grams["사랑 "] == 1 and grams["랑"] == 1
    assert char_ngrams("사랑") == char_ngrams("  사랑 ")  # spacing normalised
    vocab, idf = fit_ngrams(TEXTS, min_df=2, max_features=5)
    assert len(vocab) == len(idf) == 5
    assert all(sum(g in char_ngrams(t) for t in TEXTS) >= 2 for g in vocab)
    assert " " not in vocab


def test_features_are_two_unit_parts() -> None:
    vocab, idf = fit_ngrams(TEXTS)
    module = USEFeatures(vocab, idf, ngram_scale=0.5)
    x = module.features(["로라야 사랑해", "", "xyz"])
    assert x.shape == (3, USE_DIM + len(vocab)) == (3, module.get_embedding_dimension())
    assert torch.allclose(x[:, :USE_DIM].norm(dim=1), torch.ones(3), atol=1e-4)
    assert x[0, USE_DIM:].norm().item() == pytest.approx(0.5, abs=1e-5)
    assert x[2, USE_DIM:].abs().sum().item() == 0.0  # no known n-gram
    again = module.features(["로라야 사랑해"])  # from the cache: identical
    assert torch.equal(again[0], x[0])
    with pytest.raises(ValueError):
        USEFeatures(["a"], [1.0, 2.0])


def test_content_morphemes_and_their_kiwi_similarities() -> None:
    assert content_morphemes(["로라야 우리 데이트할래?", "", "?!"]) == [
        [("로라", "NNP"), ("우리", "NP"), ("데이트", "NNG")],
        [],
        [],
    ]
    near, far, unknown = morpheme_similarities(
        ("연애", "NNG"), [("데이트", "NNG"), ("알고리즘", "NNG"), ("쀍뛟", "NNP")]
    )
    assert near > 0.6 > far and unknown == 0.0  # a form Kiwi does not know counts as 0


def test_morpheme_anchors_are_content_morphemes_of_two_texts() -> None:
    anchors = fit_morpheme_anchors(["로라야 사랑해", "사랑해 로라", "정치 싫어"])
    assert anchors == sorted(anchors) == [("로라", "NNP"), ("사랑", "NNG")]
    assert fit_morpheme_anchors(["정치 싫어"], min_df=1) == [("싫", "VA"), ("정치", "NNG")]


def test_the_morpheme_block_puts_a_new_word_near_the_anchor_it_means() -> None:
    """데이트 is no train word here; Kiwi's embeddings still put it next to the 연애 anchor and
    not next to 정치, which is what lets the head generalise past the train rows' spelling."""
    vocab, idf = fit_ngrams(TEXTS)
    anchors = [("연애", "NNG"), ("정치", "NNG"), ("음식", "NNG")]
    module = USEFeatures(vocab, idf, morpheme_anchors=anchors, morpheme_scale=0.5)
    assert module.get_embedding_dimension() == USE_DIM + len(vocab) + 3
    x = module.features(["우리 데이트할래?", "선거 얘기", "?!"])
    block = x[:, USE_DIM + len(vocab) :]
    assert block[0].norm().item() == pytest.approx(0.5, abs=1e-5)
    assert block[0, 0] > block[0, 1] and block[1, 1] > block[1, 0]
    assert block[2].abs().sum().item() == 0.0  # no content morpheme: no block
    assert torch.equal(
        x[:, : USE_DIM + len(vocab)],
        USEFeatures(vocab, idf).features(["우리 데이트할래?", "선거 얘기", "?!"]),
    )  # the other two parts are untouched
    plain = USEFeatures(vocab, idf)
    plain.set_morpheme_anchors(anchors, 0.5)
    assert torch.allclose(plain.features(["우리 데이트할래?"])[0], x[0], atol=1e-5)


def test_use_base_saves_config_only_and_round_trips(tmp_path: Path) -> None:
    summary = build_use_base(TEXTS * 2, tmp_path / "base")
    base = tmp_path / "base"
    assert summary["kind"] == KIND_USE and base_kind(base) == KIND_USE
    modules = json.loads((base / "modules.json").read_text(encoding="utf-8"))
    assert [m["type"] for m in modules] == [MODULE_TYPE]
    saved = sorted(p.name for p in base.rglob("*") if p.is_file())
    assert not [n for n in saved if n.endswith((".safetensors", ".bin", ".npz"))]
    assert sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) < 200_000

    model = load_base_model(base, hidden=16, out=8)
    emb = model.encode(TEXTS, convert_to_tensor=True)
    assert emb.shape == (len(TEXTS), 8)
    model.save(str(tmp_path / "model"))
    loaded = load_sentence_transformer(tmp_path / "model")
    assert torch.allclose(loaded.encode(TEXTS, convert_to_tensor=True), emb, atol=1e-5)


def test_runtime_classes_load_a_use_model(tmp_path: Path) -> None:
    build_use_base(TEXTS * 2, tmp_path / "base")
    model = load_base_model(tmp_path / "base", hidden=16, out=8)
    out = tmp_path / "model"
    model.save(str(out))
    (out / "ohlora_sbert.json").write_text(
        json.dumps({"preprocess": "none", "thresholds": {"정치": 0.9}, "memory_threshold": 0.5}),
        encoding="utf-8",
    )
    ethics = EthicsClassifier.load(out)
    assert ethics.preprocess == "none" and ethics.thresholds["정치"] == 0.9
    assert len(ethics.scores(["로라야 사랑해", "정치"])) == 2
    memory = MemoryRetriever.load(out)
    assert memory.threshold == 0.5
    assert len(memory.scores("오늘 비 와", ["[오늘 날씨: 비]", "[롤 티어: 실버]"])) == 2


def test_an_unknown_custom_module_is_refused(tmp_path: Path) -> None:
    build_use_base(TEXTS * 2, tmp_path / "base")
    forged = tmp_path / "forged"
    shutil.copytree(tmp_path / "base", forged)
    modules = json.loads((forged / "modules.json").read_text(encoding="utf-8"))
    modules[0]["type"] = "os.system"
    (forged / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_sentence_transformer(forged)


def test_tiny_preset_trains_ethics_on_the_use_base(tmp_path: Path, monkeypatch) -> None:
    import training.sbert
    from engine.runtime.presets import tiny
    from training.sbert import train_ethics, train_memory, use_base_dir

    monkeypatch.setattr(training.sbert, "encoder_corpus", lambda: TEXTS * 2)
    preset = tiny(tmp_path)
    ethics = train_ethics(preset, epochs=1, max_rows=60, show_progress=False)
    assert base_kind(use_base_dir(preset)) == KIND_USE
    assert not Path(preset.sbert_base).exists()  # the morpheme BERT is not needed for ethics
    assert ethics["preprocess"] == "none"
    assert ethics["lr"] == training.sbert.USE_ETHICS_DEFAULTS["lr"]
    assert ethics["objective"] == training.sbert.EthicsObjective.SOFTMAX
    assert ethics["margin"] == training.sbert.USE_ETHICS_DEFAULTS["margin"] == 0.0
    # Its input module has the morpheme block: anchors from the train prompts, saved with it.
    saved = load_sentence_transformer(preset.sbert_dir("ethics"))[0]
    assert saved.morpheme_scale == training.sbert.USE_HEADS["ethics"]["morpheme_scale"]
    assert ("사랑", "NNG") in saved.morpheme_anchors and ("정치", "NNG") in saved.morpheme_anchors
    assert base_kind(use_base_dir(preset)) == KIND_USE
    assert load_sentence_transformer(use_base_dir(preset))[0].morpheme_anchors == []
    classifier = EthicsClassifier.load(preset.sbert_dir("ethics"))
    assert classifier.thresholds == ethics["thresholds"]
    assert classifier.predict("로라야 사랑해") in classifier.categories
    # The memory task trains on the USE base too when asked (measured worse: not the default).
    monkeypatch.setattr(training.sbert, "USE_TASKS", frozenset({"ethics", "memory"}))
    memory = train_memory(preset, epochs=1, max_rows=24, show_progress=False)
    assert memory["lr"] == training.sbert.USE_MEMORY_DEFAULTS["lr"]
    retriever = MemoryRetriever.load(preset.sbert_dir("memory"))
    assert retriever.threshold == memory["memory_threshold"]
    assert retriever.best("오늘 비 와", ["[오늘 날씨: 비]"], threshold=-1.0) is not None


def test_a_changed_or_new_stage_reruns_with_every_later_one(tmp_path: Path, monkeypatch) -> None:
    from engine.runtime.presets import tiny
    from training import bootstrap as boot
    from training.manifest import Manifest

    calls: list[str] = []

    def stage(name: str, version: int = 1) -> boot.Stage:
        def run(preset, seed):  # type: ignore[no-untyped-def]
            calls.append(name)
            (preset.artifacts / name).mkdir(parents=True)
            return {}

        return boot.Stage(name, lambda p: [p.artifacts / name], run, version)

    preset = tiny(tmp_path)
    monkeypatch.setattr(boot, "STAGES", (stage("a"), stage("ethics"), stage("memory")))
    boot.bootstrap(preset)
    assert boot.is_built(preset) and calls == ["a", "ethics", "memory"]
    # A new stage (like sbert_use_base): the old build is stale; it and the later ones rerun.
    monkeypatch.setattr(
        boot, "STAGES", (stage("a"), stage("use_base"), stage("ethics"), stage("memory"))
    )
    assert not boot.is_built(preset)
    boot.bootstrap(preset)
    assert calls[3:] == ["use_base", "ethics", "memory"]
    assert boot.is_built(preset)
    # A stage whose recipe version was raised reruns too.
    monkeypatch.setattr(
        boot, "STAGES", (stage("a"), stage("use_base"), stage("ethics", 2), stage("memory"))
    )
    assert not boot.is_built(preset)
    boot.bootstrap(preset)
    assert calls[6:] == ["ethics", "memory"]
    manifest = Manifest.load(preset.manifest_path)
    assert manifest is not None and manifest.stages["ethics"].version == 2
    assert boot.is_built(preset)
    # A manifest written before stage versions existed loads as version 1 everywhere.
    raw = json.loads(preset.manifest_path.read_text(encoding="utf-8"))
    for record in raw["stages"].values():
        record.pop("version")
    preset.manifest_path.write_text(json.dumps(raw), encoding="utf-8")
    loaded = Manifest.load(preset.manifest_path)
    assert loaded is not None and loaded.stages["a"].version == 1


def test_paraphrase_set_is_new_and_covers_every_category() -> None:
    import csv

    from engine.rules.ethics_rules import ETHICS_CATEGORIES
    from engine.runtime.presets import DATA_DIR
    from training.eval_sbert import PARAPHRASES_CSV

    with PARAPHRASES_CSV.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with (DATA_DIR / "ethics_train_test_dataset.csv").open(encoding="utf-8") as f:
        shipped = {r["user_prompt"] for r in csv.DictReader(f)}
    assert len(rows) >= 60
    assert {r["category"] for r in rows} == set(ETHICS_CATEGORIES)
    assert not {r["user_prompt"] for r in rows} & shipped


def test_seed_spread_table() -> None:
    from training.eval_sbert import spread, spread_lines

    per_seed = {0: {"memory_r": 0.7, "ethics_accuracy": 0.9}, 1: {"memory_r": 0.8}}
    stats = spread(per_seed)
    assert stats["memory_r"] == {"mean": 0.75, "min": 0.7, "max": 0.8}
    assert stats["ethics_accuracy"] == {"mean": 0.9, "min": 0.9, "max": 0.9}
    lines = spread_lines(
        {
            "per_seed": {0: {"memory_r": 0.7}, 1: {"memory_r": 0.8}},
            "spread": spread({0: {"memory_r": 0.7}, 1: {"memory_r": 0.8}}),
        }
    )
    assert "| memory_r | 0.75 | 0.7–0.8 | 0.7 | 0.8 |" in lines


def test_seed_spread_trains_each_seed_in_its_own_folder(tmp_path: Path, monkeypatch) -> None:
    import training.eval_sbert
    import training.sbert
    from engine.runtime.presets import tiny

    trained: list[tuple[str, int, Path]] = []

    def fake(task: str):
        def train(preset, *, seed, out_dir, show_progress):  # type: ignore[no-untyped-def]
            trained.append((task, seed, out_dir))
            return {}

        return train

    monkeypatch.setattr(training.sbert, "train_ethics", fake("ethics"))
    monkeypatch.setattr(training.sbert, "train_memory", fake("memory"))
    monkeypatch.setattr(
        training.eval_sbert,
        "headline_numbers",
        lambda ethics, memory: {"memory_r": 0.7 + 0.1 * int(ethics.parent.name[-1])},
    )
    result = training.eval_sbert.seed_spread(tiny(tmp_path), tmp_path / "spread", (0, 1))
    assert [(t, s) for t, s, _ in trained] == [
        ("ethics", 0),
        ("memory", 0),
        ("ethics", 1),
        ("memory", 1),
    ]
    assert trained[0][2] == tmp_path / "spread" / "seed0" / "ethics"
    assert result["spread"]["memory_r"] == {"mean": 0.75, "min": 0.7, "max": 0.8}
    assert set(result["seconds"]) == {0, 1}
