"""`mirg demo`: the whole method on the embedded default, on a CPU."""

from __future__ import annotations

import argparse

from mirg.options import renamed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole method on the embedded default, on a CPU, in minutes",
        description="Synthetic train/val/test splits -> template trajectories -> the embedded base -> SFT -> GRPO "
        "-> evaluation of base, SFT and SFT+GRPO on the held-out test split. Writes OUT/summary.json, "
        "OUT/report.html and every stage's folder; rerunning continues where an interrupted demo stopped, "
        "and only with the settings and base it was started with (OUT/plan.json).",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data splits and training (default 0)")
    p.add_argument("--model", default="embedded", help="base model folder (default: the embedded base)")
    from mirg.demo import CHAIN_DECISION_WEIGHT, DemoPlan  # light: the plan's defaults, shown in the help

    d = DemoPlan(out=None)  # type: ignore[arg-type]
    budget = p.add_argument_group("how long each stage trains (steps by default: the same table on any machine)")
    budget.add_argument("--sft-steps", type=int, help=f"stage-1 (SFT) optimizer steps (default {d.sft_steps})")
    budget.add_argument("--grpo-steps", type=int, help=f"stage-2 (GRPO) optimizer steps (default {d.grpo_steps})")
    budget.add_argument("--sft-minutes", type=float,
                        help="train stage 1 for this many minutes of wall time instead of --sft-steps (a faster machine "
                        "trains more steps; summary.json records them and the command that repeats them)")
    budget.add_argument("--grpo-minutes", type=float, help="train stage 2 for this many minutes instead of --grpo-steps")
    p.add_argument("--sft-lr", type=float,
                   help=f"stage-1 (SFT) learning rate, constant until its cool-down (default {d.sft_lr:g})")
    p.add_argument("--sft-lr-cooldown", type=float, metavar="F",
                   help=f"stage 1's learning rate falls linearly to zero over this last fraction of it (`mirg sft "
                   f"--lr-cooldown`; 0: constant to the end; default {d.sft_cooldown:g})")
    p.add_argument("--grpo-lr", type=float, help=f"stage-2 (GRPO) learning rate, constant (default {d.grpo_lr:g})")
    p.add_argument("--decision-weight", type=float,
                   help=f"stage-1 loss weight of the decision sentence's tokens, the target's label and image "
                   f"(`mirg sft --decision-weight`; default {CHAIN_DECISION_WEIGHT:g} with chain trajectories, the "
                   f"only ones that write that sentence, else 1)")
    p.add_argument("--train-samples", type=int, help=f"training samples (default {d.n_train})")
    p.add_argument("--test-samples", type=int, help=f"held-out test samples (default {d.n_test})")
    from mirg.formats import DETAILS, ORDERS

    p.add_argument("--detail", choices=DETAILS,
                   help="what the stage-1 trajectories write before the answer (see `mirg data trajectories "
                   "--help`; default: the list format a pretrain-tiny base was trained on, as the embedded "
                   "base's list, else brief)")
    p.add_argument("--order", choices=ORDERS,
                   help="order of the objects in the trajectories' lists (default: the order a pretrain-tiny base was "
                   "trained on, else left-to-right)")
    p.add_argument("--freeze-vision", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the base's vision tower as it is in both stages (default); --no-freeze-vision trains "
                   "it too")
    renamed(p, "--n-train", "--train-samples", type=int)
    renamed(p, "--n-test", "--test-samples", type=int)
    renamed(p, "--sft-cooldown", "--sft-lr-cooldown", type=float)
    renamed(p, "--train-vision", "--no-freeze-vision", dest="freeze_vision", flag=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirg.demo import DemoPlan, run_demo
    from mirg.errors import MirgError

    if args.seed < 0:  # checked here, before any stage runs, not by the first stage that meets it
        raise MirgError(f"--seed must be 0 or more, got {args.seed}")
    plan = DemoPlan(out=Path(args.out), seed=args.seed, model=args.model)
    for stage in ("sft", "grpo"):
        if getattr(args, f"{stage}_minutes") is not None and getattr(args, f"{stage}_steps") is not None:
            raise MirgError(f"give --{stage}-minutes or --{stage}-steps, not both")
    for name, value, flag in (("sft_minutes", args.sft_minutes, "--sft-minutes"),
                              ("grpo_minutes", args.grpo_minutes, "--grpo-minutes"),
                              ("n_train", args.train_samples, "--train-samples"),
                              ("n_test", args.test_samples, "--test-samples"), ("sft_steps", args.sft_steps, "--sft-steps"),
                              ("grpo_steps", args.grpo_steps, "--grpo-steps"), ("sft_lr", args.sft_lr, "--sft-lr"),
                              ("grpo_lr", args.grpo_lr, "--grpo-lr"),
                              ("decision_weight", args.decision_weight, "--decision-weight")):
        if value is not None:
            if not 0 < value < float("inf"):  # nan and inf too: argparse's float takes them
                raise MirgError(f"{flag} must be positive, got {value}")
            setattr(plan, name, value)
    for stage in ("sft", "grpo"):  # a wall-clock budget replaces the default step count
        if getattr(args, f"{stage}_minutes") is not None:
            setattr(plan, f"{stage}_steps", None)
    if args.sft_lr_cooldown is not None:
        if not 0 <= args.sft_lr_cooldown < 1:
            raise MirgError(f"--sft-lr-cooldown is a fraction of stage 1 from 0 (off) to below 1, got "
                            f"{args.sft_lr_cooldown}")
        plan.sft_cooldown = args.sft_lr_cooldown
    if args.detail is not None:
        plan.detail = args.detail
    if args.order is not None:
        plan.order = args.order
    plan.freeze_vision = args.freeze_vision
    run_demo(plan)
    return 0
