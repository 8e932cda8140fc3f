"""Runtime S-BERT classes and the Kiwi morpheme stage (no training code involved)."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import torch

from engine.rules.ethics_rules import ETHICS_CATEGORIES, NORMAL_VETO, UPSTREAM_THRESHOLDS
from engine.rules.sanctions import Category
from engine.runtime.morphemes import IdentityPreprocessor, MorphemePreprocessor, get_preprocessor
from engine.runtime.sbert import (
    SBERT_CONFIG_NAME,
    UPSTREAM_MEMORY_THRESHOLD,
    EthicsClassifier,
    MemoryRetriever,
    _Encoder,
)

# --- morphemes ---------------------------------------------------------------------------------


def test_morphemes_form_tag_tokens_and_deterministic() -> None:
    prep = MorphemePreprocessor()
    out = prep("로라야 사랑해!")
    assert out == prep("로라야 사랑해!")
    tokens = out.split(" ")
    assert "사랑/NNG" in tokens
    assert all("/" in tok and tok.rsplit("/", 1)[1] for tok in tokens)
    assert prep.batch(["정치 얘기 하자", "", "정치 얘기 하자"]) == [
        prep("정치 얘기 하자"),
        "",
        prep("정치 얘기 하자"),
    ]
    assert prep("   ") == ""


def test_morphemes_nfc_in_and_out() -> None:
    prep = MorphemePreprocessor()
    decomposed = unicodedata.normalize("NFD", "데이트할래? 사랑해")
    assert decomposed != "데이트할래? 사랑해"
    out = prep(decomposed)
    assert out == prep("데이트할래? 사랑해")
    assert unicodedata.is_normalized("NFC", out)


def test_get_preprocessor() -> None:
    assert isinstance(get_preprocessor("kiwi"), MorphemePreprocessor)
    none = get_preprocessor("none")
    assert isinstance(none, IdentityPreprocessor)
    assert none(unicodedata.normalize("NFD", "사랑")) == "사랑"
    assert get_preprocessor("syllable")("로라야  사랑해!") == "로 라 야 \u2581 사 랑 해 !"
    with pytest.raises(ValueError):
        get_preprocessor("jamo")


# --- a tiny random sentence-transformers directory (upstream-style: no ohlora_sbert.json) ------


def _tiny_st_dir(root: Path) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "사랑",
        "고백/만남",
        "일반",
        "정치",
        "패드립",
        "오늘",
        "날씨",
        "[오늘",
        "날씨:",
        "비]",
        "맑음]",
        "롤",
        "티어",
        "어때?",
    ]
    vocab = {w: i for i, w in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=32,
    )
    torch.manual_seed(0)
    base = root / "base"
    BertModel(
        BertConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
    ).save_pretrained(base)
    tokenizer.save_pretrained(base)
    transformer = Transformer(str(base), max_seq_length=32)
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")], device="cpu"
    )
    out = root / "st"
    model.save(str(out))
    return out


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_st_dir(tmp_path_factory.mktemp("sbert_runtime"))


def test_upstream_style_dir_uses_upstream_settings(st_dir: Path) -> None:
    assert not (st_dir / SBERT_CONFIG_NAME).exists()
    ethics = EthicsClassifier.load(st_dir)
    assert ethics.preprocess == "none"
    assert ethics.thresholds == dict(UPSTREAM_THRESHOLDS)
    assert ethics.normal_veto == NORMAL_VETO
    scores = ethics.scores(["사랑 고백/만남", "오늘 날씨 어때?", "정치"])
    assert len(scores) == 3 and all(set(s) == set(ETHICS_CATEGORIES) for s in scores)
    # A prompt equal to a category name is closest to it (identical embedding).
    assert scores[0]["사랑 고백/만남"] == pytest.approx(1.0, abs=1e-5)
    assert ethics.predict("정치") == "정치"
    assert ethics.scores([]) == []
    memory = MemoryRetriever.load(st_dir)
    assert memory.preprocess == "none"
    assert memory.threshold == UPSTREAM_MEMORY_THRESHOLD
    assert MemoryRetriever.load(st_dir, default_threshold=0.6).threshold == 0.6


def test_saved_json_is_read(st_dir: Path, tmp_path: Path) -> None:
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(st_dir, model_dir)
    (model_dir / SBERT_CONFIG_NAME).write_text(
        json.dumps(
            {
                "preprocess": "kiwi",
                "thresholds": {"정치": 0.7},
                "normal_veto": 0.9,
                "memory_threshold": 0.42,
            }
        ),
        encoding="utf-8",
    )
    ethics = EthicsClassifier.load(model_dir)
    assert ethics.preprocess == "kiwi"
    assert ethics.thresholds["정치"] == 0.7
    assert ethics.thresholds["패드립"] == UPSTREAM_THRESHOLDS["패드립"]
    assert ethics.normal_veto == 0.9
    assert len(ethics.scores(["로라야 사랑해"])) == 1
    memory = MemoryRetriever.load(model_dir, default_threshold=0.6)
    assert memory.threshold == 0.42  # the saved calibration wins


def test_memory_best_real_model(st_dir: Path) -> None:
    memory = MemoryRetriever.load(st_dir)
    items = ["[오늘 날씨: 비]", "[롤 티어: 실버]"]
    scores = memory.scores("[오늘 날씨: 비]", items)
    assert len(scores) == 2 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert memory.best("[오늘 날씨: 비]", items) == (0, pytest.approx(1.0, abs=1e-5))
    assert memory.best("[오늘 날씨: 비]", []) is None


# --- threshold logic with a fake encoder (exact cosines) ------------------------------------------


class _FakeEncoder:
    """Embeds known strings to fixed unit vectors, so cosines are exact."""

    def __init__(self, vectors: dict[str, list[float]], config: dict | None = None) -> None:
        self.vectors = vectors
        self.config = config or {}
        self.preprocess = "none"
        self.calls: list[list[str]] = []

    def embed(self, texts):
        self.calls.append(list(texts))
        return torch.nn.functional.normalize(
            torch.tensor([self.vectors[t] for t in texts], dtype=torch.float32), dim=-1
        )


def test_memory_best_threshold_and_short_items() -> None:
    fake = _FakeEncoder(
        {
            "q": [1.0, 0.0],
            "[오늘 날씨: 비]": [0.8, 0.6],  # cosine 0.8
            "[롤 티어: 실버]": [0.6, 0.8],  # cosine 0.6
            "ab": [1.0, 0.0],  # would be a perfect match but is too short
            " a b ": [1.0, 0.0],
        },
        config={"memory_threshold": 0.7},
    )
    retriever = MemoryRetriever(fake)  # type: ignore[arg-type]
    items = ["ab", "[롤 티어: 실버]", "[오늘 날씨: 비]", " a b "]
    assert retriever.threshold == 0.7
    index, score = retriever.best("q", items)
    assert index == 2 and score == pytest.approx(0.8)
    assert all("ab" not in call for call in fake.calls[-1:])
    assert retriever.best("q", items, threshold=0.81) is None
    assert retriever.best("q", items, threshold=0.8) == (2, pytest.approx(0.8))
    assert retriever.best("q", ["ab", " a b "], threshold=0.0) is None
    assert retriever.scores("q", ["ab"]) == [pytest.approx(1.0)]  # scores() skips nothing


def test_ethics_thresholds_veto_and_triggered() -> None:
    names = list(ETHICS_CATEGORIES)  # love, normal, politics, paedrip
    vectors = {name: [float(i == j) for j in range(4)] for i, name in enumerate(names)}
    vectors["politics-ish"] = [0.0, 0.3, 0.954, 0.0]
    vectors["normal-ish"] = [0.0, 0.95, 0.31, 0.0]
    fake = _FakeEncoder(vectors, config={"thresholds": {"정치": 0.9}, "normal_veto": 0.5})
    ethics = EthicsClassifier(fake)  # type: ignore[arg-type]
    assert len(fake.calls) == 1  # the category names, once
    scores = ethics.scores(["politics-ish", "normal-ish"])
    assert len(fake.calls) == 2
    assert ethics.predict("politics-ish") == "정치"
    assert ethics.flagged(scores[0]) == ["정치"]
    assert ethics.flagged(scores[1]) == []
    assert ethics.triggered("politics-ish", "미안, 그 얘기는 부담스러워") == [Category.POLITICS]
    assert ethics.triggered("politics-ish", "좋아!") == []  # politics needs a declining answer
    assert _Encoder  # the real class is importable without training code
