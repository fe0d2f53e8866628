"""Stage 2: GRPO with image-aware rewards on TRL's ``GRPOTrainer``.

The rewards come from :func:`mirg.rewards.build_rewards` with the model family's coordinate space and
pixel limits (asked of its adapter), so a Qwen2.5-VL box in resized pixels and a Qwen2-VL box in 0-1000
are both scored in original pixels. TRL logs every reward as ``rewards/<name>/mean`` and ``.../std``.

With vLLM rollouts TRL tokenizes each prompt with the run's processor (its image tokens at the run's pixel limits)
and vLLM turns the images into features with its own processor: in colocate mode the model folder's saved one, in
server mode the server's. The two must resize alike, so colocate mode refuses a folder saved at other limits, and
the dry run prints the server command that matches the run (``docs/vllm.md``).
"""

from __future__ import annotations

import json
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


def check_vllm_pixels(args: GRPOArguments) -> None:
    """Colocated vLLM builds its processor from the model folder: its pixel limits must be the run's, or vLLM's image
    features and the prompt's image tokens (the run's processor's) differ in number. Checked first: it reads only the
    folder's configs."""
    from mirg.errors import MirgError
    from mirg.models import adapter_for, resolve_model_path

    if not args.use_vllm or args.vllm_mode != "colocate":
        return
    model_path = resolve_model_path(args.model)
    saved = adapter_for(model_path)
    run = saved.with_pixels(args.min_pixels, args.max_pixels)
    if (saved.min_pixels, saved.max_pixels) != (run.min_pixels, run.max_pixels):
        raise MirgError(f"--use-vllm (colocate): vLLM resizes images with {model_path}'s saved processor "
                        f"(min_pixels {saved.min_pixels}, max_pixels {saved.max_pixels}) but this run's processor uses "
                        f"min_pixels {run.min_pixels}, max_pixels {run.max_pixels}, so image features and image tokens "
                        f"would not match; run with --min-pixels {saved.min_pixels} --max-pixels {saved.max_pixels}, "
                        "or train from a folder saved at the run's limits (`mirg sft` saves its model so)")


def vllm_report(args: GRPOArguments, setup) -> dict | None:
    """What vLLM will be given: context, images per prompt, memory, pixel limits; in server mode, the command that
    starts a matching server (``trl vllm-serve`` forwards the options it does not know to ``vllm serve``)."""
    import shlex

    if not args.use_vllm:
        return None
    limits = setup.budget.get("limits", {})
    context = args.vllm_max_model_length or limits.get("max_position_embeddings")
    pixels = {"min_pixels": setup.adapter.min_pixels, "max_pixels": setup.adapter.max_pixels}
    report = {"mode": args.vllm_mode, "max_model_length": context, "max_images": args.vllm_max_images,
              "pixel_limits": pixels}
    if args.vllm_mode == "colocate":
        report["gpu_memory_utilization"] = args.vllm_gpu_memory_utilization
        report["tensor_parallel_size"] = args.vllm_tensor_parallel_size
        return report
    command = ["trl", "vllm-serve", "--model", str(setup.model_path)]
    command += ["--max-model-len", str(context)] if context else []
    if args.vllm_max_images:
        command += ["--limit-mm-per-prompt", json.dumps({"image": args.vllm_max_images})]
    command += ["--mm-processor-kwargs", json.dumps(pixels)]
    report["server_command"] = shlex.join(command)
    return report


def run_grpo(args: GRPOArguments) -> Path | dict:
    """Check, then (unless ``dry_run``) train and save; returns the output folder or the dry-run report."""
    check_vllm_pixels(args)
    setup = prepare_run(args, "grpo")
    rewards = build_reward_functions(args, setup.adapter)
    if args.dry_run:
        report = dry_run_report(args, setup)
        report["rewards"] = [f.__name__ for f in rewards]
        report["reward_weights"] = args.reward_weights
        report["vllm"] = vllm_report(args, setup)
        print_dry_run(report)
        return report
    trainer = build_checked("grpo", lambda: build_grpo_trainer(args, setup))
    return train_and_save(trainer, setup, args)
