"""Stage 2 on the families the stage-1 model still gets wrong: does GRPO gain more per minute there?

GRPO learns from a group only where its completions' rewards differ. Once stage 1 has levelled off, the
families the model answers right almost every time (one image to choose, a box it finds) give groups of
equal rewards, and the minutes spent sampling them teach nothing. This script, for a finished ablation seed
folder (`benchmarks/ablation.py`: its data, SFT model and plan.json):

1. probes the SFT model on the first --probe training samples (every family equally; `mirg eval --limit`),
   timed, since that time is part of stage 2's budget;
2. weights each family by acc(1 - acc), its acc@0.5 on the probe: the variance of a right/wrong reward, which a
   group's advantages scale with (a floor keeps every family in);
3. writes ``data/trajectories_focus`` beside the seed's trajectories: as many rows as they hold, drawn by those
   weights (with replacement, seeded), the same prompts and completions;
4. runs both stage-2 arms on it for the plan's stage-2 minutes less the probe's: GRPO with the demo's rewards
   (``focus_grpo``) and SFT continued (``focus_sft``, the control on the same prompts);
5. evaluates them on the seed's test and held-out splits and prints the paired differences against the seed's
   other variants (SFT, SFT continued and SFT+GRPO on all families, where the ablation made them).

Usage (the measurement in docs/lab-notes/stage-2-ablation.md):
    python benchmarks/ablation.py --out runs/abF --seeds 0 --sft-minutes 40 --stage2-minutes 9 \
        --variants sft_grpo,sft_continued
    python experiments/focused_stage2.py --out runs/abF/seed0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

# The ablation script (and the paired-difference helper it imports) live in benchmarks/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from ablation import eval_dir, evaluate  # noqa: E402

from mirg.demo import DemoPlan, grpo_args, read_plan, sft_args  # noqa: E402
from mirg.errors import MirgError  # noqa: E402
from mirg.pipeline import run_mirg  # noqa: E402

FOCUS = "trajectories_focus"
#: The least weight a family keeps (one it answers always right or never would otherwise drop out).
FLOOR = 0.01


def load_plan(folder: Path) -> DemoPlan:
    """The seed folder's plan (its plan.json, written by the demo or the ablation)."""
    stored = folder / "plan.json"
    if not (stored.is_file() and (folder / "sft" / "trainer_state.json").is_file()):
        raise MirgError(f"{folder} holds no finished ablation seed (plan.json and sft/): run benchmarks/ablation.py")
    record = read_plan(stored, "run benchmarks/ablation.py for this seed again")
    fields = {f.name for f in dataclasses.fields(DemoPlan)} - {"out"}
    return DemoPlan(out=folder, **{k: v for k, v in record.items() if k in fields})


def probe(plan: DemoPlan, n: int) -> tuple[dict[str, float], float]:
    """The SFT model's acc@0.5 per family on the first ``n`` training samples, and the minutes it took."""
    run = plan.path("eval_probe", f"train{n}")
    start = time.monotonic()
    if not (run / "metrics.json").is_file():
        run_mirg(["eval", "--model", str(plan.path("sft")), "--data", str(plan.path("data", "train")), "--max-samples", str(n),
                  "--out", str(run), "--batch-size", str(plan.eval_batch_size)], plan.path("logs", "eval_probe.txt"),
                 quiet=True)
    minutes = (time.monotonic() - start) / 60
    timing = run / "probe_minutes.json"  # a rerun reads the first run's time, not a cache hit's
    if timing.is_file():
        minutes = json.loads(timing.read_text(encoding="utf-8"))["minutes"]
    else:
        timing.write_text(json.dumps({"minutes": minutes}) + "\n", encoding="utf-8")
    tasks = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["tasks"]
    return {task: m["acc@0.5"] for task, m in tasks.items()}, minutes


def family_weights(acc: dict[str, float]) -> dict[str, float]:
    """acc(1 - acc) per family, at least :data:`FLOOR`, summing to 1."""
    raw = {task: max(a * (1 - a), FLOOR) for task, a in acc.items()}
    total = sum(raw.values())
    return {task: w / total for task, w in raw.items()}


