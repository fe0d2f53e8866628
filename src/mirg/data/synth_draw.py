"""Drawing the synthetic scenes with PIL (and numpy for lighting and noise).

Each shape fills its box exactly: a star or a triangle is stretched to touch all four sides, so the
annotated box is the painted extent.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mirg.data.synth_scene import COLORS, MARK_RGB, Box, Canvas, View


def _unit_star() -> list[tuple[float, float]]:
    """A five-pointed star, point up, scaled to touch the unit square on all sides."""
    pts = []
    for i in range(10):
        radius = 1.0 if i % 2 == 0 else 0.45
        angle = math.radians(-90 + 36 * i)
        pts.append((radius * math.cos(angle), radius * math.sin(angle)))
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [((x - min(xs)) / (max(xs) - min(xs)), (y - min(ys)) / (max(ys) - min(ys))) for x, y in pts]


_STAR = _unit_star()


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, rgb: tuple[int, int, int]) -> None:
    """Paint ``shape`` filling pixels ``x1..x2-1`` by ``y1..y2-1``."""
    x1, y1, x2, y2 = box
    r, b = x2 - 1, y2 - 1
    cx, cy = (x1 + r) / 2, (y1 + b) / 2
    if shape == "circle":
        draw.ellipse([x1, y1, r, b], fill=rgb)
    elif shape == "square":
        draw.rectangle([x1, y1, r, b], fill=rgb)
    elif shape == "triangle":
        draw.polygon([(x1, b), (r, b), (cx, y1)], fill=rgb)
    elif shape == "diamond":
        draw.polygon([(cx, y1), (r, cy), (cx, b), (x1, cy)], fill=rgb)
    elif shape == "cross":
        tx, ty = (r - x1) / 3, (b - y1) / 3
        draw.rectangle([round(x1 + tx), y1, round(r - tx), b], fill=rgb)
        draw.rectangle([x1, round(y1 + ty), r, round(b - ty)], fill=rgb)
    elif shape == "star":
        w, h = r - x1, b - y1
        draw.polygon([(x1 + u * w, y1 + v * h) for u, v in _STAR], fill=rgb)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def draw_mark(draw: ImageDraw.ImageDraw, box: Box, canvas: Canvas) -> None:
    """The outline marking a reference object: ``mark_pad`` pixels outside its box, never on it."""
    pad, width = canvas.mark_pad, canvas.mark_width
    x1, y1, x2, y2 = box
    outer = [x1 - pad - width, y1 - pad - width, x2 - 1 + pad + width, y2 - 1 + pad + width]
    draw.rectangle(outer, outline=MARK_RGB, width=width)


def apply_lighting(img: Image.Image, brightness: float, noise: int, seed: int) -> Image.Image:
    """Scale brightness and add uniform noise of +-``noise`` levels (seeded, so output is reproducible)."""
    arr = np.asarray(img, dtype=np.float32) * brightness
    if noise:
        rng = np.random.default_rng(seed)
        arr += rng.integers(-noise, noise + 1, size=arr.shape, dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def render(view: View, canvas: Canvas) -> Image.Image:
    """The picture of one view."""
    img = Image.new("RGB", (canvas.side, canvas.side), view.bg_rgb)
    draw = ImageDraw.Draw(img)
    for obj in view.objects:
        draw_shape(draw, obj.shape, obj.box, COLORS[obj.color])
    if view.mark is not None:
        draw_mark(draw, view.mark.box, canvas)
    if view.brightness != 1.0 or view.noise:
        img = apply_lighting(img, view.brightness, view.noise, view.noise_seed)
    return img


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(img: Image.Image, level: int = 1) -> bytes:
    """An 8-bit RGB PNG with no row filter and fast zlib compression.

    PIL's encoder picks a filter per row, which costs more than the drawing itself; flat-colour scenes
    compress as well without it (and noisy ones barely better with it). Any PNG reader reads the result:

    >>> img = Image.new("RGB", (3, 2), (10, 20, 30))
    >>> import io; Image.open(io.BytesIO(encode_png(img))).getpixel((2, 1))
    (10, 20, 30)
    """
    rgb = img.convert("RGB") if img.mode != "RGB" else img
    width, height = rgb.size
    rows = np.zeros((height, width * 3 + 1), dtype=np.uint8)  # column 0: filter type 0 (none)
    rows[:, 1:] = np.frombuffer(rgb.tobytes(), dtype=np.uint8).reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + _chunk(b"IEND", b""))


def save_png(img: Image.Image, path: Path) -> None:
    path.write_bytes(encode_png(img))
