"""`mirg sft` and `mirg grpo`: the two training stages.

Their options are TRL's config fields plus mirg's, parsed by TRL's recipe parser inside the handler
(so `mirg --help` never imports TRL). The sub-parsers here only collect the raw arguments: they use
``+`` as option prefix so every ``--flag`` reaches the stage parser untouched.
"""

from __future__ import annotations

import argparse

USAGE = {
    "sft": "mirg sft --config RECIPE.yaml [--model DIR] [--data DIR] [--out DIR] [--max-steps N] "
    "[--<any config field> V] [--dry-run] [--resume]  (mirg sft --help lists every option)",
    "grpo": "mirg grpo --config RECIPE.yaml [--model DIR] [--data DIR] [--out DIR] [--max-steps N] "
    "[--rewards format,image,object] [--reward-weights 1,1,1] [--object-reward-mode iou|iou@T|piecewise] "
    "[--<any config field> V] [--dry-run] [--resume]  (mirg grpo --help lists every option)",
}
HELP = {
    "sft": "stage 1: supervised fine-tuning on reasoning trajectories (TRL SFTTrainer)",
    "grpo": "stage 2: GRPO with image-aware rewards (TRL GRPOTrainer)",
}


def register(sub: argparse._SubParsersAction) -> None:
    for stage, handler in (("sft", run_sft), ("grpo", run_grpo)):
        p = sub.add_parser(stage, help=HELP[stage], usage=USAGE[stage], add_help=False, prefix_chars="+")
        p.add_argument("stage_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=handler)


def run_sft(args: argparse.Namespace) -> int:
    from mirg.train.config import SFTArguments, parse_arguments
    from mirg.train.sft import run_sft as run

    _quiet_transformers()
    _report(run(parse_arguments(SFTArguments, args.stage_args, "sft")))
    return 0


def run_grpo(args: argparse.Namespace) -> int:
    from mirg.train.config import GRPOArguments, parse_arguments
    from mirg.train.grpo import run_grpo as run

    _quiet_transformers()
    _report(run(parse_arguments(GRPOArguments, args.stage_args, "grpo")))
    return 0


def _quiet_transformers() -> None:
    """No bar for each weight file loaded or saved: the terminal shows the stage's one progress line."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def _report(result) -> None:
    """One line about where the result went, from the main process only (under accelerate there are many)."""
    import os

    if not isinstance(result, dict) and os.environ.get("RANK", "0") == "0":
        print(f"saved the final model, its processor and trainer_state.json to {result}")
