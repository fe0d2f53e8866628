"""Does a model read colour and shape from the image, or copy them from the question?

Usage: python experiments/listing_probe.py MODEL --out DIR [--n 100] [--seed 4242]

Evaluates MODEL (`mirg eval`, greedy) on two held-out one-image sets made here: ``listing`` questions,
which name no label ("List every object with its box, then locate the leftmost one."), and ``perception``
questions, which name the target. For each it prints acc@0.5 and the listing scores of
``mirg.eval.perception`` (label recall: objects whose colour and shape are listed; box recall: listed
with a box of IoU >= 0.5), and how many answers on images of several objects list every object under one
and the same label. Prints one JSON line per set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SETS = {"listing": ["--tasks", "listing"], "perception": ["--tasks", "perception", "--max-objects", "4"]}


class ProbeError(Exception):
    pass


def mirg(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "mirg", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ProbeError(f"`mirg {args[0]} {args[1] if len(args) > 1 else ''}` failed: {last}")


def probe(model: str, out: Path, name: str, n: int, seed: int) -> dict:
    from mirg.eval.perception import listed_objects, listing_summary
    from mirg.models.registry import adapter_for, resolve_model_path
    from mirg.eval.predictions import read_predictions_jsonl
    from mirg.schema import read_manifest

    data, run = out / name / "data", out / name / "run"
    if not (data / "manifest.jsonl").is_file():
        mirg("data", "synth", "--out", str(data), "--samples", str(n), "--seed", str(seed), "--min-images", "1",
             "--max-images", "1", "--image-size", "112", "--id-prefix", name, "--overwrite", *SETS[name])
    mirg("eval", "--model", model, "--data", str(data), "--out", str(run), "--batch-size", "16")
    samples = read_manifest(data)
    responses = read_predictions_jsonl(run / "predictions.jsonl")
    space = adapter_for(resolve_model_path(model)).coord_space()
    several = [s for s in samples if len(s.objects[0]) > 1]
    one_label = sum(len({label for label, _ in listed_objects(responses.get(s.id, ""))}) == 1 for s in several)
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["overall"]
    return {"set": name, "n": len(samples), "acc@0.5": metrics["pooled_acc@0.5"],
            **listing_summary(samples, responses, space), "several_objects": len(several),
            "one_label_for_all": one_label}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=4242)
    args = parser.parse_args()
    for name in SETS:
        try:
            print(json.dumps(probe(args.model, args.out, name, args.n, args.seed)), flush=True)
        except ProbeError as exc:
            print(f"listing_probe: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
