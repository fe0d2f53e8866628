"""How long the token budget takes to count a large dataset before training (`mirg sft --dry-run`).

Builds, in a scratch folder, a tiny Qwen2.5-VL (`mirg model init-tiny`), a pool of distinct PNGs of photo-like
sizes (480-2000 px a side) and an sft.jsonl of --samples records of --images images each drawn from that pool,
once with `image_sizes` in every row (what `mirg data trajectories` writes) and once without (older folders: each
image file's header is read, once per file). Then times `count_tokens` on both, and the whole
`mirg sft --dry-run` (reading and checking the records, counting, building the dataset) on the first. Prints one
JSON line.

Usage (the measurement in benchmarks/RESULTS.md):
    python benchmarks/token_budget.py --samples 100000 --images 4 --pool 2000
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_pool(folder: Path, count: int, rng: random.Random) -> list[tuple[str, tuple[int, int]]]:
    """``count`` PNGs of random photo-like sizes (one flat colour: a header read costs the same)."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    pool = []
    for i in range(count):
        size = (rng.randint(480, 2000), rng.randint(480, 2000))
        rel = f"images/{i:05d}.png"
        Image.new("RGB", size, (rng.randint(0, 255), 120, 80)).save(folder / rel, compress_level=1)
        pool.append((rel, size))
    return pool


def write_rows(folder: Path, pool, samples: int, images: int, rng: random.Random) -> None:
    """sft.jsonl with image_sizes, sft_headers.jsonl without; answers of 40-400 characters."""
    from mirg.answer import render_answer
    from mirg.data.trajectories import TrajectoryOptions, write_space_record
    from mirg.geometry import CoordSpace
    from mirg.prompts import user_message

    with open(folder / "sft.jsonl", "w") as sized, open(folder / "sft_headers.jsonl", "w") as bare:
        for i in range(samples):
            chosen = rng.sample(pool, images)
            think = "The object is in image 1. " * rng.randint(1, 15)
            row = {"id": f"s{i}", "task": f"task{i % 5}", "images": [rel for rel, _ in chosen],
                   "prompt": user_message("Which image holds the object of image 1? Locate it.", images, "resized"),
                   "completion": [{"role": "assistant", "content": [
                       {"type": "text", "text": render_answer(2, [10, 20, 300, 400], think)}]}]}
            bare.write(json.dumps(row) + "\n")
            sized.write(json.dumps({**row, "image_sizes": [list(s) for _, s in chosen]}) + "\n")
    write_space_record(folder, TrajectoryOptions(CoordSpace("resized", 3136, 401408)))


def timed_count(folder: Path, file: str, processor) -> float:
    from mirg.train.budget import count_tokens

    records = [json.loads(line) for line in open(folder / file)]
    start = time.perf_counter()
    count_tokens(records, processor, folder, "sft")
    return round(time.perf_counter() - start, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000, help="records (default: 100000)")
    parser.add_argument("--images", type=int, default=4, help="images per record (default: 4)")
    parser.add_argument("--pool", type=int, default=2000, help="distinct image files (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sizes and choices (default: 0)")
    opts = parser.parse_args()

    from mirg.cli import main as mirg
    from mirg.models import adapter_for

    rng = random.Random(opts.seed)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model, data = root / "model", root / "data"
        if mirg(["model", "init-tiny", "--family", "qwen2_5_vl", "--out", str(model), "--size", "xs"]) != 0:
            return 2
        pool = write_pool(data, opts.pool, rng)
        write_rows(data, pool, opts.samples, opts.images, rng)
        processor = adapter_for(model).load_processor(model, max_pixels=401408)
        result = {"samples": opts.samples, "images_per_sample": opts.images, "distinct_files": opts.pool,
                  "count_s_sizes_in_rows": timed_count(data, "sft.jsonl", processor),
                  "count_s_headers": timed_count(data, "sft_headers.jsonl", processor)}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "mirg", "sft", "--model", str(model), "--data", str(data),
                               "--output_dir", str(root / "run"), "--max_pixels", "401408", "--dry-run"],
                              capture_output=True, text=True)
        result["dry_run_s"] = round(time.perf_counter() - start, 2)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
