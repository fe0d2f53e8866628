"""Whole-process time of `mirg score` over the ten revised-benchmark result files of one model.

Usage: python benchmarks/score_speed.py [--runs 5]
Reads the public MIG-Bench files in tests/fixtures/mig-bench. Target: under 2 s per run (4,276 predictions).
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

PARITY = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mig-bench"


def time_run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mirg", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("univg-r1", "qwen2_vl"):
            files = sorted(str(p) for p in (PARITY / "results" / model).glob("*.json"))
            for mode in (["--compat", "migbench"], ["--coords", "norm1000"]):
                args = ["score", "--data", str(PARITY / "revised_MIG_bench.json"), "--predictions", *files,
                        "--out", f"{tmp}/m.json", "--per-sample", f"{tmp}/s.jsonl", *mode]
                times = [time_run(args) for _ in range(opts.runs)]
                print(json.dumps({"model": model, "mode": " ".join(mode), "files": len(files),
                                  "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}))


if __name__ == "__main__":
    main()
