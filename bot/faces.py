"""Her face: the reply's expression (eyes 4 × mouth 3 × head turn 3) drawn with Pillow.

Upstream OhLoRA turns `eyes_mouth_pose` into a StyleGAN image; here it is a small illustrated
face whose eye opening, mouth opening and head turn follow the three parsed values. Each of the
36 variants is drawn once (supersampled, then downscaled for smooth edges) and cached as PNG
bytes; every reply gets a fresh `discord.File` over those bytes, its alt text the expression
line (screen readers). `python -m bot.faces docs/faces.png` writes all 36 in a labelled grid.
"""

from __future__ import annotations

import functools
import io
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import discord
from PIL import Image, ImageDraw, ImageFont

from engine.api import EYES, MOUTH, POSE, Expression, parse_expression

FACE_FILENAME = "face.png"
FACE_SIZE = 160  # pixels, square: a thumbnail beside the reply
SUPERSAMPLE = 4  # drawn at 4× and downscaled: anti-aliased curves without extra libraries
GRID_COLUMNS = 6
GRID_ROWS = 6  # 36 = 4 × 3 × 3 variants, row-major in (eyes, mouth, turn) order
GRID_PADDING = 8
GRID_LABEL_HEIGHT = 30  # two lines of the label font under each face
GRID_LABEL_FONT_SIZE = 11
GRID_CELL = (FACE_SIZE + 2 * GRID_PADDING, FACE_SIZE + GRID_LABEL_HEIGHT + 2 * GRID_PADDING)
GRID_SIZE = (GRID_COLUMNS * GRID_CELL[0], GRID_ROWS * GRID_CELL[1])
# The grid's labels in English: Pillow's bundled font has no Hangul (the words map one to one
# onto EYES / MOUTH / POSE).
EYES_WORDS = ("small", "normal", "big", "very big")
MOUTH_WORDS = ("normal", "open", "wide open")
TURN_WORDS = ("none", "some", "much")

# Palette
BACKGROUND = (253, 239, 244)
HALO = (248, 220, 232)
SKIN = (255, 226, 208)
SKIN_SHADE = (232, 180, 160)
HAIR = (74, 48, 52)
HAIR_SHINE = (112, 78, 84)
IRIS = (92, 62, 48)
PUPIL = (40, 26, 24)
LINE = (60, 40, 40)
MOUTH_INSIDE = (150, 52, 66)
TONGUE = (236, 128, 140)
LIP = (214, 110, 120)
BLUSH = (255, 150, 170, 90)
TOP = (246, 172, 190)
WHITE = (255, 255, 255)
GRID_BACKGROUND = (255, 255, 255)
GRID_TEXT = (70, 70, 70)

# Geometry, in 160-pixel units. The head turns toward the viewer's right: the features move
# further than the oval, and the far eye narrows (foreshortening).
EYE_HALF_HEIGHTS = (2.2, 5.5, 8.5, 11.5)  # per EYES level: 작게 … 아주 크게
EYE_HALF_WIDTH = 10.0
BROW_LIFT = 2.0  # per eye level: wider eyes, higher brows
MOUTH_OPENINGS = (0.0, 9.0, 16.0)  # per MOUTH level; 0 is a closed smile
TURN_AMOUNTS = (0.0, 0.5, 1.0)  # per POSE level: 없음, 보통, 많이
FEATURE_SHIFT = 20.0  # how far the eyes, nose and mouth move at a full turn
OVAL_SHIFT = 6.0
FAR_EYE_NARROWING = 0.45
FRINGE_DROPS = (6.0, 2.0, 4.0, 1.0, 5.0)  # how far each lock of the fringe falls


@dataclass(frozen=True)
class FaceLevels:
    """The parsed expression as indices into EYES / MOUTH / POSE (the cache key)."""

    eyes: int
    mouth: int
    turn: int

    @classmethod
    def of(cls, expression: Expression) -> FaceLevels:
        return cls(
            EYES.index(expression.eyes), MOUTH.index(expression.mouth), POSE.index(expression.pose)
        )

    def expression(self) -> Expression:
        return Expression(EYES[self.eyes], MOUTH[self.mouth], POSE[self.turn])


ALL_LEVELS = tuple(
    FaceLevels(e, m, t)
    for e, m, t in itertools.product(range(len(EYES)), range(len(MOUTH)), range(len(POSE)))
)


