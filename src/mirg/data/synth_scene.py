"""Scenes of the synthetic benchmark: a few filled shapes on a plain, lightly tinted background.

Everything here is geometry and drawing; which scenes make up a sample is decided in
:mod:`mirg.data.synth_tasks`. Boxes are integer pixels ``(x1, y1, x2, y2)`` with the shape drawn on
pixels ``x1..x2-1`` and ``y1..y2-1``, so the box is exactly what is painted.

Two objects of one image never share a kind (colour + shape): a label like ``"red circle"`` always
names one object of an image.

>>> canvas = Canvas(224)
>>> canvas.size_word((10, 10, 40, 40)), canvas.size_word((10, 10, 70, 70))
('small', 'large')
>>> join_words(["a red circle", "a blue square", "a green star"])
'a red circle, a blue square and a green star'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

Box = tuple[int, int, int, int]
Kind = tuple[str, str]  # (colour, shape)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (235, 205, 20),
    "green": (40, 160, 60),
    "cyan": (20, 185, 200),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
KINDS: tuple[Kind, ...] = tuple((c, s) for c in COLORS for s in SHAPES)
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (244, 244, 244),
    "gray": (186, 186, 186),
    "beige": (236, 226, 204),
    "light blue": (212, 228, 242),
}
#: Outlines that mark a reference object use a colour no object has.
MARK_COLOR = "black"
MARK_RGB = (0, 0, 0)
#: Objects whose side is at least this fraction of the image side are "large".
LARGE_FROM = 0.22
SMALL_RANGE = (0.15, 0.19)
LARGE_RANGE = (0.25, 0.30)
MIN_FRACTION = 0.12


class Retry(Exception):
    """This random draw did not fit (no room, a collision); draw again with the same generator."""


@dataclass(frozen=True)
class Canvas:
    """A square image of ``side`` pixels and the spacing rules that follow from it."""

    side: int

    @property
    def mark_width(self) -> int:
        return max(2, round(self.side / 112))

    @property
    def mark_pad(self) -> int:
        return max(2, round(self.side * 0.015))

    @property
    def edge(self) -> int:
        """Distance kept from the image border, so a marking outline always fits inside."""
        return self.mark_pad + self.mark_width

    @property
    def gap(self) -> int:
        """Distance kept between objects: more than an outline takes, so outlines never touch others."""
        return max(self.edge + 2, round(self.side * 0.04))

    @property
    def min_side(self) -> int:
        return math.ceil(self.side * MIN_FRACTION)

    def size_word(self, box: Box) -> str:
        return "large" if (box[2] - box[0]) >= LARGE_FROM * self.side else "small"

    def random_side(self, rng: np.random.Generator, large: bool) -> int:
        lo, hi = LARGE_RANGE if large else SMALL_RANGE
        return max(self.min_side, round(rng.uniform(lo, hi) * self.side))


@dataclass(frozen=True)
class Obj:
    """One drawn object: its colour, shape and box."""

    color: str
    shape: str
    box: Box

    @property
    def kind(self) -> Kind:
        return (self.color, self.shape)

    @property
    def label(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass
class View:
    """One image of a sample: what to draw, and what its note says beyond the objects."""

    background: str
    bg_rgb: tuple[int, int, int]
    objects: list[Obj]
    mark: Obj | None = None
    brightness: float = 1.0
    noise: int = 0
    noise_seed: int = 0
    closeup: bool = False
    remark: str = ""

    def index_of(self, obj: Obj) -> int:
        return self.objects.index(obj)


def reading_order(objects: Iterable[Obj]) -> list[Obj]:
    """Top to bottom, then left to right (by centre): the order annotations and notes use."""
    return sorted(objects, key=lambda o: (o.box[1] + o.box[3], o.box[0] + o.box[2], o.kind))


def separated(a: Box, b: Box, gap: int) -> bool:
    """True when boxes ``a`` and ``b`` are at least ``gap`` pixels apart along x or y."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def layout_ok(boxes: Sequence[Box], canvas: Canvas) -> bool:
    """Every box inside the image (keeping the edge), big enough, and every pair ``gap`` apart."""
    lo, hi = canvas.edge, canvas.side - canvas.edge
    for i, b in enumerate(boxes):
        if b[0] < lo or b[1] < lo or b[2] > hi or b[3] > hi:
            return False
        if min(b[2] - b[0], b[3] - b[1]) < canvas.min_side:
            return False
        if any(not separated(b, o, canvas.gap) for o in boxes[:i]):
            return False
    return True


