"""Toy-scale S-BERT training: encoder MLM, ethics and memory models, calibration, evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from engine.rules.ethics_rules import ETHICS_CATEGORIES, NORMAL_NAME
from engine.runtime.presets import production, tiny, with_bases
from engine.runtime.sbert import SBERT_CONFIG_NAME, EthicsClassifier, MemoryRetriever
from training.encoder import build_encoder, build_tokenizer, encoder_corpus
from training.eval_sbert import evaluate_ethics, evaluate_memory
from training.sbert import (
    THRESHOLD_MARGIN,
    EthicsObjective,
    SbertBaseMissing,
    calibrate_ethics,
    calibrate_memory,
    load_base_model,
    oversample,
    stratified_split,
    train_ethics,
    train_memory,
)

torch.set_num_threads(1)

CORPUS = [
    "로라야 사랑해!",
    "나랑 사귈래?",
    "오늘 날씨 어때?",
    "정치 얘기 하자",
    "민주당 어떻게 생각해?",
    "밥 먹었어?",
    "롤 티어 올랐다",
    "[오늘 날씨: 비] 아 오늘 약속 있는데",
    "사랑 고백/만남",
    "일반",
    "정치",
    "패드립",
    "너희 엄마 뭐하셔",
    "주말에 뭐 해?",
    "좋아하는 가수 있어?",
] * 4


@pytest.fixture(scope="module")
def toy_encoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("encoder") / "sbert_encoder"
    summary = build_encoder(
        CORPUS + encoder_corpus()[:200], out, size="toy", mlm_epochs=12, seed=0, show_progress=False
    )
    return out, summary


def _preset(tmp_path: Path, encoder: Path):
    """A tiny preset over the toy morpheme encoder (train with ``size="toy"``: the Kiwi path)."""
    return with_bases(tiny(tmp_path), sbert_base=str(encoder))


def test_encoder_corpus_has_no_test_rows() -> None:
    corpus = set(encoder_corpus())
    with (
        Path(__file__).resolve().parents[2] / "data/ohlora_v3/ethics_train_test_dataset.csv"
    ).open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    train = {r["user_prompt"] for r in rows if r["type"] == "train"}
    test_only = {r["user_prompt"] for r in rows if r["type"] == "test"} - train
    assert train <= corpus
    assert not (test_only & corpus)
    assert set(ETHICS_CATEGORIES) <= corpus


def test_word_level_tokenizer() -> None:
    tok = build_tokenizer(["사랑/NNG 하/XSV 어/EF", "정치/NNG"])
    ids = tok("사랑/NNG 정치/NNG 없는/XX")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "사랑/NNG", "정치/NNG", "[UNK]", "[SEP]"]


def test_encoder_builds_and_mlm_loss_falls(toy_encoder) -> None:
    out, summary = toy_encoder
    assert summary["mlm_loss_last"] < summary["mlm_loss_first"] - 0.5
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert json.loads((out / SBERT_CONFIG_NAME).read_text())["preprocess"] == "kiwi"
    model = load_base_model(out)
    emb = model.encode(["사랑/NNG 하/XSV 어/EF"], convert_to_tensor=True)
    assert emb.shape == (1, 32)


def test_train_ethics_toy_saves_loadable_model(toy_encoder, tmp_path: Path) -> None:
    preset = _preset(tmp_path, toy_encoder[0])
    summary = train_ethics(preset, epochs=1, max_rows=120, seed=0, size="toy", show_progress=False)
    out = preset.sbert_dir("ethics")
    assert Path(summary["out_dir"]) == out
    saved = json.loads((out / SBERT_CONFIG_NAME).read_text(encoding="utf-8"))
    assert saved["preprocess"] == "kiwi" and saved["task"] == "ethics"
    assert set(saved["thresholds"]) == set(ETHICS_CATEGORIES) - {NORMAL_NAME}
    classifier = EthicsClassifier.load(out)
    assert classifier.preprocess == "kiwi"
    assert classifier.thresholds == saved["thresholds"]
    assert classifier.normal_veto == saved["normal_veto"]
    scores = classifier.scores(["로라야 사랑해", "오늘 뭐 먹지", "정치 얘기"])
    assert len(scores) == 3 and all(set(s) == set(ETHICS_CATEGORIES) for s in scores)
    assert classifier.predict("로라야 사랑해") in ETHICS_CATEGORIES


def test_train_ethics_plain_pairs(toy_encoder, tmp_path: Path) -> None:
    preset = _preset(tmp_path, toy_encoder[0])
    summary = train_ethics(
        preset, epochs=1, max_rows=60, grouped=False, size="toy", show_progress=False
    )
    assert summary["grouped"] is False
    assert EthicsClassifier.load(preset.sbert_dir("ethics")).scores(["안녕"])
    with pytest.raises(ValueError, match="grouped"):
        train_ethics(
            preset,
            epochs=1,
            max_rows=60,
            grouped=False,
            objective=EthicsObjective.SOFTMAX,
            size="toy",
            show_progress=False,
        )


def test_the_validation_paraphrases_calibrate_the_thresholds(toy_encoder, tmp_path: Path) -> None:
    """The thresholds are set on the held-out train rows *and* the validation paraphrases (the
    saved counts say so); without the CSV only the train rows calibrate."""
    from training.sbert import ETHICS_VALIDATION_CSV, load_ethics_csv

    extra = load_ethics_csv(ETHICS_VALIDATION_CSV)
    assert len(extra) >= 60 and {c for _, c in extra} == set(ETHICS_CATEGORIES)
    preset = _preset(tmp_path, toy_encoder[0])
    with_csv = train_ethics(preset, epochs=1, max_rows=60, size="toy", show_progress=False)
    without = train_ethics(
        preset, epochs=1, max_rows=60, size="toy", validation_csv=None, show_progress=False
    )
    assert with_csv["val_paraphrases"] == len(extra) and without["val_paraphrases"] == 0
    normal = sum(c == NORMAL_NAME for _, c in extra)
    assert with_csv["val_normal"] == without["val_normal"] + normal
    assert with_csv["val_harmful"] == without["val_harmful"] + len(extra) - normal
    assert 0.0 <= with_csv["val_paraphrase_accuracy"] <= 1.0
    # The toy encoder keeps upstream's squared error and margin.
    assert with_csv["objective"] == EthicsObjective.MSE
    assert with_csv["margin"] == THRESHOLD_MARGIN


def test_train_memory_toy_saves_loadable_model(toy_encoder, tmp_path: Path) -> None:
    preset = _preset(tmp_path, toy_encoder[0])
    summary = train_memory(preset, epochs=2, max_rows=24, seed=0, show_progress=False)
    assert summary["train_combs"] + summary["val_combs"] == 24
    assert 0 < summary["extra_pairs"] <= 24
    out = preset.sbert_dir("memory")
    saved = json.loads((out / SBERT_CONFIG_NAME).read_text(encoding="utf-8"))
    assert saved["memory_threshold"] == summary["memory_threshold"]
    retriever = MemoryRetriever.load(out)
    assert retriever.threshold == saved["memory_threshold"]
    items = ["[오늘 날씨: 비]", "[롤 티어: 실버]", "ab"]
    assert len(retriever.scores("오늘 비 오네", items)) == 3
    best = retriever.best("오늘 비 오네", items, threshold=-1.0)
    assert best is not None and best[0] in (0, 1)
    metrics = evaluate_memory(out)
    assert metrics["memory_n"] == 1600
    assert {"memory_mse", "memory_mae", "memory_r"} <= set(metrics)


def test_tiny_preset_builds_missing_encoder(tmp_path: Path, monkeypatch) -> None:
    import training.sbert

    monkeypatch.setattr(training.sbert, "encoder_corpus", lambda: CORPUS)
    preset = tiny(tmp_path)
    assert not Path(preset.sbert_base).exists()
    train_memory(preset, size="toy", epochs=1, max_rows=40, show_progress=False)
    assert (Path(preset.sbert_base) / "config.json").is_file()


def test_calibration_flags_no_normal_prompt() -> None:
    def s(love, normal, politics, paedrip):
        return dict(zip(ETHICS_CATEGORIES, (love, normal, politics, paedrip)))

    scores = [
        s(0.95, 0.20, 0.10, 0.10),
        s(0.90, 0.30, 0.20, 0.10),  # love
        s(0.10, 0.20, 0.92, 0.10),  # politics
        s(0.10, 0.40, 0.10, 0.85),  # paedrip
        s(0.85, 0.45, 0.10, 0.10),  # normal with a high love score and a low 일반 score
        s(0.70, 0.90, 0.60, 0.50),  # normal, vetoed by any veto ≤ 0.9
        s(0.20, 0.95, 0.88, 0.20),
    ]
    labels = [
        "사랑 고백/만남",
        "사랑 고백/만남",
        "정치",
        "패드립",
        NORMAL_NAME,
        NORMAL_NAME,
        NORMAL_NAME,
    ]
    thresholds, veto, stats = calibrate_ethics(scores, labels, margin=0.02)
    assert stats["max_false_flags"] == 0 and stats["val_false_flags"] == 0
    for score, label in zip(scores, labels):
        flagged = score[NORMAL_NAME] < veto and any(score[c] >= t for c, t in thresholds.items())
        if label == NORMAL_NAME:
            assert not flagged
    # Above the 0.85 normal prompt by 2 % of the gap to 1.0.
    assert thresholds["사랑 고백/만남"] >= 0.85 + 0.02 * 0.15 - 1e-9
    assert stats["val_flagged_right"] == 4


def test_calibration_false_flag_budget() -> None:
    def s(love, normal, politics, paedrip):
        return dict(zip(ETHICS_CATEGORIES, (love, normal, politics, paedrip)))

    # One 일반 outlier scores 0.99 for love; the love prompts score 0.90-0.98.
    normals = [s(0.10 + 0.001 * i, 0.90, 0.05, 0.05) for i in range(60)] + [s(0.99, 0.1, 0, 0)]
    loves = [s(0.90 + 0.01 * i, 0.10, 0.0, 0.0) for i in range(9)]
    scores = normals + loves
    labels = [NORMAL_NAME] * len(normals) + ["사랑 고백/만남"] * len(loves)
    strict, _, strict_stats = calibrate_ethics(scores, labels, max_false_flags=0)
    assert strict_stats["val_false_flags"] == 0 and strict_stats["val_flagged_right"] == 0
    assert strict["사랑 고백/만남"] > 0.99
    budget, _, stats = calibrate_ethics(scores, labels, max_false_flags=1)
    assert stats["val_false_flags"] == 1 and stats["val_flagged_right"] == 9
    assert budget["사랑 고백/만남"] <= 0.90
    # The default budget is 2 % of the 일반 prompts: round(0.02 * 61) = 1.
    assert calibrate_ethics(scores, labels)[2]["max_false_flags"] == 1


def test_calibrate_memory_max_f1() -> None:
    scores = [0.99, 0.97, 0.96, 0.90, 0.50, 0.40]
    labels = [1.0, 1.0, 0.3, 1.0, 0.2, 0.1]
    threshold, stats = calibrate_memory(scores, labels)
    assert threshold == 0.90 and stats["val_f1"] == pytest.approx(2 * 0.75 * 1 / 1.75, abs=1e-3)


def test_split_and_oversample_are_seeded_and_stratified() -> None:
    rows = [(f"n{i}", NORMAL_NAME) for i in range(40)] + [(f"p{i}", "정치") for i in range(10)]
    a = stratified_split(rows, 0.2, seed=3)
    assert a == stratified_split(rows, 0.2, seed=3)
    train, val = a
    assert sum(c == "정치" for _, c in val) == 2 and sum(c == NORMAL_NAME for _, c in val) == 8
    grown = oversample(train, 0.5, seed=0)
    assert sum(c == "정치" for _, c in grown) == 16
    assert sum(c == NORMAL_NAME for _, c in grown) == 32


def test_evaluate_ethics_custom_csv(toy_encoder, tmp_path: Path) -> None:
    preset = _preset(tmp_path, toy_encoder[0])
    train_ethics(preset, epochs=1, max_rows=60, size="toy", show_progress=False)
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text(
        "user_prompt,category\n로라야 사랑해,사랑 고백/만남\n밥 먹었어?,일반\n"
        "정치 얘기 하자,정치\n",
        encoding="utf-8",
    )
    metrics = evaluate_ethics(preset.sbert_dir("ethics"), csv_path)
    assert metrics["ethics_n"] == 3
    assert sum(sum(row.values()) for row in metrics["confusion"].values()) == 3
    assert 0.0 <= metrics["ethics_accuracy"] <= 1.0
    assert metrics["ethics_false_flags"] in (0, 1)
    assert {"ethics_flag_recall", "ethics_false_flags", "confusion"} <= set(metrics)


def _tiny_roberta_dir(root: Path) -> Path:
    from transformers import RobertaConfig, RobertaModel

    texts = encoder_corpus()[:300]
    tokenizer = build_tokenizer(texts)  # raw text split on spaces: enough for a smoke test
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=0,
        type_vocab_size=1,
    )
    out = root / "roberta-tiny"
    RobertaModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_production_preset_trains_through_same_path(tmp_path: Path) -> None:
    base = _tiny_roberta_dir(tmp_path)
    preset = with_bases(production(tmp_path / "artifacts"), sbert_base=str(base))
    summary = train_ethics(preset, epochs=1, max_rows=60, show_progress=False)
    assert summary["preprocess"] == "none"
    classifier = EthicsClassifier.load(preset.sbert_dir("ethics"))
    assert classifier.preprocess == "none"
    assert len(classifier.scores(["로라야 사랑해"])) == 1
    memory = train_memory(preset, epochs=1, max_rows=60, show_progress=False)
    assert memory["preprocess"] == "none"
    assert MemoryRetriever.load(preset.sbert_dir("memory")).preprocess == "none"


def test_missing_production_base_raises_clearly(tmp_path: Path) -> None:
    preset = with_bases(production(tmp_path), sbert_base="no-such-org/no-such-model")
    with pytest.raises(SbertBaseMissing, match="download"):
        train_ethics(preset, epochs=1, max_rows=10, show_progress=False)
    preset = with_bases(production(tmp_path), sbert_base=str(tmp_path / "missing"))
    with pytest.raises(SbertBaseMissing):
        train_memory(preset, epochs=1, max_rows=10, show_progress=False)


def test_grouped_losses_equal_cosine_similarity_loss(toy_encoder) -> None:
    """The grouped ethics loss and the comb-matrix memory loss are CosineSimilarityLoss on the
    same pairs, only cheaper."""
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    from training.sbert import _category_loss_class, _memory_matrix_loss_class

    model = load_base_model(toy_encoder[0])
    model.eval()
    plain = CosineSimilarityLoss(model)
    prompts = ["사랑/NNG 하/XSV 어/EF", "정치/NNG 얘기/NNG", "밥/NNG 먹/VV 었/EP 어/EF"]
    names = ["사랑/NNG 고백/NNG //SP 만남/NNG", "일반/NNG", "정치/NNG", "패드립/NNG"]
    onehot = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 1.0, 0, 0]])
    grouped = _category_loss_class()(model)
    with torch.no_grad():
        got = grouped([model.tokenize(prompts)] + [model.tokenize([n] * 3) for n in names], onehot)
        pairs_a = [p for p in prompts for _ in names]
        pairs_b = [n for _ in prompts for n in names]
        want = plain([model.tokenize(pairs_a), model.tokenize(pairs_b)], onehot.flatten())
    assert got.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-6)

    # The softmax objective: the same cosines × SOFTMAX_SCALE, cross-entropy to the label.
    from training.sbert import SOFTMAX_SCALE, EthicsObjective, _category_loss

    softmax = _category_loss(model, EthicsObjective.SOFTMAX)
    with torch.no_grad():
        got = softmax([model.tokenize(prompts)] + [model.tokenize([n] * 3) for n in names], onehot)
        e = model.encode(prompts, convert_to_tensor=True, normalize_embeddings=True)
        c = model.encode(names, convert_to_tensor=True, normalize_embeddings=True)
        want = torch.nn.functional.cross_entropy(SOFTMAX_SCALE * (e @ c.T), onehot.argmax(1))
    assert got.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-6)
    assert isinstance(softmax, CosineSimilarityLoss)

    memories = ["[/SSO 오늘/NNG 날씨/NNG :/SP 비/NNG ]/SSC", "[/SSO 롤/NNP 티어/NNG ]/SSC"]
    table = torch.tensor([[1.0, 0.2], [0.2, 1.0]])
    matrix = _memory_matrix_loss_class()(model, table)
    with torch.no_grad():
        got = matrix([model.tokenize(memories), model.tokenize(prompts[:2])], torch.tensor([0, 1]))
        want = plain(
            [
                model.tokenize([memories[i] for i in (0, 0, 1, 1)]),
                model.tokenize([prompts[j] for j in (0, 1, 0, 1)]),
            ],
            table.flatten(),
        )
    assert got.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-6)


def test_memory_key_class() -> None:
    from training.sbert import load_memory_combs, memory_key_class

    assert memory_key_class("[오늘 날씨: 비]") == ("오늘 날씨",)
    assert memory_key_class("[좋아하는 아이돌: 에스파]") == ("좋아하는 가수",)
    assert memory_key_class("[상태: 힘듦]") == ("상태", "힘듦")
    assert memory_key_class("그냥 문장") is None
    combs, labels = load_memory_combs(
        Path(__file__).resolve().parents[2] / "data/ohlora_v3/v2_memory_sbert/train_dataset.csv"
    )
    assert len(combs) == 80 and len(labels) == 6400
    # Labels depend only on the key classes (what the grouped memory loss relies on).
    by_class: dict = {}
    for (i, j), y in labels.items():
        key = (memory_key_class(combs[i][0]), memory_key_class(combs[j][0]))
        assert by_class.setdefault(key, y) == y
