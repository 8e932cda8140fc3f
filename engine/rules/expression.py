"""Parsing the ``eyes_mouth_pose`` output ``(눈 E, 입 M, 고개 돌림 P)`` (reference §6)."""

from __future__ import annotations

from dataclasses import dataclass

EYES: tuple[str, ...] = ("작게", "보통", "크게", "아주 크게")
MOUTH: tuple[str, ...] = ("보통", "크게", "아주 크게")
POSE: tuple[str, ...] = ("없음", "보통", "많이")

EYES_LABEL = "눈 "
MOUTH_LABEL = "입 "
POSE_LABEL = "고개 돌림 "
_PIECE_TERMINATORS = (",", ")")


@dataclass(frozen=True)
class Expression:
    """Three expression words, each one of EYES / MOUTH / POSE."""

    eyes: str
    mouth: str
    pose: str

    def render(self) -> str:
        """The training-target format of the expression model."""
        return f"(눈 {self.eyes}, 입 {self.mouth}, 고개 돌림 {self.pose})"


# Used after every attempt failed.
FALLBACK_EXPRESSION = Expression("보통", "보통", "없음")


def _piece_after(text: str, label: str) -> str | None:
    """Text after the first ``label`` up to the next ``,`` or ``)`` (or the end)."""
    start = text.find(label)
    if start < 0:
        return None
    piece = text[start + len(label) :]
    for terminator in _PIECE_TERMINATORS:
        piece = piece.split(terminator, 1)[0]
    return piece


def _match_word(piece: str | None, allowed: tuple[str, ...]) -> str | None:
    """The allowed word ``piece`` starts with, trying longer words first."""
    if piece is None:
        return None
    for word in sorted(allowed, key=len, reverse=True):
        if piece.startswith(word):
            return word
    return None


def parse_expression(text: str) -> Expression | None:
    """Parse model output into an Expression; None if any axis is missing or invalid.

    Junk before or after the parenthesised form is tolerated, as upstream.
    """
    eyes = _match_word(_piece_after(text, EYES_LABEL), EYES)
    mouth = _match_word(_piece_after(text, MOUTH_LABEL), MOUTH)
    pose = _match_word(_piece_after(text, POSE_LABEL), POSE)
    if eyes is None or mouth is None or pose is None:
        return None
    return Expression(eyes, mouth, pose)
