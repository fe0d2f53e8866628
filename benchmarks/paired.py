"""Two models on the same held-out samples, over seeds: the paired difference in task-mean acc@0.5.

A and B are evaluation folders (`mirg eval --out RUN`, `mirg data blind --out RUN`: each holds
`per_sample.jsonl`) or the per-sample files themselves (`mirg score --per-sample F`), written with `{s}` where the
seed goes. For each seed the difference A − B comes with a
paired bootstrap over the samples (`mirg.eval.scoring.paired_difference`, seeded with the seed), and the mean over seeds
with the seeds' draws averaged, as `benchmarks/ablation.py` computes every difference it reports. The intervals
cover the test samples drawn, not the spread between training runs, which the per-seed values show.

Usage (the commands in docs/lab-notes/stage-2-ablation.md):
    python benchmarks/paired.py 'runs/abl/seed{s}/eval_heldout2000/sft_grpo' \
        'runs/abl/seed{s}/eval_heldout2000/sft_continued' --seeds 0,1,2
    python benchmarks/paired.py runs/eval_a runs/eval_b   # one pair, no {s}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mirg.errors import MirgError
from mirg.eval.scoring import describe_difference, paired_difference_over_seeds, read_sample_scores


def per_sample_file(pattern: str, seed: int) -> Path:
    """The per_sample.jsonl that ``pattern`` names for ``seed``: the file itself or the folder holding it."""
    path = Path(pattern.replace("{s}", str(seed)))
    if path.is_dir():
        path = path / "per_sample.jsonl"
    if not path.is_file():
        raise MirgError(f"{path}: no such file (A and B are evaluation folders or per_sample.jsonl files, "
                        "with {s} where the seed goes)")
    return path


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2], distinct whole numbers from 0."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise MirgError(f"--seeds takes comma-separated whole numbers like 0,1,2, got {text!r}") from None
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise MirgError(f"--seeds must be distinct numbers from 0, got {text!r}")
    return seeds


def compare(a: str, b: str, seeds: list[int], threshold: float = 0.5) -> dict:
    """A − B per seed and over seeds (:func:`mirg.eval.scoring.paired_difference_over_seeds`)."""
    if len(seeds) > 1 and ("{s}" not in a or "{s}" not in b):
        raise MirgError("with several seeds, A and B must each hold {s} where the seed goes")
    runs = {seed: (read_sample_scores(per_sample_file(a, seed)), read_sample_scores(per_sample_file(b, seed)))
            for seed in seeds}
    return paired_difference_over_seeds(runs, threshold=threshold)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", metavar="A",
                        help="the first model's evaluation folder or per_sample.jsonl, {s} for the seed")
    parser.add_argument("b", metavar="B", help="the second model's, on the same samples")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds put in for {s} (default 0)")
    parser.add_argument("--threshold", type=float, default=0.5, help="the IoU of acc@threshold (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    opts = parser.parse_args(argv)
    if not 0 < opts.threshold <= 1:
        parser.error(f"--threshold is an IoU above 0 and at most 1, got {opts.threshold}")
    try:
        result = compare(opts.a, opts.b, parse_seeds(opts.seeds), opts.threshold)
    except MirgError as exc:
        print(f"paired: error: {exc}", file=sys.stderr)
        return 2
    if opts.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"A − B, task-mean acc@{opts.threshold:g} in points (95% interval over the samples):")
    for seed, d in result["per_seed"].items():
        print(f"  seed {seed}: {describe_difference(d)}  ({d['n']} samples, {d['num_tasks']} tasks)")
    print(f"  mean of the seeds: {describe_difference(result['mean'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
