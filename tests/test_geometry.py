"""Coordinate spaces, IoU and clipping: property tests and the two real MIG-Bench photos."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mirg.errors import MirgError
from mirg.geometry import SPACES, CoordSpace, clip_box, iou, smart_resize

sizes = st.tuples(st.integers(16, 4000), st.integers(16, 4000)).filter(lambda s: max(s) / min(s) <= 150)


@st.composite
def boxes_in(draw, size):
    w, h = size
    x1 = draw(st.floats(0, w - 1, allow_nan=False))
    y1 = draw(st.floats(0, h - 1, allow_nan=False))
    x2 = draw(st.floats(x1 + 0.5, w, allow_nan=False))
    y2 = draw(st.floats(y1 + 0.5, h, allow_nan=False))
    assume(x1 < x2 and y1 < y2)
    return (x1, y1, x2, y2)


@st.composite
def size_and_box(draw):
    size = draw(sizes)
    return size, draw(boxes_in(size))


@settings(max_examples=300, deadline=None)
@given(size_and_box(), st.sampled_from(SPACES))
def test_round_trip_is_exact_to_float_precision(size_box, space_name):
    size, box = size_box
    space = CoordSpace(space_name, min_pixels=3136, max_pixels=1_003_520)
    back = space.to_pixels(space.from_pixels(box, size), size)
    assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6) for a, b in zip(back, box))


@settings(max_examples=300, deadline=None)
@given(size_and_box(), size_and_box())
def test_iou_invariants(a, b):
    (size, box_a), (_, box_b) = a, b
    v = iou(box_a, box_b)
    assert 0.0 <= v <= 1.0
    assert v == iou(box_b, box_a)
    assert iou(box_a, box_a) == 1.0
    # IoU is unchanged by scaling both boxes the same way (why norm spaces score exactly).
    sx, sy = 1000 / size[0], 1000 / size[1]
    scaled = iou(*[(x1 * sx, y1 * sy, x2 * sx, y2 * sy) for x1, y1, x2, y2 in (box_a, box_b)])
    assert math.isclose(v, scaled, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(sizes, st.lists(st.floats(-5000, 9000, allow_nan=False), min_size=4, max_size=4))
def test_clip_keeps_box_inside(size, coords):
    x1, y1, x2, y2 = clip_box(coords, size)
    assert 0 <= x1 <= size[0] and 0 <= x2 <= size[0]
    assert 0 <= y1 <= size[1] and 0 <= y2 <= size[1]


def test_iou_edge_cases():
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0  # disjoint
    assert iou((10, 10, 0, 0), (0, 0, 10, 10)) == 0.0  # inverted scores 0, no reordering
    assert iou((5, 5, 5, 9), (0, 0, 10, 10)) == 0.0  # empty
    assert iou((0, 0, 10, 10), (0, 0, 10, 5)) == 0.5


def test_smart_resize_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

    for h, w in [(616, 900), (739, 474), (28, 28), (100, 3000), (4000, 3000), (15, 40), (1080, 1920)]:
        for lo, hi in [(3136, 12845056), (3136, 1003520), (3136, 401408), (200704, 401408)]:
            assert smart_resize(h, w, 28, lo, hi) == hf_smart_resize(h, w, 28, lo, hi)


def test_bad_space_and_limits_are_clear():
    with pytest.raises(MirgError, match="unknown coordinate space"):
        CoordSpace("pixels")
    with pytest.raises(MirgError, match="min_pixels"):
        CoordSpace("resized", min_pixels=10, max_pixels=5)
    with pytest.raises(MirgError, match="aspect ratio"):
        smart_resize(10, 5000)


@pytest.mark.parametrize("name,size", [("case076_1.jpg", (900, 616)), ("case076_2.jpg", (474, 739))])
def test_real_photos_round_trip_within_one_pixel(parity_dir, name, size):
    from PIL import Image

    with Image.open(parity_dir / "images" / name) as img:
        assert img.size == size
    box = (123.0, 87.0, 401.0, 555.0) if size[1] > 600 else (123.0, 87.0, 401.0, 300.0)
    for space in (CoordSpace("norm1000"), CoordSpace("resized", max_pixels=401_408), CoordSpace("resized")):
        spoken = [round(v) for v in space.from_pixels(box, size)]  # what a model writes: integers
        back = space.to_pixels(spoken, size)
        assert max(abs(a - b) for a, b in zip(back, box)) <= 1.0, (space, spoken, back)


@pytest.mark.parametrize("name,size", [("case076_1.jpg", (900, 616)), ("case076_2.jpg", (474, 739))])
def test_resized_box_read_as_norm1000_is_wrong(parity_dir, name, size):
    box = (300.0, 200.0, 420.0, 330.0)
    resized = CoordSpace("resized")
    spoken = [round(v) for v in resized.from_pixels(box, size)]
    right = resized.to_pixels(spoken, size)
    wrong = CoordSpace("norm1000").to_pixels(spoken, size)
    assert iou(right, box) > 0.95
    assert iou(wrong, box) < 0.5
