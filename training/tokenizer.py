"""A small Korean BPE tokenizer shared by both tiny bases.

Design (feasibility notes): NFC only (NFKC would rewrite ㅋ and emoji), an alphabet of every
corpus character plus all 11,172 Hangul syllables and the compatibility jamo so that no Korean
input is ever unknown, and byte fallback only for other rare characters. Byte tokens are
suppressed at generation time (`byte_fallback_ids`) so the model never emits half a character.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from engine.runtime.lm import BYTE_COUNT, BYTE_TOKEN, byte_fallback_ids, suppressed_token_ids

__all__ = ["base_alphabet", "build_tokenizer", "byte_fallback_ids", "suppressed_ids"]

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN)

HANGUL_SYLLABLES = (0xAC00, 0xD7A3)  # all 11,172 precomposed syllables
COMPAT_JAMO = (0x3131, 0x318E)  # ㄱ … ㆎ, e.g. ㅋㅋ / ㅠㅠ
PRINTABLE_ASCII = (0x20, 0x7E)
MODEL_MAX_LENGTH = 256  # the tiny bases' position limit

# Final vocabulary size, byte tokens included. ~11.5k are the fixed alphabet; the rest are
# merges, which keep Korean words to 1-3 tokens so the 128-token reply budget is not tight.
DEFAULT_VOCAB_SIZE = 14_000
# GPT-2-like word split without byte mapping: a word carries its leading space and
# punctuation is its own piece, so ``…시작)`` always ends a pre-token and a prompt ending at a
# marker tokenises exactly like the same prefix of a training text.
PRE_TOKEN_PATTERN = r" ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def _char_range(bounds: tuple[int, int]) -> list[str]:
    return [chr(code) for code in range(bounds[0], bounds[1] + 1)]


def base_alphabet(texts: Iterable[str]) -> list[str]:
    """Every corpus character (after NFC) plus Hangul, compatibility jamo and printable ASCII."""
    normalizer = normalizers.NFC()
    chars: set[str] = set()
    for text in texts:
        chars.update(normalizer.normalize_str(text))
    for bounds in (HANGUL_SYLLABLES, COMPAT_JAMO, PRINTABLE_ASCII):
        chars.update(_char_range(bounds))
    chars -= {"\n", "\r"}  # kept out of the alphabet: they fall back to bytes
    return sorted(chars)


def _with_byte_fallback(tokenizer: Tokenizer) -> Tokenizer:
    """Append the 256 ``<0xNN>`` tokens and switch the BPE model's byte fallback on.

    The trainer cannot add multi-character non-special tokens, so the serialised model is
    edited; the byte tokens go after the learned vocabulary.
    """
    state = json.loads(tokenizer.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    next_id = max(vocab.values()) + 1
    for byte in range(BYTE_COUNT):
        token = BYTE_TOKEN.format(byte)
        if token not in vocab:
            vocab[token] = next_id
            next_id += 1
    state["model"]["byte_fallback"] = True
    return Tokenizer.from_str(json.dumps(state, ensure_ascii=False))


def build_tokenizer(
    texts: Iterable[str], out_dir: Path, vocab_size: int = DEFAULT_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train the BPE on ``texts`` and save it so `AutoTokenizer.from_pretrained(out_dir)` loads it.

    ``decode(encode(x), skip_special_tokens=True) == NFC(x)`` holds for every text whose
    characters are in the alphabet or reachable by byte fallback.
    """
    texts = list(texts)
    alphabet = base_alphabet(texts)
    merge_budget = vocab_size - BYTE_COUNT
    if merge_budget <= len(alphabet) + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} too small for an alphabet of {len(alphabet)}")

    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(PRE_TOKEN_PATTERN), behavior="isolated")
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    trainer = trainers.BpeTrainer(
        vocab_size=merge_budget,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer = _with_byte_fallback(tokenizer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_MAX_LENGTH,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


# Generation must never emit these (byte pieces, BOS, pad, unk); the runtime applies the list.
suppressed_ids = suppressed_token_ids
