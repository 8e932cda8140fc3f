"""Synonym augmentation follows upstream's rule (§2.5)."""

from __future__ import annotations

import random

import pytest

from training.augment import SYNONYM_GROUPS, augment


class ScriptedRandom(random.Random):
    """Shuffle keeps the order; choice picks scripted members, for an exact rule check."""

    def __init__(self, picks: list[str]) -> None:
        super().__init__(0)
        self.picks = list(picks)

    def shuffle(self, x: list) -> None:  # type: ignore[override]
        return None

    def choice(self, seq):  # type: ignore[override]
        pick = self.picks.pop(0)
        assert pick in seq
        return pick


def test_groups_match_reference_order() -> None:
    assert len(SYNONYM_GROUPS) == 12
    assert SYNONYM_GROUPS[0] == (" 나는 ", " 난 ")
    assert SYNONYM_GROUPS[8][0] == "LLM" and SYNONYM_GROUPS[-1] == (
        "축하해",
        "축하축하",
        "ㅊㅋㅊㅋ",
    )


@pytest.mark.parametrize("group", SYNONYM_GROUPS)
def test_every_member_of_every_group_is_reachable(group: tuple[str, ...]) -> None:
    text = f"가{group[0]}나"
    seen = {augment(text, random.Random(seed)) for seed in range(200)}
    assert {f"가{member}나" for member in group} <= seen


def test_surrounding_spaces_are_significant() -> None:
    # ' 나는 ' needs a space on both sides: a text starting with '나는 ' never changes.
    assert all(augment("나는 오로라야", random.Random(s)) == "나는 오로라야" for s in range(50))
    assert {augment("응 나는 오로라야", random.Random(s)) for s in range(50)} == {
        "응 나는 오로라야",
        "응 난 오로라야",
    }


def test_all_occurrences_replaced_together() -> None:
    outputs = {augment("ENTJ야 ENTJ!", random.Random(s)) for s in range(50)}
    assert outputs == {"ENTJ야 ENTJ!", "엔티제야 엔티제!"}


def test_rewriting_is_chained_within_a_group() -> None:
    # Group 6 in listed order: '오!' is found and becomes '와우'; '우와!' and '와우!' are
    # absent, but '와우' now is present and becomes '우와', which the last member then meets.
    rng = ScriptedRandom(["와우", "우와", "우와"])
    assert augment("오! 멋져", rng) == "우와 멋져"
    assert rng.picks == []


def test_untouched_text_and_seeded_determinism() -> None:
    assert augment("안녕하세요", random.Random(0)) == "안녕하세요"
    text = "축하해! 나에게 음악 이야기 해줘 ㅠㅠ 인공지능으로 만든 LLM"
    first = [augment(text, random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1
    assert len({augment(text, random.Random(seed)) for seed in range(30)}) > 5
