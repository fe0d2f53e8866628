"""Speed and peak memory of `mirg data convert mgrounding` on a generated MGrounding-630k-format file.

Usage: python benchmarks/convert_speed.py [--records 100000] [--images 400] [--runs 1] [--keep DIR]

Writes ``--images`` distinct JPEG files (sizes drawn from 320-1280 px per side) and a JSON list of
``--records`` records in MGrounding's format (2-5 images each drawn from those files, 1-3 question/answer
pairs, the six task types, answers naming the image the way the real file does, ~3% of pairs with no box),
then times the command itself in a fresh process (interpreter start included): wall time, CPU time (user +
system) and peak resident memory (``ru_maxrss`` of the finished child). A first line times reading the file
alone (the streaming JSON parse), to show where the time goes.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TYPES = ["common_train", "diff_train", "gg_train", "ot_train", "refer_train", "region_train"]
ORDINALS = ["first", "second", "third", "fourth", "fifth"]


def write_images(root: Path, n: int, rng: random.Random) -> list[str]:
    from PIL import Image

    names = []
    for i in range(n):
        name = f"MGrounding-630k/Bench/img_{i:05d}.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        size = (rng.randint(320, 1280), rng.randint(320, 1280))
        Image.new("RGB", size, (rng.randrange(256), 90, 160)).save(root / name, quality=50)
        names.append(name)
    return names


def box(rng: random.Random) -> str:
    x1, y1 = rng.randint(0, 600), rng.randint(0, 600)
    return f"<|box_start|>({x1},{y1}),({x1 + rng.randint(20, 399)},{y1 + rng.randint(20, 399)})<|box_end|>"


def record(i: int, images: list[str], rng: random.Random) -> dict:
    n = rng.randint(2, 5)
    chosen = ["./" + p for p in rng.sample(images, n)]
    kind = TYPES[i % len(TYPES)]
    turns = []
    for k in range(rng.randint(1, 3)):
        target = rng.randint(1, n)
        prefix = "<image>\n" * n if k == 0 else ""
        if kind == "gg_train":
            question = f"{prefix}Give the bounding box of the region that this sentence refers to: " \
                       "<|object_ref_start|>a man in a red coat<|object_ref_end|>."
            answer = f"It's in the {ORDINALS[target - 1]} image. {box(rng)}"
        else:
            question = f"{prefix}These images share one object in common. Recognize and locate this object in " \
                       f"the {target}th image."
            answer = box(rng)
        if rng.random() < 0.03:
            answer = "A man in a red coat."  # a pair with no box: a counted rejection
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return {"id": f"bench_{i:07d}", "images": chosen, "conversations": turns, "type": kind}


def write_file(path: Path, n: int, images: list[str], rng: random.Random) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[\n")
        for i in range(n):
            handle.write(("," if i else "") + json.dumps(record(i, images, rng)) + "\n")
        handle.write("]\n")


def convert_once(data: Path, images: Path, out: Path) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system) and peak RSS in MiB of the child, and its summary line.

    On a shared machine the wall time depends on the load; the CPU time much less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mirg", "data", "convert", "mgrounding", "--in", str(data),
                           "--images", str(images), "--out", str(out)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(done.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if after.ru_maxrss <= before.ru_maxrss and before.ru_maxrss:
        print("note: the peak RSS below is the largest of all children so far (ru_maxrss is a maximum)")
    return seconds, cpu, after.ru_maxrss // 1024, done.stdout.strip()


def read_only(data: Path) -> tuple[float, int]:
    from mirg.data.convert import stream_json_records

    start = time.perf_counter()
    count = sum(1 for _ in stream_json_records(data, progress=False))
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write the data here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="convert_speed_"))
    rng = random.Random(args.seed)
    names = write_images(root / "data", args.images, rng)
    data = root / "MGrounding-bench.json"
    write_file(data, args.records, names, rng)
    size_mb = data.stat().st_size / 2**20
    print(f"{args.records} records, {args.images} distinct images, {size_mb:.0f} MiB of JSON")
    seconds, count = read_only(data)
    print(f"reading alone (streaming parse): {seconds:.1f} s, {count / seconds:,.0f} records/s")
    for run in range(args.runs):
        out = root / f"out{run}"
        seconds, cpu, peak, summary = convert_once(data, root / "data", out)
        print(summary.splitlines()[0])
        print(f"run {run + 1}: wall {seconds:.1f} s ({args.records / seconds:,.0f} records/s), CPU {cpu:.1f} s "
              f"({args.records / cpu:,.0f} records/s of CPU), peak RSS {peak} MiB")


if __name__ == "__main__":
    main()