def write_focus(plan: DemoPlan, weights: dict[str, float], seed: int) -> Path:
    """``data/trajectories_focus``: the seed's sft.jsonl and rl.jsonl redrawn by family weight (same row count)."""
    source, out = plan.path("data", "trajectories"), plan.path("data", FOCUS)
    if (out / "rl.jsonl").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("sft.jsonl", "rl.jsonl"):
        by_task: dict[str, list[str]] = defaultdict(list)
        lines = (source / name).read_text(encoding="utf-8").splitlines()
        for line in lines:
            by_task[json.loads(line)["task"]].append(line)
        missing = set(by_task) - set(weights)
        if missing:
            raise MirgError(f"the probe saw no sample of {', '.join(sorted(missing))}: raise --probe")
        rng = random.Random(seed)
        tasks = sorted(by_task)
        drawn = rng.choices(tasks, weights=[weights[t] for t in tasks], k=len(lines))
        (out / name).write_text("".join(rng.choice(by_task[t]) + "\n" for t in drawn), encoding="utf-8")
    table = "\n".join(f"| {t} | {weights[t]:.3f} |" for t in sorted(weights))
    (out / "README.md").write_text(f"# Trajectories drawn by family weight\n\nFrom `{source}` by "
                                   f"experiments/focused_stage2.py (seed {seed}).\n\n| task | weight |\n|---|---:|\n"
                                   f"{table}\n", encoding="utf-8")
    return out


def with_data(args: list[str], folder: Path) -> list[str]:
    """A `mirg sft` / `mirg grpo` command line reading ``folder`` instead of its --data."""
    args = list(args)
    args[args.index("--data") + 1] = str(folder)
    return args


def train_arms(plan: DemoPlan, data: Path, minutes: float) -> dict[str, Path]:
    """GRPO and SFT continued from the seed's SFT model on ``data`` for ``minutes`` each (kept where there)."""
    arms = {"focus_grpo": lambda out: grpo_args(dataclasses.replace(plan, grpo_minutes=minutes),
                                                str(plan.path("sft")), out, report="none"),
            "focus_sft": lambda out: sft_args(plan, str(plan.path("sft")), out, minutes, "none")}
    folders = {}
    for name, make in arms.items():
        out = plan.path(name)
        if not (out / "trainer_state.json").is_file():
            run_mirg(with_data(make(out), data), plan.path("logs", f"{name}.txt"), quiet=True)
        folders[name] = out
    return folders


def differences(plan: DemoPlan, split: str, names: list[str]) -> list[str]:
    """Paired differences in task-mean acc@0.5 (bootstrap over the split's samples) of the focused arms."""
    from mirg.eval.scoring import describe_difference, paired_difference, read_sample_scores

    pairs = [("focus_grpo", "focus_sft"), ("focus_grpo", "sft_continued"), ("focus_grpo", "sft_grpo"),
             ("focus_grpo", "sft"), ("focus_sft", "sft"), ("focus_sft", "sft_continued"),
             ("sft_grpo", "sft_continued")]
    lines = []
    for a, b in pairs:
        if a in names and b in names:
            d = paired_difference(read_sample_scores(eval_dir(plan, a, split) / "per_sample.jsonl"),
                                  read_sample_scores(eval_dir(plan, b, split) / "per_sample.jsonl"), seed=plan.seed)
            lines.append(f"{a} - {b}: {describe_difference(d)}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="a finished ablation seed folder (OUT/seedS)")
    parser.add_argument("--probe", type=int, default=500, metavar="N",
                        help="training samples the SFT model is probed on, from the first (default 500)")
    parser.add_argument("--heldout", type=int, default=2000, metavar="N",
                        help="the seed's second held-out split to evaluate on as well (0: the test split only)")
    opts = parser.parse_args()
    if opts.probe < 1:
        parser.error(f"--probe must be at least 1, got {opts.probe}")
    try:
        plan = load_plan(opts.out)
        acc, probe_minutes = probe(plan, opts.probe)
        weights = family_weights(acc)
        print(json.dumps({"probe_minutes": round(probe_minutes, 2), "probe_acc": acc, "weights": weights}), flush=True)
        if plan.grpo_minutes is None:
            raise MirgError(f"{opts.out}: stage 2 trained a number of steps; this study splits a stage 2 of minutes "
                            "(a demo or ablation run with --grpo-minutes / --stage2-minutes)")
        minutes = plan.grpo_minutes - probe_minutes
        if minutes <= 0:
            raise MirgError(f"the probe took {probe_minutes:.1f} of stage 2's {plan.grpo_minutes} minutes: lower --probe")
        folders = train_arms(plan, write_focus(plan, weights, plan.seed), minutes)
        folders |= {name: plan.path(name) for name in ("sft", "sft_continued", "sft_grpo")
                    if plan.path(name, "trainer_state.json").is_file()}
        splits = ["test"] + ([f"heldout{opts.heldout}"] if opts.heldout else [])
        for split in splits:
            if not plan.path("data", split, "manifest.jsonl").is_file():
                raise MirgError(f"{plan.path('data', split)} is missing: run benchmarks/ablation.py with --heldout")
            for name, folder in folders.items():
                steps = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
                metrics = evaluate(plan, name, folder, split)
                print(json.dumps({"split": split, "variant": name, "steps": steps, **metrics}), flush=True)
            print("\n".join([f"{split}:"] + differences(plan, split, list(folders))), flush=True)
    except MirgError as exc:
        print(f"focused_stage2: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
