"""Stage 2: GRPO with image-aware rewards on TRL's ``GRPOTrainer``.

The rewards come from :func:`mirg.rewards.build_rewards` with the model family's coordinate space and
pixel limits (asked of its adapter), so a Qwen2.5-VL box in resized pixels and a Qwen2-VL box in 0-1000
are both scored in original pixels. TRL logs every reward as ``rewards/<name>/mean`` and ``.../std``.
"""

from __future__ import annotations

from pathlib import Path

from mirg.train.common import (
    build_checked,
    dry_run_report,
    load_policy,
    lora_config,
    prepare_run,
    print_dry_run,
    train_and_save,
)
from mirg.train.config import GRPOArguments


def build_reward_functions(args: GRPOArguments, adapter) -> list:
    """The reward functions named in ``args.rewards``, reading boxes as ``adapter``'s family writes them."""
    from mirg.rewards import build_rewards

    return build_rewards(args.rewards, object_mode=args.object_reward_mode, **adapter.reward_options())


def build_grpo_trainer(args: GRPOArguments, setup):
    """TRL's GRPOTrainer for the prepared run, with the processor passed explicitly.

    The tokenizer pads on the left: TRL left-pads prompt ids itself but takes the image token types from
    the processor, and the two must line up when prompts in a batch have different lengths.
    """
    from trl import GRPOTrainer

    setup.processor.tokenizer.padding_side = "left"
    return GRPOTrainer(
        model=load_policy(args, setup),
        reward_funcs=build_reward_functions(args, setup.adapter),
        args=args,
        train_dataset=setup.dataset,
        processing_class=setup.processor,
        peft_config=lora_config(args, setup.adapter),
    )


def run_grpo(args: GRPOArguments) -> Path | dict:
    """Check, then (unless ``dry_run``) train and save; returns the output folder or the dry-run report."""
    setup = prepare_run(args, "grpo")
    rewards = build_reward_functions(args, setup.adapter)
    if args.dry_run:
        report = dry_run_report(args, setup)
        report["rewards"] = [f.__name__ for f in rewards]
        report["reward_weights"] = args.reward_weights
        print_dry_run(report)
        return report
    trainer = build_checked("grpo", lambda: build_grpo_trainer(args, setup))
    return train_and_save(trainer, setup, args)
