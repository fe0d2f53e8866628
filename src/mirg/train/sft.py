"""Stage 1: supervised fine-tuning on reasoning trajectories with TRL's ``SFTTrainer``.

Records are prompt-completion conversations (``sft.jsonl``); TRL's vision collator builds each batch
from the images at that moment and masks the prompt, so the loss is on the assistant turn only.
"""

from __future__ import annotations

from pathlib import Path

from mirg.train.common import (
    dry_run_report,
    load_policy,
    lora_config,
    prepare_run,
    print_dry_run,
    train_and_save,
)
from mirg.train.config import SFTArguments


def check_sft_options(args: SFTArguments) -> None:
    """Force what multi-image prompt-completion training needs: loss on the completion, no packing."""
    from mirg.errors import MirgError

    if args.completion_only_loss is False:
        raise MirgError("completion_only_loss: false would train on the prompt too; SFT trains the assistant turn only")
    if args.packing:
        raise MirgError("packing is not supported for image data; set packing: false")
    if args.max_length is not None and args.max_length < 64:
        raise MirgError(f"max_length {args.max_length} is too short for image prompts (image tokens must fit)")


def build_sft_trainer(args: SFTArguments, setup):
    """TRL's SFTTrainer for the prepared run, with the processor passed explicitly."""
    from trl import SFTTrainer

    return SFTTrainer(
        model=load_policy(args, setup),
        args=args,
        train_dataset=setup.dataset,
        processing_class=setup.processor,
        peft_config=lora_config(args, setup.adapter),
    )


def run_sft(args: SFTArguments) -> Path | dict:
    """Check, then (unless ``dry_run``) train and save; returns the output folder or the dry-run report."""
    check_sft_options(args)
    setup = prepare_run(args, "sft")
    if args.dry_run:
        report = dry_run_report(args, setup)
        print_dry_run(report)
        return report
    trainer = build_sft_trainer(args, setup)
    return train_and_save(trainer, setup, args)
