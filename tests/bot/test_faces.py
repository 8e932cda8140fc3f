"""Her face: one distinct picture per expression, drawn once, and the docs grid."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from bot.faces import (
    ALL_LEVELS,
    FACE_FILENAME,
    FACE_SIZE,
    GRID_CELL,
    GRID_COLUMNS,
    GRID_PADDING,
    GRID_ROWS,
    GRID_SIZE,
    FaceLevels,
    all_faces_grid,
    face_file,
    face_levels,
    face_png,
    main,
)

NEUTRAL = "(눈 보통, 입 보통, 고개 돌림 없음)"


def text_of(levels: FaceLevels) -> str:
    return levels.expression().render()


def pixels(png: bytes) -> bytes:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (FACE_SIZE, FACE_SIZE)
    return image.convert("RGB").tobytes()


def test_the_36_expressions_give_36_different_pictures() -> None:
    assert len(ALL_LEVELS) == 36 == len(set(ALL_LEVELS))
    drawn = {levels: face_png(text_of(levels)) for levels in ALL_LEVELS}
    assert all(png is not None for png in drawn.values())
    assert len({pixels(png) for png in drawn.values() if png is not None}) == 36


@pytest.mark.parametrize("field", ["eyes", "mouth", "turn"])
def test_each_value_alone_changes_the_picture(field: str) -> None:
    for base in ALL_LEVELS:
        others = {getattr(levels, field) for levels in ALL_LEVELS} - {getattr(base, field)}
        for value in others:
            changed = replace(base, **{field: value})
            before, after = face_png(text_of(base)), face_png(text_of(changed))
            assert before is not None and after is not None
            # not a stray pixel: a visible part of the face moved
            differing = sum(a != b for a, b in zip(pixels(before), pixels(after)))
            assert differing > 100, (base, changed, differing)


@pytest.mark.parametrize(
    "text",
    ["", "웃는 얼굴", "(눈 보통, 입 보통)", "(눈 이상하게, 입 보통, 고개 돌림 없음)", "(eyes big)"],
)
def test_text_that_does_not_parse_gets_no_face(text: str) -> None:
    assert face_png(text) is None
    assert face_file(text) is None


def test_the_engines_tolerance_of_junk_around_the_line_is_kept() -> None:
    assert face_png(f"표정: {NEUTRAL} 끝") is face_png(NEUTRAL)


def test_each_variant_is_drawn_once_and_every_file_is_fresh() -> None:
    assert face_png(NEUTRAL) is face_png(NEUTRAL)
    first, second = face_file(NEUTRAL), face_file(NEUTRAL)
    assert first is not None and second is not None and first is not second
    assert first.filename == FACE_FILENAME
    assert first.description == NEUTRAL  # the alt text screen readers read
    assert first.fp.read() == second.fp.read() == face_png(NEUTRAL)


def test_the_grid_holds_all_faces_in_six_rows_of_six(tmp_path: Path) -> None:
    grid = Image.open(io.BytesIO(all_faces_grid()))
    assert (GRID_COLUMNS, GRID_ROWS) == (6, 6)
    assert grid.size == GRID_SIZE
    assert grid.width >= GRID_COLUMNS * FACE_SIZE and grid.height >= GRID_ROWS * FACE_SIZE
    out = tmp_path / "docs" / "faces.png"
    assert main([str(out)]) == 0
    assert Image.open(out).size == GRID_SIZE
    assert main([]) == 2


def test_the_docs_grid_shows_the_faces_the_code_draws() -> None:
    """docs/faces.png is current (labels aside: text rendering may differ by platform)."""
    docs = Image.open(Path(__file__).parents[2] / "docs" / "faces.png").convert("RGB")
    assert docs.size == GRID_SIZE
    for i, levels in enumerate(ALL_LEVELS):
        x = (i % GRID_COLUMNS) * GRID_CELL[0] + GRID_PADDING
        y = (i // GRID_COLUMNS) * GRID_CELL[1] + GRID_PADDING
        cell = docs.crop((x, y, x + FACE_SIZE, y + FACE_SIZE)).tobytes()
        png = face_png(text_of(levels))
        assert png is not None and cell == pixels(png), "run: python -m bot.faces docs/faces.png"


def test_the_levels_round_trip_through_the_rendered_line() -> None:
    for levels in ALL_LEVELS:
        assert face_levels(text_of(levels)) == levels