class _Canvas:
    """A supersampled RGBA drawing addressed in 160-pixel units."""

    def __init__(self) -> None:
        side = FACE_SIZE * SUPERSAMPLE
        self.image = Image.new("RGBA", (side, side), (*BACKGROUND, 255))
        self.draw = ImageDraw.Draw(self.image)

    @staticmethod
    def box(cx: float, cy: float, rx: float, ry: float) -> tuple[float, float, float, float]:
        s = SUPERSAMPLE
        return ((cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s)

    @staticmethod
    def points(*xy: tuple[float, float]) -> list[tuple[float, float]]:
        return [(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in xy]

    @staticmethod
    def width(w: float) -> int:
        return max(1, round(w * SUPERSAMPLE))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, **kw: object) -> None:
        self.draw.ellipse(self.box(cx, cy, rx, ry), **kw)  # type: ignore[arg-type]

    def overlay(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        layer = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        return layer, ImageDraw.Draw(layer)

    def png(self) -> bytes:
        small = self.image.convert("RGB").resize((FACE_SIZE, FACE_SIZE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.save(out, format="PNG")
        return out.getvalue()


def _eye(canvas: _Canvas, cx: float, cy: float, half_width: float, level: int) -> None:
    """White, iris (clipped to the opening) and the upper lid; `level` sets the opening."""
    half_height = EYE_HALF_HEIGHTS[level]
    mask = Image.new("L", canvas.image.size, 0)
    ImageDraw.Draw(mask).ellipse(canvas.box(cx, cy, half_width, half_height), fill=255)
    canvas.ellipse(cx, cy, half_width, half_height, fill=WHITE)
    layer, draw = canvas.overlay()
    iris = min(half_width * 0.72, 8.0)
    draw.ellipse(canvas.box(cx, cy + 0.5, iris, 8.0), fill=IRIS)
    draw.ellipse(canvas.box(cx, cy + 0.5, iris * 0.5, 4.5), fill=PUPIL)
    draw.ellipse(canvas.box(cx - iris * 0.35, cy - 2.5, 1.8, 1.8), fill=WHITE)
    canvas.image.paste(layer, (0, 0), Image.composite(layer, Image.new("RGBA", mask.size), mask))
    lid = canvas.box(cx, cy, half_width, half_height)
    canvas.draw.arc(lid, 180, 360, fill=LINE, width=canvas.width(2.2))
    if level == 0:  # nearly shut: the lower lid shows as a line too
        canvas.draw.arc(lid, 0, 180, fill=LINE, width=canvas.width(1.2))
    # a lash flick at the outer corner
    outer = 1 if cx > FACE_SIZE / 2 else -1
    x0 = cx + outer * half_width
    canvas.draw.line(
        canvas.points((x0, cy), (x0 + outer * 3, cy - 3)), fill=LINE, width=canvas.width(1.8)
    )


def _brow(canvas: _Canvas, cx: float, cy: float, half_width: float) -> None:
    box = canvas.box(cx, cy + 3, half_width * 1.05, 4)
    canvas.draw.arc(box, 200, 340, fill=HAIR, width=canvas.width(2.0))


def _mouth(canvas: _Canvas, cx: float, cy: float, level: int, squeeze: float) -> None:
    """A closed smile, or an opening of MOUTH_OPENINGS[level] (tongue at the bottom)."""
    half_width = (8.5 + 2.0 * level) * squeeze
    opening = MOUTH_OPENINGS[level]
    if opening == 0:
        canvas.draw.arc(
            canvas.box(cx, cy - 3, half_width, 4), 20, 160, fill=LIP, width=canvas.width(2.2)
        )
        return
    top = cy - opening * 0.3
    canvas.draw.chord(canvas.box(cx, top, half_width, opening), 0, 180, fill=MOUTH_INSIDE)
    tongue = canvas.box(cx, top + opening * 0.8, half_width * 0.6, opening * 0.35)
    canvas.draw.chord(tongue, 180, 360, fill=TONGUE)
    canvas.draw.line(
        canvas.points((cx - half_width, top), (cx + half_width, top)),
        fill=LIP,
        width=canvas.width(1.6),
    )


@functools.cache
def _face(levels: FaceLevels) -> bytes:
    """One variant as PNG bytes (drawn on the first call, then cached)."""
    canvas = _Canvas()
    draw = canvas.draw
    turn = TURN_AMOUNTS[levels.turn]
    head_x = FACE_SIZE / 2 + OVAL_SHIFT * turn
    face_x = FACE_SIZE / 2 + FEATURE_SHIFT * turn
    canvas.ellipse(80, 84, 70, 70, fill=HALO)
    # long hair behind the head, shoulders, neck
    canvas.ellipse(head_x - 2 * turn, 80, 56, 58, fill=HAIR)
    draw.rectangle(canvas.box(head_x - 2 * turn, 122, 56, 38), fill=HAIR)
    draw.rectangle(canvas.box(head_x, 138, 9, 12), fill=SKIN_SHADE)
    draw.chord(canvas.box(80, 172, 58, 26), 180, 360, fill=TOP)
    # the face
    face_half_width = 45 * (1 - 0.06 * turn)
    canvas.ellipse(head_x, 88, face_half_width, 52, fill=SKIN, outline=SKIN_SHADE, width=4)
    # bangs: the crown, then a scalloped fringe swept toward the turn
    draw.chord(canvas.box(head_x, 70, 50, 44), 180, 360, fill=HAIR)
    fringe_x = (head_x + face_x) / 2  # between the oval and the features: stays on the head
    for k, drop in enumerate(FRINGE_DROPS):
        x = fringe_x - 34 + k * 17
        canvas.ellipse(x, 62 + drop / 2, 11, 8 + drop / 2, fill=HAIR)
    draw.arc(canvas.box(head_x - 14, 48, 16, 10), 200, 300, fill=HAIR_SHINE, width=canvas.width(3))
    # blush, the far cheek narrower
    layer, blush = canvas.overlay()
    near, far = 1 + 0.05 * turn, 1 - FAR_EYE_NARROWING * turn
    blush.ellipse(canvas.box(face_x - 27, 108, 7 * near, 4), fill=BLUSH)
    blush.ellipse(canvas.box(face_x + 27 * (1 - 0.35 * turn), 108, 7 * far, 4), fill=BLUSH)
    canvas.image.alpha_composite(layer)
    # eyes and brows
    eye_y = 92
    left_x = face_x - 19
    right_x = face_x + 19 * (1 - 0.25 * turn)
    brow_y = eye_y - EYE_HALF_HEIGHTS[levels.eyes] - 6 - BROW_LIFT * levels.eyes
    for x, scale in ((left_x, near), (right_x, far)):
        _eye(canvas, x, eye_y, EYE_HALF_WIDTH * scale, levels.eyes)
        _brow(canvas, x, brow_y, EYE_HALF_WIDTH * scale)
    # nose and mouth
    nose_x = face_x + 2 + 3 * turn
    draw.line(
        canvas.points((nose_x, 104), (nose_x - 1.5, 108)), fill=SKIN_SHADE, width=canvas.width(2)
    )
    _mouth(canvas, face_x + 1, 122, levels.mouth, 1 - 0.15 * turn)
    return canvas.png()


def face_levels(expression: str) -> FaceLevels | None:
    """The three levels of an expression line; None when it does not parse."""
    parsed = parse_expression(expression)
    return None if parsed is None else FaceLevels.of(parsed)


def face_png(expression: str) -> bytes | None:
    """Her face for an expression line as PNG bytes (the cached object); None when the text
    does not parse."""
    levels = face_levels(expression)
    return None if levels is None else _face(levels)


def face_file(expression: str) -> discord.File | None:
    """A fresh attachment (`FACE_FILENAME`, for an embed's `attachment://face.png`) over the
    cached bytes, with the expression line as its alt text; None when the text does not parse.
    A new File each call: discord.py reads (and closes) its stream when sending."""
    levels = face_levels(expression)
    if levels is None:
        return None
    return discord.File(
        io.BytesIO(_face(levels)),
        filename=FACE_FILENAME,
        description=levels.expression().render(),
    )


def _label(levels: FaceLevels) -> tuple[str, str]:
    return (
        f"eyes {EYES_WORDS[levels.eyes]}, mouth {MOUTH_WORDS[levels.mouth]}",
        f"turn {TURN_WORDS[levels.turn]}",
    )


def all_faces_grid() -> bytes:
    """All 36 faces, labelled, in a GRID_COLUMNS × GRID_ROWS PNG (docs/faces.png)."""
    grid = Image.new("RGB", GRID_SIZE, GRID_BACKGROUND)
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=GRID_LABEL_FONT_SIZE)
    for i, levels in enumerate(ALL_LEVELS):
        x = (i % GRID_COLUMNS) * GRID_CELL[0] + GRID_PADDING
        y = (i // GRID_COLUMNS) * GRID_CELL[1] + GRID_PADDING
        grid.paste(Image.open(io.BytesIO(_face(levels))), (x, y))
        for line, text in enumerate(_label(levels)):
            ty = y + FACE_SIZE + 2 + line * (GRID_LABEL_FONT_SIZE + 3)
            draw.text((x + FACE_SIZE / 2, ty), text, fill=GRID_TEXT, font=font, anchor="mt")
    out = io.BytesIO()
    grid.save(out, format="PNG")
    return out.getvalue()


def main(argv: list[str]) -> int:
    """`python -m bot.faces OUT.png`: write the grid of all 36 faces."""
    if len(argv) != 1:
        print("usage: python -m bot.faces OUT.png", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(all_faces_grid())
    print(f"{out}: {len(ALL_LEVELS)} faces")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
