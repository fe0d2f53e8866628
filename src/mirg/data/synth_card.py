"""The dataset card of a synthetic dataset: ``README.md`` with counts, balance tables and one example
picture per task (``examples/<task>.png``: the sample's images side by side, the target boxed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from mirg.data.synth_scene import BACKGROUNDS, COLORS, SHAPES

if TYPE_CHECKING:
    from mirg.schema import Sample

TILE = 224
TARGET_RGB = (255, 0, 255)
GAP = 8
HEADER = 16


def example_picture(sample: "Sample", root: Path, path: Path) -> None:
    """The images of ``sample`` in a row, each titled ``Image k``, the target box drawn in magenta."""
    from PIL import Image, ImageDraw

    tiles = []
    for rel, (w, h) in zip(sample.images, sample.image_sizes):
        with Image.open(root / rel) as img:
            scale = min(1.0, TILE / max(w, h))
            tiles.append((img.convert("RGB").resize((round(w * scale), round(h * scale))), scale))
    width = sum(t.width for t, _ in tiles) + GAP * (len(tiles) + 1)
    height = max(t.height for t, _ in tiles) + HEADER + 2 * GAP
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = GAP
    for k, (tile, scale) in enumerate(tiles, start=1):
        canvas.paste(tile, (x, HEADER + GAP))
        draw.text((x, 2), f"Image {k}" + (" (target)" if k == sample.target.image else ""), fill=(0, 0, 0))
        if k == sample.target.image:
            x1, y1, x2, y2 = (v * scale for v in sample.target.bbox)
            top = HEADER + GAP
            draw.rectangle([x + x1 - 2, top + y1 - 2, x + x2 + 1, top + y2 + 1], outline=TARGET_RGB, width=2)
        x += tile.width + GAP
    canvas.save(path, format="PNG", compress_level=6)


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table (and a blank line after it), as the dataset cards print counts."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines + [""]


def position_rows(samples: list["Sample"], most: int) -> list[list]:
    """Samples per target image for each (task, number of images): the rows of a card's balance table."""
    counts = Counter((s.task, s.num_images, s.target.image) for s in samples)
    groups = sorted({(s.task, s.num_images) for s in samples})
    return [[task, n] + [counts.get((task, n, k), "") if k <= n else "" for k in range(1, most + 1)]
            for task, n in groups]


def _example_lines(sample: "Sample") -> list[str]:
    box = [round(v) for v in sample.target.bbox]
    rule = sample.extra.get("hints", {}).get("rule", "")
    return [
        f"### {sample.task}",
        "",
        f"`{sample.id}`, {sample.num_images} images. **Q:** {sample.question}",
        "",
        f"**A:** image {sample.target.image}, box {box} — {rule}.",
        "",
        f"![{sample.task}](examples/{sample.task}.png)",
        "",
    ]


def write_examples(out: Path, samples: list["Sample"]) -> dict[str, "Sample"]:
    """``out/examples/<task>.png`` for the first sample of each task; returns those samples by task."""
    examples = out / "examples"
    examples.mkdir(exist_ok=True)
    first: dict[str, "Sample"] = {}
    for s in samples:
        first.setdefault(s.task, s)
    for task, sample in first.items():
        example_picture(sample, out, examples / f"{task}.png")
    return first


def balance_sections(samples: list["Sample"], tasks_made: Sequence[str], position_note: str) -> list[str]:
    """A card's counts: samples per task, images per sample, and the target image's position per task and number
    of images (``position_note`` says how it is balanced)."""
    tasks = Counter(s.task for s in samples)
    per_images = Counter(s.num_images for s in samples)
    most = max(per_images)
    return [
        "## Samples per task",
        "",
        *markdown_table(["task", "samples"], [[t, tasks[t]] for t in tasks_made if t in tasks]),
        "## Images per sample",
        "",
        *markdown_table(["images", "samples"], [[k, per_images[k]] for k in sorted(per_images)]),
        "## Target image position",
        "",
        f"Samples per target image, for each task and number of images ({position_note}).",
        "",
        *markdown_table(["task", "images", *[str(k) for k in range(1, most + 1)]], position_rows(samples, most)),
    ]


def example_sections(first: dict[str, "Sample"], tasks_made: Sequence[str]) -> list[str]:
    """The card's examples: the first sample of each task, its question, answer and picture."""
    lines = ["## Examples", "", "The first sample of each task; the target is boxed in magenta.", ""]
    for task in tasks_made:
        if task in first:
            lines += _example_lines(first[task])
    return lines


def write_card(out: Path, samples: list["Sample"], tasks_made: Sequence[str], image_size: int, command: str) -> None:
    """Write ``out/README.md`` and ``out/examples/<task>.png`` for ``samples`` (already on disk), made for the tasks
    ``tasks_made`` at ``image_size`` px by ``command``."""
    first = write_examples(out, samples)
    images = sum(s.num_images for s in samples)
    lines = [
        "# Synthetic multi-image grounding benchmark",
        "",
        f"{len(samples)} samples, {images} images of {image_size}x{image_size} px, made by:",
        "",
        f"    {command}",
        "",
        f"Filled shapes ({', '.join(SHAPES)}) in {len(COLORS)} colours ({', '.join(COLORS)}), small or large, on "
        f"plain {', '.join(BACKGROUNDS)} backgrounds. Every image carries object annotations (label, colour, "
        "shape, size, pixel box) and a note; each record's `hints` names the target object, the reference "
        "object (if any) and the rule that makes the target image the right one. Marked objects are outlined in "
        "black (outlines are not objects). Every answer is unique: nothing else in the target image matches "
        "the question. Boxes are `[x1, y1, x2, y2]` in pixels.",
        "",
        *balance_sections(samples, tasks_made, "balanced within each row"),
        *example_sections(first, tasks_made),
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
