"""On-the-fly synonym rewriting for the ``output_message`` role (reference §2.5).

Upstream embeds the groups in code; here they are plain data. Surrounding spaces are part of
the words (``' 나는 '`` does not match ``'나는 '`` at the start of a text).
"""

from __future__ import annotations

import random

SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    (" 나는 ", " 난 "),
    ("나에게 ", "내게 "),
    ("인공지능 ", "AI "),
    ("인공지능으로", "AI로"),
    ("음…", "음,", "흠…", "흠,"),
    ("오!", "우와!", "와우!", "와우", "우와"),
    ("ㅠㅠ", "ㅜㅜ", "ㅠ"),
    ("ENTJ", "엔티제"),
    ("LLM", "거대 언어 모델", "대형 언어 모델", "대규모 언어 모델"),
    ("음악 ", "노래 "),
    ("음악은", "노래는"),
    ("축하해", "축하축하", "ㅊㅋㅊㅋ"),
)


def augment(text: str, rng: random.Random) -> str:
    """Rewrite synonyms group by group, in the listed order.

    Each group is shuffled; for each word in that order that occurs in the *current* text,
    every occurrence is replaced by a random member of the group (possibly itself), so a later
    member can rewrite what an earlier replacement produced, as upstream.
    """
    for group in SYNONYM_GROUPS:
        order = list(group)
        rng.shuffle(order)
        for word in order:
            if word in text:
                text = text.replace(word, rng.choice(group))
    return text
