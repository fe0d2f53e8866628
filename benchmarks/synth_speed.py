"""Speed of the synthetic benchmark generator (`mirg data synth`), images written to disk.

Usage: python benchmarks/synth_speed.py [--n 2000] [--runs 3] [--image-size 224] [--workers 1]
Target: at least 200 samples/s at 224 px in one process (default ten tasks, 2-4 images per sample).
Each run generates a fresh folder (manifest, images, dataset card) in a temporary directory; the
whole-process line runs the command itself, interpreter start included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mirg.data.synth import SynthConfig, write_dataset


def in_process(cfg: SynthConfig, workers: int, out: Path) -> tuple[float, int, int]:
    """Seconds, images written and bytes on disk for one generation into ``out``."""
    start = time.perf_counter()
    result = write_dataset(cfg, out, workers=workers)
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return seconds, result.images, size


def whole_process(cfg: SynthConfig, workers: int, out: Path) -> float:
    args = ["data", "synth", "--out", str(out), "--samples", str(cfg.n), "--seed", str(cfg.seed),
            "--image-size", str(cfg.image_size), "--workers", str(workers)]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mirg", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=1)
    opts = parser.parse_args()
    cfg = SynthConfig(n=opts.n, seed=0, image_size=opts.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [in_process(cfg, opts.workers, Path(tmp) / f"run{i}") for i in range(opts.runs)]
        whole = whole_process(cfg, opts.workers, Path(tmp) / "cli")
    times = [r[0] for r in runs]
    _, images, size = runs[0]
    print(json.dumps({
        "n": cfg.n, "image_size": cfg.image_size, "workers": opts.workers, "images": images,
        "median_s": round(statistics.median(times), 2), "worst_s": round(max(times), 2),
        "samples_per_s": round(cfg.n / statistics.median(times)), "worst_samples_per_s": round(cfg.n / max(times)),
        "whole_process_s": round(whole, 2), "disk_mb": round(size / 2**20, 1),
    }))


if __name__ == "__main__":
    main()
