"""How fast, and in how much memory, `mirg data annotate` / `compose` read a COCO-sized instances file.

Writes a generated file shaped like COCO train2017 (118,287 images, about 860,000 annotations with polygon
segmentations, a few hundred MB) unless it is already there, then reads it in a fresh process twice: with
mirg's streaming reader (:func:`mirg.data.coco.read_instances`), and with ``json.load`` followed by the same
indexing (what a reader that holds the document would cost). Prints one JSON line per reader: seconds, peak
resident memory, objects kept. mirg streams with ijson, one pass over the file per top-level array.

Usage: python benchmarks/coco_reader.py [--images 118287] [--file /tmp/coco_bench/instances.json]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

STREAM = """
import json, resource, sys, time
from mirg.data.coco import read_instances
start = time.perf_counter()
coco = read_instances(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"reader": "mirg streaming", "seconds": round(seconds, 1), "objects": coco.attached,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""

WHOLE = """
import json, resource, sys, time
start = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as handle:
    doc = json.load(handle)
names = {c["id"]: c["name"] for c in doc["categories"]}
objects = {}
for a in doc["annotations"]:
    if not a["iscrowd"]:
        x, y, w, h = a["bbox"]
        objects.setdefault(a["image_id"], []).append((names[a["category_id"]], (x, y, x + w, y + h)))
seconds = time.perf_counter() - start
print(json.dumps({"reader": "json.load", "seconds": round(seconds, 1), "objects": sum(map(len, objects.values())),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def polygon(rng: random.Random, x: float, y: float, w: float, h: float) -> list[float]:
    points = []
    for _ in range(rng.randint(8, 40)):
        points += [round(x + rng.random() * w, 2), round(y + rng.random() * h, 2)]
    return points


def write_file(path: Path, n_images: int, seed: int = 0) -> None:
    """A COCO-shaped instances file, written record by record."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write('{"info": {"description": "generated"}, "licenses": [], "images": [')
        sizes = []
        for i in range(n_images):
            w, h = rng.choice([(640, 480), (480, 640), (640, 427), (500, 375)])
            sizes.append((w, h))
            out.write(("," if i else "") + json.dumps({"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": w,
                                                        "height": h, "license": 1}))
        out.write('], "annotations": [')
        k = 0
        for i, (w, h) in enumerate(sizes):
            for _ in range(rng.randint(1, 13)):
                bw, bh = rng.uniform(4, w / 2), rng.uniform(4, h / 2)
                x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                record = {"segmentation": [polygon(rng, x, y, bw, bh)], "area": round(bw * bh, 2),
                          "iscrowd": int(rng.random() < 0.01), "image_id": i + 1,
                          "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)],
                          "category_id": rng.randint(1, 80), "id": k + 1}
                out.write(("," if k else "") + json.dumps(record))
                k += 1
        categories = [{"supercategory": "thing", "id": c, "name": f"category {c}"} for c in range(1, 81)]
        out.write('], "categories": ' + json.dumps(categories) + "}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=118_287)
    parser.add_argument("--file", type=Path, default=Path("/tmp/coco_bench/instances.json"))
    args = parser.parse_args()
    if not args.file.is_file():
        start = time.perf_counter()
        write_file(args.file, args.images)
        print(json.dumps({"wrote": str(args.file), "mib": args.file.stat().st_size // 2**20,
                          "seconds": round(time.perf_counter() - start, 1)}))
    for script in (STREAM, WHOLE):
        done = subprocess.run([sys.executable, "-c", script, str(args.file)], capture_output=True, text=True)
        print(done.stdout.strip() or done.stderr.strip()[-500:])


if __name__ == "__main__":
    main()
