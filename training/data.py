"""The fine-tuning CSV and the per-role training texts of reference §2.2.

Every role's text is assembled here only, so pretraining, LoRA fine-tuning and the
inference prompts of `engine.rules.prompts` agree byte for byte on markers and spacing.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal

from engine.rules import prompts
from engine.runtime.presets import DATA_DIR, ROLES, Role

FINETUNE_CSV = DATA_DIR / "OhLoRA_fine_tuning_v3.csv"
Split = Literal["train", "valid"]
NORMAL_FORM: Final = "NFC"  # never NFKC: it would rewrite ㅋ, full-width and emoji sequences
# The background roles' targets exist on train rows only, so a fixed part of them is their
# validation part: every HELD_OUT_EVERY-th distinct user input (in order of first appearance)
# with every row that has it (56 of 572 rows; the memory prompt is the input alone, so a
# repeated input must not fall on both sides). Neither the bases' pretraining nor those roles'
# LoRAs see its targets, and `training eval` scores their content on it. The reply keeps every
# train row (it is scored on the valid split).
HELD_OUT_EVERY: Final = 10
HELD_OUT_ROLES: Final = frozenset({Role.SUMMARY, Role.MEMORY, Role.EXPRESSION})


def nfc(text: str) -> str:
    """Canonical composition, so decomposed jamo input matches the trained syllables."""
    return unicodedata.normalize(NORMAL_FORM, text)


@dataclass(frozen=True)
class FinetuneRow:
    """One row of the fine-tuning CSV; the target columns are '' where absent (valid rows)."""

    idx: int
    split: Split
    input_data: str
    output_message: str
    memory: str
    summary: str
    eyes_mouth_pose: str

    def target(self, role: str) -> str:
        """The supervised text of ``role`` (a column of the same name)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        return getattr(self, role)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Every row of a shipped UTF-8 CSV as a dict keyed by its header."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def load_rows(split: Split, path: Path = FINETUNE_CSV) -> list[FinetuneRow]:
    """Rows of one fixed split (the split is a label stored in the file, §2.1)."""
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', not {split!r}")
    return [
        FinetuneRow(
            idx=int(record["idx"]),
            split=split,
            input_data=nfc(record["input_data"]),
            output_message=nfc(record["output_message"]),
            memory=nfc(record["memory"]),
            summary=nfc(record["summary"]),
            eyes_mouth_pose=nfc(record["eyes_mouth_pose"]),
        )
        for record in read_csv(path)
        if record["data_type"] == split
    ]


@cache
def _held_out_inputs(path: Path = FINETUNE_CSV) -> frozenset[str]:
    firsts = list(dict.fromkeys(row.input_data for row in load_rows("train", path)))
    return frozenset(firsts[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY])


def is_held_out(row: FinetuneRow) -> bool:
    """Whether a train row belongs to the background roles' validation part."""
    return row.split == "train" and row.input_data in _held_out_inputs()


def held_out_rows() -> list[FinetuneRow]:
    """The background roles' validation part of the train rows."""
    return [row for row in load_rows("train") if is_held_out(row)]


def role_rows(role: str, rows: Iterable[FinetuneRow] | None = None) -> list[FinetuneRow]:
    """The rows ``role`` trains on (default: the train split): all of them for the reply, all
    but the held-out part for the background roles."""
    rows = load_rows("train") if rows is None else list(rows)
    return [row for row in rows if role not in HELD_OUT_ROLES or not is_held_out(row)]


def role_prompt(role: str, row: FinetuneRow) -> str:
    """The inference prompt of §2.3: input up to and including the start marker.

    Built with the same `engine.rules.prompts` helpers as the runtime.
    """
    if role == "output_message":
        return prompts.reply_prompt(row.input_data)
    if role == "summary":
        return prompts.summary_prompt(row.input_data, row.output_message)
    if role == "memory":
        return prompts.memory_prompt(row.input_data)
    if role == "eyes_mouth_pose":
        return prompts.expression_prompt(row.output_message)
    raise ValueError(f"unknown role {role!r}")


def end_marker(role: str) -> str:
    """The marker that closes ``role``'s answer (memory shares the summary's)."""
    if role == "output_message":
        return prompts.REPLY_END
    if role in ("summary", "memory"):
        return prompts.SUMMARY_END
    if role == "eyes_mouth_pose":
        return prompts.EXPRESSION_END
    raise ValueError(f"unknown role {role!r}")


def role_example(role: str, row: FinetuneRow, eos: str) -> tuple[str, str]:
    """(prompt, completion) whose concatenation is the §2.2 training text.

    The prompt ends with the response template, so completion-only loss starts
    right after ``### 답변:``; the completion is `` T (… 종료) EOS``.
    """
    prompt = f"{role_prompt(role, row)} {prompts.RESPONSE_TEMPLATE}"
    completion = f" {row.target(role)} {end_marker(role)} {eos}"
    return nfc(prompt), nfc(completion)


def pretraining_text(role: str, row: FinetuneRow) -> str:
    """The training text without `` ### 답변:`` and without EOS.

    The base must learn to answer right after the start marker, exactly like the
    inference prompt, and never to emit the template itself (feasibility pitfall).
    """
    return nfc(f"{role_prompt(role, row)} {row.target(role)} {end_marker(role)}")


def pretraining_texts(roles: Iterable[str], rows: Iterable[FinetuneRow]) -> list[str]:
    """Pretraining texts of several roles over the same rows, role-major; a background role's
    held-out rows are left out (`role_rows`)."""
    rows = list(rows)
    return [pretraining_text(role, row) for role in roles for row in role_rows(role, rows)]


def corpus_texts() -> list[str]:
    """Every text the tokenizer must round-trip: all roles' training texts plus raw cells."""
    train, valid = load_rows("train"), load_rows("valid")
    texts = pretraining_texts(ROLES, train)
    texts += [role_example(role, row, "")[0] for role in ROLES for row in train]
    texts += [row.input_data for row in valid] + [row.output_message for row in valid]
    texts += [prompts.reply_prompt(row.input_data) for row in valid]
    return texts
