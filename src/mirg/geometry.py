"""Boxes, IoU and the coordinate spaces models speak.

Every box is ``(x1, y1, x2, y2)``. Image sizes are ``(width, height)`` in pixels, as PIL reports them.
Manifests always hold boxes in pixels of the original image; models speak one of four spaces:

========== ================================================================ =======================
space      meaning                                                          used by
========== ================================================================ =======================
pixel      pixels of the original image                                     manifests, tiny models
resized    pixels of the image as Qwen2.5-VL's processor resized it         Qwen2.5-VL
norm1000   0-1000 relative to width / height                                Qwen2-VL, Qwen3-VL
norm1      0-1 relative to width / height                                   original MIG-Bench
========== ================================================================ =======================

>>> space = CoordSpace("norm1000")
>>> space.to_pixels((100, 200, 500, 600), size=(900, 616))
(90.0, 123.2, 450.0, 369.6)
>>> iou((0, 0, 10, 10), (5, 0, 15, 10))
0.3333333333333333
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from mirg.errors import MirgError

Box = tuple[float, float, float, float]
Size = tuple[int, int]  # (width, height)

SPACES = ("pixel", "resized", "norm1000", "norm1")

#: Qwen2.5-VL's patch (14) times its spatial merge (2): resized sides are multiples of this.
QWEN_FACTOR = 28
#: Pixel limits of Qwen2.5-VL-Instruct's published preprocessor config (also Qwen2-VL's).
QWEN_MIN_PIXELS = 3136
QWEN_MAX_PIXELS = 12845056


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """The ``(height, width)`` Qwen2-VL / Qwen2.5-VL processors resize an image to.

    Both sides become multiples of ``factor``, the area lands within ``[min_pixels, max_pixels]`` and
    the aspect ratio is kept as closely as possible. Same arithmetic as transformers' processor.

    >>> smart_resize(616, 900)
    (616, 896)
    >>> smart_resize(616, 900, max_pixels=200_000)
    (364, 532)
    """
    if height <= 0 or width <= 0:
        raise MirgError(f"image size must be positive, got width {width}, height {height}")
    if max(height, width) / min(height, width) > 200:
        raise MirgError(f"aspect ratio of a {width}x{height} image exceeds 200, which Qwen cannot resize")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class CoordSpace:
    """A coordinate space with exact conversions to and from original-image pixels.

    ``min_pixels``/``max_pixels`` matter only for ``resized``.
    """

    name: str = "pixel"
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.name not in SPACES:
            raise MirgError(f"unknown coordinate space {self.name!r}; choose one of {', '.join(SPACES)}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise MirgError(
                f"need 0 < min_pixels <= max_pixels, got min_pixels={self.min_pixels}, max_pixels={self.max_pixels}"
            )

    def extent(self, size: Sequence[int]) -> tuple[float, float]:
        """Width and height of an image of ``size`` (original pixels) as measured in this space."""
        width, height = size
        if self.name == "pixel":
            return float(width), float(height)
        if self.name == "resized":
            h_bar, w_bar = smart_resize(height, width, QWEN_FACTOR, self.min_pixels, self.max_pixels)
            return float(w_bar), float(h_bar)
        if self.name == "norm1000":
            return 1000.0, 1000.0
        return 1.0, 1.0

    def to_pixels(self, box: Sequence[float], size: Sequence[int]) -> Box:
        """Convert ``box`` from this space to pixels of an original image of ``size`` (no clipping)."""
        if self.name == "pixel":
            return _as_box(box)
        ext_w, ext_h = self.extent(size)
        sx, sy = size[0] / ext_w, size[1] / ext_h
        return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)

    def from_pixels(self, box: Sequence[float], size: Sequence[int]) -> Box:
        """Convert ``box`` from pixels of an original image of ``size`` to this space."""
        if self.name == "pixel":
            return _as_box(box)
        ext_w, ext_h = self.extent(size)
        sx, sy = ext_w / size[0], ext_h / size[1]
        return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def _as_box(box: Sequence[float]) -> Box:
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def box_area(box: Sequence[float]) -> float:
    """Area of ``box``; 0 for an empty or inverted box."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def is_proper_box(box: Sequence[float]) -> bool:
    """True when ``x1 < x2`` and ``y1 < y2``."""
    return box[0] < box[2] and box[1] < box[3]