def place_boxes(rng: np.random.Generator, canvas: Canvas, sides: Sequence[int], taken: Sequence[Box] = ()) -> list[Box]:
    """Square boxes of the given sides at random free spots; raises :class:`Retry` when one finds no room."""
    boxes = list(taken)
    out: list[Box] = []
    lo = canvas.edge
    for side in sides:
        hi = canvas.side - canvas.edge - side
        if hi < lo:
            raise Retry("object larger than the image")
        for _ in range(80):
            x, y = (int(v) for v in rng.integers(lo, hi + 1, size=2))
            box = (x, y, x + side, y + side)
            if all(separated(box, o, canvas.gap) for o in boxes):
                break
        else:
            raise Retry("no room for another object")
        boxes.append(box)
        out.append(box)
    return out


def place(rng: np.random.Generator, canvas: Canvas, kinds: Sequence[Kind], taken: Sequence[Box] = ()) -> list[Obj]:
    """Objects of the given kinds (in that order), each small or large at random, placed without overlap."""
    sides = [canvas.random_side(rng, bool(rng.random() < 0.5)) for _ in kinds]
    boxes = place_boxes(rng, canvas, sides, taken)
    return [Obj(c, s, b) for (c, s), b in zip(kinds, boxes)]


def random_background(rng: np.random.Generator) -> tuple[str, tuple[int, int, int]]:
    """A background name and its colour, tinted by a few levels so no two scenes are exactly alike."""
    names = list(BACKGROUNDS)
    name = names[int(rng.integers(len(names)))]
    jitter = rng.integers(-6, 7, size=3)
    rgb = tuple(int(min(255, max(0, c + j))) for c, j in zip(BACKGROUNDS[name], jitter))
    return name, rgb  # type: ignore[return-value]


def make_view(rng: np.random.Generator, objects: Sequence[Obj], background: tuple[str, tuple] | None = None,
              **kwargs) -> View:
    """A :class:`View` of ``objects`` in reading order, on ``background`` or a random one."""
    name, rgb = background if background is not None else random_background(rng)
    return View(background=name, bg_rgb=rgb, objects=reading_order(objects), **kwargs)


def moved(obj: Obj, dx: int, dy: int) -> Obj:
    x1, y1, x2, y2 = obj.box
    return replace(obj, box=(x1 + dx, y1 + dy, x2 + dx, y2 + dy))


def viewed(obj: Obj, side: int, zoom: float, dx: int, dy: int, mirror: bool) -> Obj:
    """``obj`` as a camera sees it after mirroring, zooming about the image centre and shifting."""
    x1, y1, x2, y2 = obj.box
    if mirror:
        x1, x2 = side - x2, side - x1
    c = side / 2

    def map_(v: float, d: int) -> int:
        return round((v - c) * zoom + c + d)

    return replace(obj, box=(map_(x1, dx), map_(y1, dy), map_(x2, dx), map_(y2, dy)))


def join_words(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def article(word: str) -> str:
    """``"an"`` before a vowel sound, else ``"a"``: ``article("orange") == "an"``."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def describe(obj: Obj, canvas: Canvas) -> str:
    """``"a small red circle"``."""
    return f"a {canvas.size_word(obj.box)} {obj.color} {obj.shape}"


def note(view: View, canvas: Canvas) -> str:
    """The image-level note: its objects in reading order, the background, and any marking or change."""
    body = join_words([describe(o, canvas) for o in view.objects]) or "nothing"
    text = f"{body} on a {view.background} background"
    if view.closeup:
        text = "a close-up of " + text
    if view.mark is not None:
        text += f"; the {view.mark.label} is outlined in {MARK_COLOR}"
    if view.remark:
        text += f"; {view.remark}"
    return text
