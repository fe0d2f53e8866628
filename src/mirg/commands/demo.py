"""`mirg demo`: the whole method on the embedded default, on a CPU."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole method on the embedded default, on a CPU, in minutes",
        description="Synthetic train/val/test splits -> template trajectories -> the embedded base -> SFT -> GRPO "
        "-> evaluation of base, SFT and SFT+GRPO on the held-out test split. Writes OUT/summary.json, "
        "OUT/report.html and every stage's folder; rerunning continues where an interrupted demo stopped.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data splits and training (default 0)")
    p.add_argument("--model", default="embedded", help="base model folder (default: the embedded base)")
    p.add_argument("--sft-minutes", type=float, help="stage-1 wall time (default from the demo plan)")
    p.add_argument("--grpo-minutes", type=float, help="stage-2 wall time (default from the demo plan)")
    p.add_argument("--n-train", type=int, help="training samples (default from the demo plan)")
    p.add_argument("--n-test", type=int, help="held-out test samples (default from the demo plan)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirg.demo import DemoPlan, run_demo
    from mirg.errors import MirgError

    plan = DemoPlan(out=Path(args.out), seed=args.seed, model=args.model)
    for name, value in (("sft_minutes", args.sft_minutes), ("grpo_minutes", args.grpo_minutes), ("n_train", args.n_train),
                        ("n_test", args.n_test)):
        if value is not None:
            if value <= 0:
                raise MirgError(f"--{name.replace('_', '-')} must be positive, got {value}")
            setattr(plan, name, value)
    run_demo(plan)
    return 0
