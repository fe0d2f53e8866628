"""A dataset of real photos at real sizes: resized copies of the two MIG-Bench photos in ``fixtures/mig-bench``.

``write_photo_dataset`` writes a manifest whose samples each hold one copy of the photos per requested size (the
two photos alternate), so that a training step meets several images of different sizes and aspect ratios in one
prompt, as users' data does. Boxes come from the revised MIG-Bench answer of sample 861 (``correspondence``: the
region in ``case076_2.jpg`` that matches the one marked in ``case076_1.jpg``), scaled with each copy; the
``case076_1.jpg`` region is a rough hand-drawn box (the benchmark's mark is drawn into the picture, not given).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from mirg.schema import ObjectAnn, Sample, Target, write_manifest

PHOTOS = Path(__file__).resolve().parent / "fixtures" / "mig-bench" / "images"
#: (file, label, box as fractions of width and height)
REGIONS = (
    ("case076_1.jpg", "marked region", (0.30, 0.20, 0.62, 0.72)),
    ("case076_2.jpg", "corresponding region", (0.502, 0.008, 0.839, 0.392)),
)
#: Four sizes of different aspect ratios (the photos' own two among them).
MIXED_SIZES = ((900, 616), (474, 739), (640, 480), (1280, 720))
#: The enlarged copies of the real-shapes benchmark: 640x480 to 1280x960.
LARGE_SIZES = ((640, 480), (800, 600), (1024, 768), (1280, 960))


def _copy(photo: str, size: tuple[int, int], path: Path) -> None:
    with Image.open(PHOTOS / photo) as image:
        image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(path, quality=90)


def write_photo_dataset(folder: Path, sizes=MIXED_SIZES, samples: int = 4) -> Path:
    """``samples`` samples of ``len(sizes)`` photos each in ``folder`` (manifest.jsonl + images/); the target is
    the last copy of ``case076_2.jpg`` in each sample."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for s in range(samples):
        images, objects = [], []
        for k, size in enumerate(sizes):
            photo, label, (a, b, c, d) = REGIONS[(k + s) % 2]
            name = f"images/{s:02d}_{k + 1}.jpg"
            _copy(photo, size, folder / name)
            w, h = size
            images.append(name)
            objects.append([ObjectAnn(label, (round(a * w), round(b * h), round(c * w), round(d * h)))])
        target = max(k for k in range(len(sizes)) if objects[k][0].label == "corresponding region") + 1
        records.append(Sample(
            id=f"photo-{s:02d}", task="correspondence", images=images, image_sizes=[tuple(z) for z in sizes],
            question="Find the region that matches the one marked in the first photos and locate it.",
            target=Target(target, objects[target - 1][0].bbox), objects=objects,
        ))
    write_manifest(records, folder / "manifest.jsonl")
    return folder