def intersection(a: Sequence[float], b: Sequence[float]) -> float:
    """Area shared by two boxes (0 when they are disjoint or merely touch)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes, in [0, 1].

    No reordering: an inverted or empty box has area 0 and scores 0 against anything.

    >>> iou((0, 0, 2, 2), (0, 0, 2, 2))
    1.0
    >>> iou((0, 0, 1, 1), (1, 0, 2, 1))
    0.0
    >>> iou((2, 2, 0, 0), (0, 0, 2, 2))
    0.0
    """
    if not (is_proper_box(a) and is_proper_box(b)):
        return 0.0
    inter = intersection(a, b)
    if inter == 0.0:
        return 0.0
    union = box_area(a) + box_area(b) - inter
    return min(1.0, inter / union)


def clip_box(box: Sequence[float], size: Sequence[int]) -> Box:
    """Clip ``box`` to an image of ``size`` = (width, height). Order is kept (no reordering).

    >>> clip_box((-5, 10, 300, 50), (224, 224))
    (0.0, 10.0, 224.0, 50.0)
    """
    width, height = size
    return (
        min(max(float(box[0]), 0.0), float(width)),
        min(max(float(box[1]), 0.0), float(height)),
        min(max(float(box[2]), 0.0), float(width)),
        min(max(float(box[3]), 0.0), float(height)),
    )


def box_inside(box: Sequence[float], size: Sequence[int]) -> bool:
    """True when ``box`` lies within an image of ``size`` (edges included)."""
    width, height = size
    return 0 <= box[0] and 0 <= box[1] and box[2] <= width and box[3] <= height


def round_box(box: Sequence[float], ndigits: int | None = None) -> list:
    """Round every coordinate: to integers when ``ndigits`` is None, else to ``ndigits`` decimals."""
    if ndigits is None:
        return [int(round(v)) for v in box]
    return [round(float(v), ndigits) for v in box]


def xywh_to_xyxy(box: Sequence[float]) -> Box:
    """A ``[x, y, width, height]`` box (COCO's layout) as ``(x1, y1, x2, y2)`` in the same pixels; the sums are
    rounded to 1e-6 px, so that float noise (``237.948 + 159.738 = 397.68600000000004``) stays out of files.

    >>> xywh_to_xyxy([10, 20, 30, 5.5])
    (10.0, 20.0, 40.0, 25.5)
    >>> xywh_to_xyxy([237.948, 5.912, 159.738, 283.776])
    (237.948, 5.912, 397.686, 289.688)
    """
    x, y, w, h = (float(v) for v in box)
    return (x, y, round(x + w, 6), round(y + h, 6))


def pixel_window(box: Sequence[float], size: Sequence[int]) -> tuple[int, int, int, int]:
    """The smallest whole-pixel window holding ``box``, inside an image of ``size``: what a crop of it cuts.

    >>> pixel_window((10.4, 20.0, 30.2, 40.9), (32, 100))
    (10, 20, 31, 41)
    >>> pixel_window((-3, 0, 50, 10), (40, 10))
    (0, 0, 40, 10)
    """
    x1, y1, x2, y2 = clip_box(box, size)
    return (math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2))


def box_in_window(box: Sequence[float], window: Sequence[int]) -> Box:
    """``box`` (pixels of a photo) in the pixels of the crop that ``window`` = (x1, y1, x2, y2) cuts from it,
    clipped to the crop.

    >>> box_in_window((12.5, 20, 30, 41), (10, 20, 31, 41))
    (2.5, 0.0, 20.0, 21.0)
    """
    wx1, wy1, wx2, wy2 = window
    shifted = (box[0] - wx1, box[1] - wy1, box[2] - wx1, box[3] - wy1)
    return clip_box(shifted, (wx2 - wx1, wy2 - wy1))
