"""How fast `mirg data compose` makes samples from photos and COCO-format annotations.

Writes PHOTOS generated 640x480 JPEG photos (coloured boxes on noise) with 1-8 annotated objects each over 20
categories, then times `mirg data compose --samples N` (all four families, 2-4 images) and prints one JSON line:
seconds, samples/s, crops written.

Usage: python benchmarks/compose_speed.py [--photos 2000] [--samples 2000] [--dir /tmp/compose_bench]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path


def write_photos(root: Path, count: int, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    photos = root / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        pixels = noise.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
        for _ in range(rng.randint(1, 8)):
            w, h = rng.randint(20, 200), rng.randint(20, 200)
            x, y = rng.randint(0, 640 - w), rng.randint(0, 480 - h)
            category = rng.randint(1, 20)
            pixels[y:y + h, x:x + w] = (category * 12, 255 - category * 12, 128)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": category,
                                "bbox": [x, y, w, h], "iscrowd": 0})
        Image.fromarray(pixels).save(photos / f"{i + 1:012d}.jpg", quality=90)
        images.append({"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": 640, "height": 480})
    categories = [{"id": c, "name": f"thing {c}"} for c in range(1, 21)]
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                     "categories": categories}))


def main() -> None:
    from mirg.cli import main as mirg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/compose_bench"))
    args = parser.parse_args()
    if not (args.dir / "instances.json").is_file():
        write_photos(args.dir, args.photos)
    out = args.dir / "out"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    code = mirg(["data", "compose", "--coco", str(args.dir / "instances.json"), "--images", str(args.dir / "photos"),
                 "--out", str(out), "--samples", str(args.samples)])
    seconds = time.perf_counter() - start
    crops = sum(1 for _ in (out / "images").iterdir()) if code == 0 else 0
    print(json.dumps({"photos": args.photos, "samples": args.samples, "exit": code, "seconds": round(seconds, 1),
                      "samples_per_s": round(args.samples / seconds, 1), "crops": crops}))


if __name__ == "__main__":
    main()
