"""Stage 2's settings, chosen on the validation split: GRPO from one demo run's SFT model at other learning
rates, group sizes and GRPO options.

For a finished demo (or ablation seed) folder, runs GRPO from its SFT model for the demo's stage-2 minutes
once per learning rate and number of generations per prompt (``OUT/grpo_lr<rate>``, plus ``_g<N>`` where N
is not the demo's; each step takes two prompts, as in the demo; the demo's own plan otherwise), and once per
``--option NAME='FLAGS'`` (``OUT/grpo_NAME``: the demo's GRPO with those `mirg grpo` flags added), then
evaluates those models with the folder's SFT, SFT continued (where the ablation made it) and SFT+GRPO models
on the validation and test splits. Prints one JSON line per split and model: steps, task-mean acc@0.5,
image accuracy.

Usage (the measurements in docs/lab-notes/stage-2-ablation.md):
    python experiments/grpo_sweep.py --out runs/ablO/seed0 --seed 0 --lrs 2e-4,5e-4
    python experiments/grpo_sweep.py --out runs/ablO/seed0 --seed 0 --generations 8
    python experiments/grpo_sweep.py --out runs/demo --option it2='--num_iterations 2' --option t07='--temperature 0.7'
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from mirg.demo import DemoPlan, grpo_args, resolve_detail
from mirg.errors import MirgError
from mirg.models.registry import resolve_model_path
from mirg.pipeline import run_mirg


def grpo_at(plan: DemoPlan, lr: float, generations: int) -> tuple[str, Path]:
    """GRPO from the plan's SFT model at learning rate ``lr`` with ``generations`` per prompt; returns its
    name and folder (kept if already there)."""
    name = f"grpo_lr{lr:g}" + ("" if generations == DemoPlan.num_generations else f"_g{generations}")
    out = plan.path(name)
    if not (out / "trainer_state.json").is_file():
        run_mirg(grpo_args(replace(plan, grpo_lr=lr, num_generations=generations), str(plan.path("sft")), out,
                           report="none"), plan.path("logs", f"{name}.txt"), quiet=True)
    return name, out


def grpo_with(plan: DemoPlan, name: str, flags: list[str]) -> tuple[str, Path]:
    """GRPO from the plan's SFT model with ``flags`` added to the demo's stage 2; returns its name and folder."""
    out = plan.path(f"grpo_{name}")
    if not (out / "trainer_state.json").is_file():
        run_mirg(grpo_args(replace(plan, extra_grpo=plan.extra_grpo + flags), str(plan.path("sft")), out,
                           report="none"), plan.path("logs", f"grpo_{name}.txt"), quiet=True)
    return f"grpo_{name}", out


def options(texts: list[str], parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """``NAME=FLAGS`` pairs (``--option it2='--num_iterations 2'``) as ``{name: [flag, ...]}``."""
    import shlex

    named = {}
    for text in texts:
        name, sep, flags = text.partition("=")
        if not sep or not name.isidentifier() or not flags.strip():
            parser.error(f"--option takes NAME='FLAGS' with a plain NAME, got {text!r}")
        named[name] = shlex.split(flags)
    return named


def numbers(text: str, kind, flag: str, parser: argparse.ArgumentParser) -> list:
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        parser.error(f"{flag} must be comma-separated numbers, got {text!r}")
    if not all(v > 0 for v in values):
        parser.error(f"{flag} must be positive, got {text!r}")
    return values


def evaluate(plan: DemoPlan, split: str, name: str, folder: Path) -> dict:
    run = plan.path("eval_lr", split, name)
    if not (run / "metrics.json").is_file():
        run_mirg(["eval", "--model", str(folder), "--data", str(plan.path("data", split)), "--out", str(run),
                  "--batch-size", str(plan.eval_batch_size)], plan.path("logs", f"eval_lr_{split}_{name}.txt"), quiet=True)
    overall = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["overall"]
    steps = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    return {"split": split, "model": name, "steps": steps, "acc": round(100 * overall["task_mean_acc@0.5"], 1),
            "image": round(100 * overall["pooled_image_acc"], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="a finished demo or ablation seed folder")
    parser.add_argument("--seed", type=int, default=0, help="the folder's seed (default 0)")
    parser.add_argument("--model", default="embedded", help="the folder's base (default embedded)")
    parser.add_argument("--lrs", default=f"{DemoPlan.grpo_lr:g}",
                        help=f"comma-separated GRPO learning rates, e.g. 2e-4,5e-4 (default: the demo's, {DemoPlan.grpo_lr:g})")
    parser.add_argument("--generations", default=str(DemoPlan.num_generations),
                        help=f"comma-separated completions per prompt, at least 2 (default: the demo's, "
                        f"{DemoPlan.num_generations})")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=FLAGS",
                        help="a GRPO variant: the demo's stage 2 with these `mirg grpo` flags added (repeatable)")
    opts = parser.parse_args()
    extra = options(opts.option, parser)
    lrs = numbers(opts.lrs, float, "--lrs", parser)
    generations = numbers(opts.generations, int, "--generations", parser)
    if min(generations) < 2:
        parser.error(f"--generations: GRPO compares at least 2 completions per prompt, got {opts.generations!r}")
    plan = DemoPlan(out=opts.out, seed=opts.seed, model=opts.model)
    try:
        if not (plan.path("sft", "trainer_state.json").is_file() and plan.path("data", "val", "manifest.jsonl").is_file()):
            raise MirgError(f"{opts.out} holds no finished demo (sft/ and data/val/): run `mirg demo --out` first")
        resolve_detail(plan, resolve_model_path(plan.model))
        folders = {name: plan.path(name) for name in ("sft", "sft_continued", "sft_grpo")
                   if plan.path(name, "trainer_state.json").is_file()}
        folders |= dict(grpo_at(plan, lr, n) for lr in lrs for n in generations)
        folders |= dict(grpo_with(plan, name, flags) for name, flags in extra.items())
        for split in ("val", "test"):
            for name, folder in folders.items():
                print(json.dumps({"seed": opts.seed, **evaluate(plan, split, name, folder)}), flush=True)
    except MirgError as exc:
        print(f"grpo_sweep: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
