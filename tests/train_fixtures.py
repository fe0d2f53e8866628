"""Small trajectories folders and tiny models for the training tests (real files, real tiny models).

``write_trajectories`` draws a few coloured shapes per PNG with PIL and writes ``sft.jsonl`` / ``rl.jsonl``
in the format ``mirg data trajectories`` produces: prompts from ``mirg.prompts.user_message``, answers
from ``mirg.answer.render_answer``, boxes converted to the model's coordinate space, and the folder's record of that
space (``trajectories.json``; ``record=False`` leaves it out, as folders written before it existed).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from mirg.answer import render_answer
from mirg.geometry import CoordSpace, round_box
from mirg.prompts import user_message

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square")


def draw_image(path: Path, size: tuple[int, int], rng: random.Random, shapes: int = 2) -> list[dict]:
    """A PNG with ``shapes`` coloured shapes on grey; returns their labels and pixel boxes."""
    image = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(shapes):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        side = rng.randint(size[0] // 6, size[0] // 3)
        x1, y1 = rng.randint(0, size[0] - side), rng.randint(0, size[1] - side)
        box = [x1, y1, x1 + side, y1 + side]
        (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
        objects.append({"label": f"{colour} {shape}", "bbox": box})
    image.save(path)
    return objects


def write_trajectories(
    folder: Path,
    n: int = 8,
    images_per_prompt: tuple[int, int] = (2, 4),
    side: int = 112,
    coords: str = "pixel",
    min_pixels: int = 3136,
    max_pixels: int = 50176,
    seed: int = 0,
    record: bool = True,
) -> Path:
    """A trajectories folder with ``n`` samples of 2-4 images each; boxes in answers are in ``coords``."""
    rng = random.Random(seed)
    space = CoordSpace(coords, min_pixels, max_pixels)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    sft, rl = [], []
    for i in range(n):
        k = rng.randint(*images_per_prompt)
        sizes = [(side, side if j % 2 == 0 else side * 3 // 4) for j in range(k)]
        paths = [f"images/{i:03d}_{j + 1}.png" for j in range(k)]
        objects = [draw_image(folder / p, s, rng) for p, s in zip(paths, sizes)]
        target = rng.randint(1, k)
        obj = objects[target - 1][0]
        question = f"Which image shows the {obj['label']}? Locate it."
        prompt = user_message(question, k, coords)
        box = round_box(space.from_pixels(obj["bbox"], sizes[target - 1]), None if coords != "norm1" else 3)
        think = f"The {obj['label']} is in image {target}."
        base = {"id": f"t-{i:03d}", "task": "fixture", "images": paths, "prompt": prompt}
        completion = [{"role": "assistant", "content": [{"type": "text", "text": render_answer(target, box, think)}]}]
        sft.append({**base, "completion": completion})
        rl.append({**base, "target_image": target, "target_box": obj["bbox"], "image_sizes": [list(s) for s in sizes]})
    _write_jsonl(folder / "sft.jsonl", sft)
    _write_jsonl(folder / "rl.jsonl", rl)
    if record:
        from mirg.data.trajectories import TrajectoryOptions, write_space_record

        write_space_record(folder, TrajectoryOptions(space))
    return folder


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
