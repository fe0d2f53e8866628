"""Drawing the synthetic scenes with PIL (and numpy for lighting and noise).

Each shape fills its box exactly: a star or a triangle is stretched to touch all four sides, so the
annotated box is the painted extent.
"""

from __future__ import annotations

import math
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


def save_png(img: Image.Image, path: Path) -> None:
    """Write a PNG with fast compression (level 1): scenes are flat colour, so it costs little in size."""
    img.save(path, format="PNG", compress_level=1)
