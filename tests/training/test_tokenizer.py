"""The shared BPE tokenizer: exact round trips, no unknown Korean, byte fallback kept out of outputs."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from engine.runtime.presets import ROLES
from training.data import corpus_texts, load_rows, pretraining_text, role_example, role_prompt
from training.tokenizer import (
    BYTE_COUNT,
    COMPAT_JAMO,
    HANGUL_SYLLABLES,
    build_tokenizer,
    byte_fallback_ids,
    suppressed_ids,
)

EXTRA_TEXTS = (
    "ㅋㅋㅋㅋ 진짜?? ㅠㅠ  두 칸   세 칸",
    " 앞에 공백, 뒤에도 ",
    "이모지 👱‍♀️😊🥰 그리고 ✨",
    "영어 mixed with 한국어 and 123,456.7!",
    "뷁 똠 햏 쀍",  # rare syllables, none in the corpus
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("tok")
    build_tokenizer(corpus_texts(), out)
    return AutoTokenizer.from_pretrained(out)


def _round_trip(tokenizer, text: str) -> str:
    return tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True)


def test_round_trip_on_every_corpus_text(tokenizer) -> None:
    for text in list(corpus_texts()) + list(EXTRA_TEXTS):
        assert _round_trip(tokenizer, text) == unicodedata.normalize("NFC", text)


def test_nfc_not_nfkc(tokenizer) -> None:
    decomposed = unicodedata.normalize("NFD", "오로라야 ㅋㅋ")
    assert _round_trip(tokenizer, decomposed) == "오로라야 ㅋㅋ"
    assert _round_trip(tokenizer, "①ｆｕｌｌ") == "①ｆｕｌｌ"  # NFKC would rewrite these


def test_every_hangul_syllable_and_jamo_is_one_known_token(tokenizer) -> None:
    vocab = tokenizer.get_vocab()
    for lo, hi in (HANGUL_SYLLABLES, COMPAT_JAMO):
        for code in range(lo, hi + 1):
            assert chr(code) in vocab
    corpus_chars = set("".join(corpus_texts()))
    unseen = [
        chr(c)
        for c in range(HANGUL_SYLLABLES[0], HANGUL_SYLLABLES[1] + 1)
        if chr(c) not in corpus_chars
    ]
    assert len(unseen) > 10_000
    ids = tokenizer(" ".join(unseen[::97]), add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert not set(ids) & set(byte_fallback_ids(tokenizer))


def test_rare_characters_use_bytes_not_unknown(tokenizer) -> None:
    ids = tokenizer("漢字", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert set(ids) <= set(byte_fallback_ids(tokenizer))
    assert _round_trip(tokenizer, "漢字") == "漢字"


def test_special_tokens_and_suppression(tokenizer) -> None:
    assert tokenizer("안녕")["input_ids"][0] == tokenizer.bos_token_id
    assert (
        len(
            {
                tokenizer.bos_token_id,
                tokenizer.eos_token_id,
                tokenizer.pad_token_id,
                tokenizer.unk_token_id,
            }
        )
        == 4
    )
    assert len(byte_fallback_ids(tokenizer)) == BYTE_COUNT
    banned = set(suppressed_ids(tokenizer))
    assert set(byte_fallback_ids(tokenizer)) <= banned and tokenizer.eos_token_id not in banned
    assert {tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id} <= banned


def test_prompts_tokenise_as_prefixes_of_training_texts(tokenizer) -> None:
    """A prompt ending at a marker must tokenise like the same prefix of the training text,
    otherwise the model would be asked to continue from a token boundary it never saw."""
    for row in load_rows("train")[:40]:
        for role in ROLES:
            full = tokenizer(pretraining_text(role, row))["input_ids"]
            prompt = tokenizer(role_prompt(role, row))["input_ids"]
            assert full[: len(prompt)] == prompt
            p, c = role_example(role, row, tokenizer.eos_token)
            joint = tokenizer(p + c)["input_ids"]
            split = tokenizer(p)["input_ids"] + tokenizer(c, add_special_tokens=False)["input_ids"]
            assert joint == split
            assert joint[-1] == tokenizer.eos_token_id


def test_saved_files_load_with_auto_tokenizer(tmp_path: Path) -> None:
    built = build_tokenizer(["작은 말뭉치 ㅋㅋ"], tmp_path, vocab_size=12_000)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == len(built) <= 12_000
    assert loaded("작은 말뭉치")["input_ids"] == built("작은 말뭉치")["input_ids"]
