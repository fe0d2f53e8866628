"""Turn a MIG-Bench file into a manifest (boxes in pixels of the original images).

Each sample keeps the benchmark's position (``source_index``) and its question exactly as the file states
it (``source_question``, trailing space included: MIG-Bench's prompt appends its format line to that text).

The target image comes from the question text (or ``additional_info`` for ``group_grounding``), see
:func:`mirg.migbench.target_image`. Pixel sizes come from the image files; a sample whose images can't
be found, whose question names no image, or whose box does not fit is not converted and is reported
with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mirg.geometry import clip_box, is_proper_box
from mirg.migbench import Benchmark, BenchRecord, target_image
from mirg.schema import Sample, Target

#: Side of the stand-in frame used when image files are absent: boxes are then in 0-1000 units.
VIRTUAL_SIDE = 1000


@dataclass
class Conversion:
    samples: list[Sample] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)


def find_image(path: str, roots: list[Path]) -> Path | None:
    """Locate a benchmark image path under any of ``roots``, dropping leading folders one at a time.

    ``./MIG-Bench/images/common/x.jpg`` is found as ``ROOT/MIG-Bench/images/common/x.jpg``,
    ``ROOT/images/common/x.jpg``, ... down to ``ROOT/x.jpg``.
    """
    parts = [p for p in Path(path).parts if p not in (".", "")]
    for root in roots:
        for start in range(len(parts)):
            candidate = root.joinpath(*parts[start:])
            if candidate.is_file():
                return candidate
    return None


def _image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError):
        return None


def _to_pixels(box: list[float], scale: float, size: tuple[int, int]) -> tuple[float, float, float, float]:
    w, h = size
    return (box[0] / scale * w, box[1] / scale * h, box[2] / scale * w, box[3] / scale * h)


def convert_record(
    rec: BenchRecord, scale: float, roots: list[Path], virtual: bool
) -> tuple[Sample | None, str | None]:
    """Convert one record; returns ``(sample, None)`` or ``(None, reason)``."""
    k = target_image(rec)
    if k is None:
        return None, "the question names no target image"
    if virtual:
        images = list(rec.images)
        sizes = [(VIRTUAL_SIDE, VIRTUAL_SIDE)] * len(images)
    else:
        found = [find_image(p, roots) for p in rec.images]
        missing = [p for p, f in zip(rec.images, found) if f is None]
        if missing:
            return None, f"image file not found: {missing[0]}"
        sizes = [_image_size(f) for f in found]
        if any(s is None for s in sizes):
            return None, "an image file is unreadable"
        images = [str(f) for f in found]
    box = clip_box(_to_pixels(rec.answer, scale, sizes[k - 1]), sizes[k - 1])
    if not is_proper_box(box):
        return None, f"target box {rec.answer} is empty or inverted"
    sample = Sample(
        id=rec.id,
        task=rec.task,
        images=images,
        image_sizes=sizes,
        question=rec.question.strip(),
        target=Target(image=k, bbox=box),
        extra={"source_index": rec.index, "source_question": rec.question},
    )
    return sample, None


def convert_benchmark(bench: Benchmark, image_roots: list[Path], virtual: bool = False) -> Conversion:
    """Convert every record of ``bench``. With ``virtual``, images are not looked up and each counts as
    a 1000x1000 frame (IoU is unchanged by that scaling, so scores stay exact)."""
    out = Conversion()
    for rec in bench.records:
        sample, reason = convert_record(rec, bench.scale, image_roots, virtual)
        if sample is None:
            out.skipped.append((rec.id, reason or "unknown"))
        else:
            out.samples.append(sample)
    return out


def _relative_to(path: str, folder: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), folder.resolve())


def write_converted(bench: Benchmark, image_roots: list[Path], out: Path) -> Conversion:
    """Convert ``bench`` and write ``out/manifest.jsonl`` (image paths relative to ``out``),
    ``out/skipped.jsonl`` (id and reason of every sample not converted) and a short ``README.md``."""
    import json
    from collections import Counter

    from mirg.schema import write_manifest

    conv = convert_benchmark(bench, image_roots)
    out.mkdir(parents=True, exist_ok=True)
    for sample in conv.samples:
        sample.images = [_relative_to(p, out) for p in sample.images]
    write_manifest(conv.samples, out / "manifest.jsonl")
    with (out / "skipped.jsonl").open("w", encoding="utf-8") as handle:
        for sid, reason in conv.skipped:
            handle.write(json.dumps({"id": sid, "reason": reason}) + "\n")
    counts = Counter(s.task for s in conv.samples)
    lines = [
        f"# MIG-Bench ({bench.version}) as a manifest",
        "",
        f"Converted from `{bench.path.name}`: {len(conv.samples)} of {len(bench.records)} samples; "
        f"{len(conv.skipped)} skipped (see `skipped.jsonl`).",
        "",
        "| task | samples |",
        "|---|---|",
        *[f"| {t} | {n} |" for t, n in sorted(counts.items())],
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    return conv
