"""COCO-format files written by the tests: small generated photos (coloured boxes, one colour per category, so
that a crop's pixels show which object it is) and the two real MIG-Bench photos (900x616 and 474x739), with
crowd regions, a box just over an edge and one far outside, so that every rule of the reader is exercised."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

REAL = Path(__file__).resolve().parent / "fixtures" / "mig-bench" / "images"
REAL_SIZES = {"case076_1.jpg": (900, 616), "case076_2.jpg": (474, 739)}
CATEGORIES = {1: ("dog", (200, 60, 40)), 2: ("cat", (40, 90, 200)), 3: ("person", (40, 170, 60)),
              5: ("car", (230, 180, 20)), 7: ("apple", (150, 40, 160))}
SIZES = [(320, 240), (240, 320), (360, 200), (200, 300), (256, 256)]


def _layout(rng: random.Random, size: tuple[int, int], count: int) -> list[list[int]]:
    """``count`` boxes [x, y, w, h] in separate columns (never overlapping), at least 34 px on a side."""
    width, height = size
    column = width // count
    boxes = []
    for k in range(count):
        w, h = rng.randint(34, max(34, column - 8)), rng.randint(34, height // 2)
        x, y = k * column + rng.randint(2, column - w - 2), rng.randint(2, height - h - 2)
        boxes.append([x, y, w, h])
    return boxes


def write_coco_set(root: Path, n_photos: int = 30, seed: int = 0) -> dict:
    """Photos under ``root/photos``, ``root/instances.json`` and ``root/captions.json``; returns the instances."""
    rng = random.Random(seed)
    photos = root / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []

    def annotate(image_id: int, category: int, box: list, crowd: int = 0) -> None:
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                            "bbox": box, "iscrowd": crowd, "area": box[2] * box[3]})

    for i in range(n_photos):
        size = SIZES[i % len(SIZES)]
        image = Image.new("RGB", size, (228, 228, 228))
        draw = ImageDraw.Draw(image)
        for x, y, w, h in _layout(rng, size, rng.randint(1, 3)):
            category = rng.choice(sorted(CATEGORIES))
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=CATEGORIES[category][1])
            annotate(100 + i, category, [x, y, w, h])
        if i % 7 == 3:  # a crowd of people: the photo shows people, but none is an object
            annotate(100 + i, 3, [0, 0, size[0], size[1]], crowd=1)
        if i % 9 == 4:  # an object too small to cut out or ask for
            annotate(100 + i, 7, [size[0] - 12, size[1] - 12, 10, 10])
        name = f"gen_{i:03d}.png"
        image.save(photos / name)
        images.append({"id": 100 + i, "file_name": name, "width": size[0], "height": size[1]})
    for k, (name, (width, height)) in enumerate(REAL_SIZES.items()):
        shutil.copy(REAL / name, photos / name)
        images.append({"id": 900 + k, "file_name": name, "width": width, "height": height})
    annotate(900, 1, [812.5, 500, 88, 116])  # 0.5 px over the right edge, on the bottom one (far outside if swapped)
    annotate(900, 3, [100, 50, 300, 400])
    annotate(901, 2, [50, 400, 380, 300])  # y2 = 700 < 739: inside 474x739, outside 739x474
    annotate(901, 5, [400, 10, 74.6, 50])  # 0.6 px over the right edge: clipped
    annotate(901, 5, [300, 700, 100, 80])  # 41 px below the bottom: rejected
    annotate(901, 7, [10, 10, 0, 30])  # empty: rejected
    annotate(901, 99, [10, 10, 30, 30])  # no such category: rejected
    annotate(777, 1, [10, 10, 30, 30])  # no such image: rejected
    coco = {"info": {"description": "written by the tests"}, "licenses": [], "images": images,
            "annotations": annotations,
            "categories": [{"id": k, "name": name, "supercategory": "thing"} for k, (name, _) in CATEGORIES.items()]}
    (root / "instances.json").write_text(json.dumps(coco, indent=1))
    captions = {"images": images, "annotations": [
        {"id": j, "image_id": image["id"], "caption": f"  A photo, number {image['id']}. "}
        for j, image in enumerate(images) if image["id"] % 2 == 0]}
    (root / "captions.json").write_text(json.dumps(captions))
    return coco


def present_categories(coco: dict) -> dict[int, set[str]]:
    """What each image shows, read straight from the file: every annotation's category, crowds included."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    shown: dict[int, set[str]] = {}
    for a in coco["annotations"]:
        if a["category_id"] in names:
            shown.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    return shown


def instances(coco: dict, image_id: int, label: str) -> list[list[float]]:
    """The [x1, y1, x2, y2] boxes of non-crowd ``label`` annotations of an image (crowds excluded)."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    return [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
            for a in coco["annotations"]
            if a["image_id"] == image_id and names.get(a["category_id"]) == label and not a["iscrowd"]]
