"""Which tiny architecture learns to see fastest on a CPU: acc@0.5 against wall time, same data, same clock.

Each candidate is a tiny model of one family, optionally given the dense vision stage first (its minutes
count on the same clock), then trained with SFT on one-image, one-object perception data with
answer-first trajectories (the first curriculum stage of `mirg model pretrain-tiny`) in segments; after
every segment the model is evaluated on the same held-out samples (evaluation time is not counted).

Usage (the measurement in docs/lab-notes/embedded-base.md, "Learning curves"):
    python experiments/base_learning.py --out runs/base_learning --minutes 15 --segment 2.5

Writes OUT/curves.json and OUT/curves.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

#: (label, family, minutes of the dense vision stage before SFT)
CANDIDATES = [
    ("qwen3_vl + vision stage", "qwen3_vl", 2.5),
    ("qwen3_vl", "qwen3_vl", 0.0),
    ("llava (patch 28) + vision stage", "llava", 2.5),
    ("qwen2_5_vl + vision stage", "qwen2_5_vl", 2.5),
]
COORDS = {"qwen3_vl": "norm1000", "llava": "norm1000", "qwen2_5_vl": "resized", "qwen2_vl": "norm1000"}


def mirg(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mirg", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_data(out: Path, n_train: int, n_eval: int) -> tuple[Path, Path]:
    train, held = out / "data" / "train", out / "data" / "heldout"
    common = ["--tasks", "perception", "--min-images", "1", "--max-images", "1", "--max-objects", "1", "--image-size", "112"]
    if not (train / "manifest.jsonl").is_file():
        mirg("data", "synth", "--out", str(train), "--samples", str(n_train), "--seed", "11", *common, "--overwrite")
    if not (held / "manifest.jsonl").is_file():
        mirg("data", "synth", "--out", str(held), "--samples", str(n_eval), "--seed", "12", "--id-prefix", "held",
             *common, "--overwrite")
    return train, held


def trajectories(out: Path, train: Path, coords: str) -> Path:
    folder = out / "data" / f"traj_{coords}"
    if not (folder / "sft.jsonl").is_file():
        mirg("data", "trajectories", "--data", str(train), "--out", str(folder), "--detail", "answer", "--coords", coords)
    return folder


def evaluate(model: Path, held: Path, run: Path) -> float:
    mirg("eval", "--model", str(model), "--data", str(held), "--out", str(run), "--batch-size", "16")
    return json.loads((run / "metrics.json").read_text())["overall"]["pooled_acc@0.5"]


def run_candidate(out: Path, label: str, family: str, vision_minutes: float, train: Path, held: Path,
                  minutes: float, segment: float, lr: float) -> list[tuple[float, float]]:
    """``(minutes on the clock, acc@0.5)`` after the vision stage and after every SFT segment."""
    work = out / family / ("vision" if vision_minutes else "plain")
    model = work / "init"
    if not (model / "config.json").is_file():
        mirg("model", "init-tiny", "--family", family, "--out", str(model))
    clock, points = 0.0, []
    if vision_minutes:
        vis = work / "vision"
        if not (vis / "vision_stage.json").is_file():
            mirg("model", "pretrain-vision", "--model", str(model), "--data", str(train), "--out", str(vis),
                 "--minutes", str(vision_minutes))
        model, clock = vis, vision_minutes
        points.append((clock, evaluate(model, held, work / "eval_vision")))
    traj = trajectories(out, train, COORDS[family])
    k = 0
    while clock + 1e-9 < minutes:
        k += 1
        step = min(segment, minutes - clock)
        nxt = work / f"sft_{k}"
        if not (nxt / "trainer_state.json").is_file():
            mirg("sft", "--model", str(model), "--data", str(traj), "--output_dir", str(nxt), "--max_minutes",
                 str(step), "--max_steps", "1000000", "--learning_rate", str(lr), "--lr_scheduler_type",
                 "constant_with_warmup", "--warmup_steps", "20", "--per_device_train_batch_size", "8",
                 "--save_strategy", "no", "--report_to", "none", "--logging_steps", "100")
        model, clock = nxt, clock + step
        points.append((clock, evaluate(model, held, work / f"eval_{k}")))
        print(json.dumps({"candidate": label, "minutes": round(clock, 2), "acc@0.5": points[-1][1]}), flush=True)
    return points


def plot(curves: dict[str, list[tuple[float, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for label, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel("wall time on a 2-core CPU (min)")
    ax.set_ylabel("acc@0.5, held-out one-image perception")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/base_learning"))
    parser.add_argument("--minutes", type=float, default=10.0, help="clock per candidate (vision stage included)")
    parser.add_argument("--segment", type=float, default=2.5, help="minutes of SFT between evaluations")
    parser.add_argument("--n-train", type=int, default=12000)
    parser.add_argument("--n-eval", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--only", help="comma-separated candidate families to run")
    opts = parser.parse_args()
    train, held = make_data(opts.out, opts.n_train, opts.n_eval)
    curves = {}
    for label, family, vision in CANDIDATES:
        if opts.only and family not in opts.only.split(","):
            continue
        curves[label] = run_candidate(opts.out, label, family, vision, train, held, opts.minutes, opts.segment, opts.lr)
    (opts.out / "curves.json").write_text(json.dumps(curves, indent=2) + "\n")
    plot(curves, opts.out / "curves.png")
    print(json.dumps({"curves": curves}))


if __name__ == "__main__":
    main()
