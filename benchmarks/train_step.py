"""Step time and peak memory of the two training stages on the tiny Qwen2.5-VL, CPU.

Usage: python benchmarks/train_step.py [--steps 6] [--warmup 2] [--size s] [--completion-length 64]

Builds the tiny ``qwen2_5_vl`` model (``mirg model init-tiny``) and a dataset of 3 images of 224 px per
prompt (``mirg data synth`` + ``mirg data trajectories``, Qwen2.5-VL resized coordinates), then measures:

- SFT: batch 8 (8 prompt-completion samples, 24 images) per step;
- GRPO: 2 prompts x 4 generations per step (``per_device_train_batch_size`` 8, ``num_generations`` 4),
  ``max_completion_length`` as given (the mean length actually generated is reported: an untrained model
  seldom stops early).

A step is the wall time between two consecutive optimizer steps (batch loading, image processing,
generation for GRPO, forward, backward, update); the median over ``--steps`` steps after ``--warmup``
is reported, with peak RSS (``resource.getrusage``) of a fresh process per stage. Prints one JSON line
per stage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


#: The synthetic task families that can be posed with exactly 3 images (diff and view_diff take 2).
THREE_IMAGE_TASKS = "common_object,region,refer_grounding,group_grounding,reasoning,correspondence,object_tracking,multi_view"


def timing_callback():
    """A TrainerCallback recording the time of every optimizer step's end."""
    from transformers import TrainerCallback

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    return StepTimes()


def stage_arguments(stage: str, model: Path, data: Path, out: Path, opts) -> list[str]:
    common = ["--model", str(model), "--data", str(data), "--output_dir", str(out), "--max_steps",
              str(opts.warmup + opts.steps), "--per_device_train_batch_size", "8", "--save_strategy", "no",
              "--report_to", "none", "--logging_steps", "1", "--disable_tqdm", "true"]
    if stage == "grpo":
        return common + ["--num_generations", "4", "--max_completion_length", str(opts.completion_length)]
    return common


def measure_stage(stage: str, model: Path, data: Path, opts) -> dict:
    """Train ``stage`` for warm-up + measured steps in this process; step times and peak RSS."""
    import torch

    from mirg.train.common import prepare_run
    from mirg.train.config import GRPOArguments, SFTArguments, parse_arguments

    with tempfile.TemporaryDirectory() as tmp:
        cls = SFTArguments if stage == "sft" else GRPOArguments
        args = parse_arguments(cls, stage_arguments(stage, model, data, Path(tmp) / "out", opts), stage)
        setup = prepare_run(args, stage)
        if stage == "sft":
            from mirg.train.sft import build_sft_trainer as build
        else:
            from mirg.train.grpo import build_grpo_trainer as build
        trainer = build(args, setup)
        timer = timing_callback()
        trainer.add_callback(timer)
        trainer.train()
    steps = [b - a for a, b in zip(timer.ends, timer.ends[1:])][opts.warmup:]
    logged = [h for h in trainer.state.log_history if "completions/mean_length" in h][opts.warmup:]
    extra = {"mean_completion_tokens": round(statistics.mean(h["completions/mean_length"] for h in logged), 1)
             } if logged else {}
    return {
        "stage": stage,
        "median_step_s": round(statistics.median(steps), 3),
        "min_step_s": round(min(steps), 3),
        "max_step_s": round(max(steps), 3),
        "steps_measured": len(steps),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        **extra,
    }


def build_inputs(root: Path, size: str) -> tuple[Path, Path]:
    """The tiny model and a trajectories folder of 3 x 224-px images per prompt, through the real commands."""
    from mirg.cli import main

    model, synth, traj = root / "model", root / "synth", root / "traj"
    assert main(["model", "init-tiny", "--family", "qwen2_5_vl", "--out", str(model), "--size", size]) == 0
    assert main(["data", "synth", "--out", str(synth), "--samples", "64", "--image-size", "224", "--min-images", "3",
                 "--max-images", "3", "--tasks", THREE_IMAGE_TASKS]) == 0
    assert main(["data", "trajectories", "--data", str(synth), "--out", str(traj), "--coords", "resized",
                 "--max-pixels", "50176"]) == 0
    return model, traj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="measured steps per stage")
    parser.add_argument("--warmup", type=int, default=2, help="steps run before measuring")
    parser.add_argument("--size", choices=("xs", "s", "m"), default="s", help="tiny model size")
    parser.add_argument("--completion-length", type=int, default=64, help="GRPO max_completion_length")
    parser.add_argument("--stage", choices=("sft", "grpo"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.stage:  # child process: one stage, so that its peak RSS is its own
        print(json.dumps(measure_stage(opts.stage, Path(opts.model), Path(opts.data), opts)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model, data = build_inputs(Path(tmp), opts.size)
        for stage in ("sft", "grpo"):
            command = [sys.executable, __file__, "--stage", stage, "--model", str(model), "--data", str(data),
                       "--steps", str(opts.steps), "--warmup", str(opts.warmup),
                       "--completion-length", str(opts.completion_length)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{stage} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps({**result, "model_size": opts.size, "images": "3 x 224 px per prompt"}))


if __name__ == "__main__":
    main()
