"""What both stages do around TRL's trainer: check inputs, load and freeze the model, LoRA, resume, save.

A run is prepared (:func:`prepare_run`) the same way for a dry run and a real one, so a dry run catches
everything that can be caught without loading weights: the recipe, the data columns and image files, the
model folder and its processor, the coordinate space and pixel limits the data was written in, every sample's
tokens against the run's limits (:mod:`mirg.train.budget`), and what the run will need.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from time import monotonic  # the wall clock of time budgets (a test gives them a clock of its own)
from pathlib import Path
from typing import Any, Callable

from mirg.errors import MirgError, first_line
from mirg.models import ModelAdapter, adapter_for, resolve_model_path
from mirg.train.budget import SampleTokens, apply_limits, budget_report, count_tokens, run_limits
from mirg.train.data import build_dataset, load_stage_records


@dataclass
class RunSetup:
    """Everything a stage needs before it builds its trainer."""

    stage: str
    model_path: Path
    adapter: ModelAdapter
    processor: Any
    dataset: Any
    data_file: Path
    num_records: int
    resume_from: str | None
    #: Each kept record's tokens, in the dataset's order.
    tokens: list[SampleTokens] = field(default_factory=list)
    #: The token budget the dry run prints (:func:`mirg.train.budget.budget_report`).
    budget: dict = field(default_factory=dict)


def prepare_run(args, stage: str) -> RunSetup:
    """Resolve and check the model folder, its processor and the data (its space, and every sample's tokens
    against the run's limits); find the checkpoint to resume."""
    model_path = resolve_model_path(args.model)
    adapter = adapter_for(model_path).with_pixels(args.min_pixels, args.max_pixels)
    adapter.check_folder(model_path)
    processor = load_processor_checked(adapter, model_path)
    records, file = load_stage_records(args.data, stage, adapter, args.max_samples)
    tokens, budget = fit_budget(args, stage, records, file, processor, model_path)
    records = [records[s.record - 1] for s in tokens]
    dataset = build_dataset(records, file.parent)
    return RunSetup(stage, model_path, adapter, processor, dataset, file, len(records), checkpoint_to_resume(args),
                    tokens, budget)


def fit_budget(args, stage: str, records: list[dict], file: Path, processor, model_path: Path):
    """The samples that fit the run's limits (refused in one line, or with ``drop_overlong`` left out and counted)
    and the token budget; a dry run prints the budget also when it refuses the data."""
    limits = run_limits(args, stage, model_path)
    counted = count_tokens(records, processor, file.parent, stage)
    try:
        kept = apply_limits(counted, limits, file, getattr(args, "drop_overlong", False))
    except MirgError:
        if args.dry_run:
            print_budget(budget_report(counted, limits, stage))
        raise
    budget = budget_report(counted, limits, stage, dropped=len(counted) - len(kept))
    return [counted[i] for i in kept], budget


def print_budget(budget: dict) -> None:
    if os.environ.get("RANK", "0") == "0":
        print("dry run: token budget of the data, before the run's limits refuse it")
        print(json.dumps({"token_budget": budget}, indent=2))


def checkpoint_to_resume(args) -> str | None:
    """``--resume``: the last whole checkpoint in ``--out``; ``--resume-from-checkpoint DIR`` (the trainer's
    own option): that one, once checked; neither: None."""
    named = getattr(args, "resume_from_checkpoint", None)
    if not named:
        return find_checkpoint(args.output_dir) if args.resume else None
    if args.resume:
        raise MirgError("give --resume (the last checkpoint in --out) or --resume-from-checkpoint DIR, not both")
    checkpoint = Path(named)
    if not checkpoint.is_dir():
        raise MirgError(f"--resume-from-checkpoint {checkpoint}: no such folder")
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        raise MirgError(f"--resume-from-checkpoint {checkpoint}: not a whole checkpoint ({problem})")
    return str(checkpoint)


def load_processor_checked(adapter: ModelAdapter, model_path: Path):
    """The processor (:meth:`ModelAdapter.load_processor`: one line where it can't be built), with its chat
    template."""
    processor = adapter.load_processor(model_path)
    if getattr(processor, "chat_template", None) is None:
        raise MirgError(f"{model_path}: the processor has no chat template (chat_template.jinja missing)")
    return processor


def find_checkpoint(output_dir: str | None) -> str:
    """The last whole ``checkpoint-N`` folder in ``output_dir`` (for ``--resume``). A later one that a run killed
    while saving left damaged is passed over, and said so; one line when none is usable."""
    import re
    import sys

    folder = Path(output_dir or "")
    steps = {}
    for child in folder.iterdir() if folder.is_dir() else ():
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and child.is_dir():
            steps[child] = int(match.group(1))
    if not steps:
        raise MirgError(f"--resume: no checkpoint-N folder in {folder}; run without --resume to start fresh")
    damaged = []
    for checkpoint in sorted(steps, key=steps.get, reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            if damaged:
                print(f"--resume: passed over {'; '.join(damaged)}; resuming from {checkpoint.name}", file=sys.stderr)
            return str(checkpoint)
        damaged.append(f"{checkpoint.name} ({problem})")
    raise MirgError(f"--resume: no whole checkpoint in {folder}: {'; '.join(damaged)}; run without --resume to "
                    "start fresh")


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` can't be resumed from (the trainer's state unreadable, weights missing or cut short), or
    None. Reads the weights' headers only."""
    from safetensors import SafetensorError, safe_open

    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except ValueError:  # unreadable JSON or not UTF-8
        return "trainer_state.json unreadable"
    if not isinstance(state, dict) or "global_step" not in state:
        return "trainer_state.json unreadable"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return None if any(checkpoint.glob("*.bin")) else "no weights"  # torch's format: nothing to check cheaply
    for file in weights:
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            return f"{file.name} cut short: {first_line(exc)}"
    return None


def runtime_needs(args) -> list[str]:
    """What the run will need that a dry run does not: GPU for bf16/fp16, vLLM, DeepSpeed, ..."""
    needs = []
    if getattr(args, "bf16", False) or getattr(args, "fp16", False):
        needs.append("a GPU with bf16/fp16 support (mixed precision)")
    if getattr(args, "use_vllm", False):
        installed = "installed" if importlib.util.find_spec("vllm") else "NOT installed here"
        needs.append(f"vLLM ({installed}; mode {args.vllm_mode})")
    if getattr(args, "deepspeed", None):
        installed = "installed" if importlib.util.find_spec("deepspeed") else "NOT installed here"
        needs.append(f"DeepSpeed ({installed})")
    if getattr(args, "use_lora", False) and not importlib.util.find_spec("peft"):
        needs.append("peft (NOT installed here)")
    return needs


def dry_run_report(args, setup: RunSetup) -> dict:
    """The summary a dry run prints: what would be trained on what, and what it will need."""
    import torch

    needs = runtime_needs(args)
    if needs and not torch.cuda.is_available():
        needs.append("no GPU is visible here")
    return {
        "stage": setup.stage,
        "model": str(setup.model_path),
        "family": setup.adapter.family,
        "coords": setup.adapter.coords,
        "min_pixels": setup.adapter.min_pixels,
        "max_pixels": setup.adapter.max_pixels,
        "data": str(setup.data_file),
        "records": setup.num_records,
        "token_budget": setup.budget,
        "output_dir": args.output_dir,
        "resume_from": setup.resume_from,
        "needs_at_run_time": needs,
    }


def print_dry_run(report: dict) -> None:
    if os.environ.get("RANK", "0") != "0":  # under accelerate, one report is enough
        return
    print("dry run: recipe, data and model folder are valid; stopping before training")
    print(json.dumps(report, indent=2))


def load_policy(args, setup: RunSetup):
    """The model to train, with the vision tower frozen when asked."""
    model = setup.adapter.load_model(setup.model_path, args.dtype)
    if args.freeze_vision:
        freeze_vision(model, setup.adapter)
    return model


def freeze_vision(model, adapter: ModelAdapter) -> int:
    """Stop gradients into the vision tower; returns how many tensors were frozen (0 is an error)."""
    params = adapter.vision_parameters(model)
    if not params:
        raise MirgError(f"--freeze-vision: no parameters under {', '.join(adapter.vision_module_prefixes)}")
    for _, param in params:
        param.requires_grad_(False)
    return len(params)


def lora_config(args, adapter: ModelAdapter, task_type: str = "CAUSAL_LM"):
    """peft's LoraConfig when ``use_lora`` (vision tower left out when it is frozen), else None."""
    if not args.use_lora:
        return None
    from peft import LoraConfig

    targets = args.lora_target_modules
    exclude = None
    if args.freeze_vision:
        prefixes = "|".join(p.replace(".", r"\.") for p in adapter.vision_module_prefixes)
        exclude = rf"(.*\.)?({prefixes})\..*"
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        exclude_modules=exclude,
        task_type=task_type,
    )


def save_final(trainer, setup: RunSetup, output_dir: str) -> Path:
    """The final model WITH its processor and chat template, and ``trainer_state.json``, in ``output_dir``.

    With LoRA the adapter goes to ``output_dir/adapter`` and the merged model to ``output_dir``, so the
    next stage (or evaluation) loads ``output_dir`` like any model folder.
    """
    out = Path(output_dir)
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        trainer.save_model(str(out / "adapter"))
        if trainer.accelerator.is_main_process:
            merged = trainer.accelerator.unwrap_model(model).merge_and_unload()
            merged.save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        setup.processor.save_pretrained(str(out))
    trainer.save_state()
    trainer.accelerator.wait_for_everyone()
    return out


class LinearCooldown:
    """The learning rate falling linearly to zero from step ``start`` to step ``end``, on top of the
    trainer's schedule: the rate after step s >= ``start`` is the schedule's times (end - s) / (end - start).

    >>> cool = LinearCooldown(); cool.begin(70, 100)
    >>> [round(cool.factor(s), 2) for s in (0, 69, 70, 85, 99, 100)]
    [1.0, 1.0, 1.0, 0.5, 0.03, 0.0]
    """

    def __init__(self):
        self.start: int | None = None
        self.end: int | None = None

    def begin(self, start: int, end: int) -> None:
        self.start, self.end = start, end

    def factor(self, step: int) -> float:
        if self.start is None or step < self.start or self.end <= self.start:
            return 1.0
        return max(0.0, (self.end - step) / (self.end - self.start))

    def wrap(self, scheduler) -> None:
        """Multiply every rule of ``scheduler`` (a ``LambdaLR``, as every transformers schedule is) by
        :meth:`factor`."""
        rules = getattr(scheduler, "lr_lambdas", None)
        if rules is None:
            raise MirgError(f"--lr-cooldown needs a transformers learning-rate schedule, got {type(scheduler).__name__}")
        scheduler.lr_lambdas = [lambda step, rule=rule: rule(step) * self.factor(step) for rule in rules]


def cooldown_start(fraction: float, end: int) -> int:
    """The step a cool-down over the last ``fraction`` of ``end`` steps begins at.

    >>> cooldown_start(0.3, 523), round(366 / (1 - 0.3))
    (366, 523)
    """
    return round((1 - fraction) * end)


def step_cooldown_callback(fraction: float):
    """A callback for a run of a known step count: the learning rate falls linearly to zero over its last
    ``fraction`` of steps."""
    from transformers import TrainerCallback

    class StepCooldown(TrainerCallback):
        def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            cool = LinearCooldown()
            cool.begin(cooldown_start(fraction, state.max_steps), state.max_steps)
            cool.wrap(lr_scheduler)

    return StepCooldown()


def wall_clock_callback(minutes: float, cooldown: float = 0.0):
    """A callback that ends training once ``minutes`` of wall time have passed since training began.

    With ``cooldown`` (a fraction), the learning rate falls linearly to zero over the last part of the run:
    at the first step s0 with ``cooldown`` of the time left, the run's end is set at step
    N = round(s0 / (1 - cooldown)), the steps the pace so far predicts, and training ends there (so that
    ``--max-steps N`` with the same cool-down repeats it; a cool-down taking twice its share of the time is cut
    at that point).
    """
    from transformers import TrainerCallback

    class WallClockBudget(TrainerCallback):
        def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            self.start = monotonic()
            self.deadline = self.start + 60.0 * minutes
            self.cool = LinearCooldown()
            if cooldown:
                self.cool.wrap(lr_scheduler)

        def on_step_end(self, args, state, control, **kwargs):
            now = monotonic()
            if cooldown and self.cool.start is None and now >= self.deadline - 60.0 * minutes * cooldown:
                self.cool.begin(state.global_step, round(state.global_step / (1 - cooldown)))
            if self.cool.start is not None:
                if state.global_step >= self.cool.end or now >= self.deadline + 60.0 * minutes * cooldown:
                    control.should_training_stop = True
            elif now >= self.deadline:
                control.should_training_stop = True
            return control

    return WallClockBudget()


#: What the progress line shows of the trainer's logs, in this order, and how it names each (the rest stays in
#: trainer_state.json and the ``--report-to`` loggers).
PROGRESS_KEYS = (("loss", "loss"), ("mean_token_accuracy", "acc"), ("reward", "reward"),
                 ("rewards/format_reward/mean", "format"), ("rewards/image_reward/mean", "image"),
                 ("rewards/object_reward/mean", "object"))


def progress_text(logs: dict) -> str:
    """The few numbers of a trainer log the progress line shows.

    >>> progress_text({"loss": 0.41234, "grad_norm": 3.0, "mean_token_accuracy": 0.9, "epoch": 0.2})
    'loss 0.4123, acc 0.900'
    >>> progress_text({"loss": 0.0, "reward": 1.5, "rewards/image_reward/mean": 0.75})
    'reward 1.500, image 0.750'
    """
    shown = []
    for key, name in PROGRESS_KEYS:
        value = logs.get(key)
        if key == "loss" and "reward" in logs:
            continue  # GRPO's loss says little; its rewards say how it goes
        if isinstance(value, (int, float)):
            shown.append(f"{name} {value:.4g}" if key == "loss" else f"{name} {value:.3f}")
    return ", ".join(shown)


def progress_callback(stage: str, minutes: float | None = None):
    """One compact progress line for a training stage: the steps done (or, under a time budget, whose step count is
    open-ended, the seconds), the latest loss or rewards, the rate and what is left. It replaces transformers' bar,
    which prints every log as a dictionary of some forty keys; the full logs stay in the run folder."""
    import time

    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class ProgressLine(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_local_process_zero:
                return
            if minutes:
                self.bar = tqdm(total=round(60.0 * minutes), unit="s", desc=f"{stage} ({minutes:g} min budget)",
                                bar_format="{l_bar}{bar}| {n}/{total} s{postfix}", dynamic_ncols=True)
                self.start = time.monotonic()
            else:
                self.bar = tqdm(total=state.max_steps, initial=state.global_step, unit="step", desc=stage,
                                dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is None:
                return
            if minutes:  # at most one redraw a second, also into a log file
                elapsed = min(self.bar.total, round(time.monotonic() - self.start))
                if elapsed > self.bar.n:
                    self.bar.set_postfix_str(f"step {state.global_step}" + self._latest(state), refresh=False)
                    self.bar.update(elapsed - self.bar.n)
            else:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and not minutes:
                text = progress_text(logs)
                if text:
                    self.bar.set_postfix_str(text)

        def _latest(self, state) -> str:
            logged = [entry for entry in state.log_history if progress_text(entry)]
            return ", " + progress_text(logged[-1]) if logged else ""

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return ProgressLine()


def build_checked(stage: str, make: Callable[[], Any]) -> Any:
    """The trainer ``make`` builds. TRL and transformers check their options as the trainer is built: an option
    combination they refuse (``--eval-strategy steps`` without an evaluation set) or an optional package a
    ``--report-to`` needs ends in one line here, not a traceback."""
    try:
        return make()
    except MirgError:
        raise
    except (ValueError, ImportError, RuntimeError) as exc:
        raise MirgError(f"cannot build the {stage} trainer: {first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - only the network's are explained; anything else stays a traceback
        if not from_network(exc):
            raise
        raise MirgError(f"cannot build the {stage} trainer: the Hugging Face Hub is out of reach "
                        f"({type(exc).__name__}: {first_line(exc)}); --push-to-hub needs it") from None


def from_network(exc: BaseException) -> bool:
    """Whether ``exc`` is an HTTP client's or the Hub client's (its class, or one it derives from, defined there)."""
    roots = {"httpx", "httpx2", "requests", "urllib3", "huggingface_hub"}
    return any(cls.__module__.split(".")[0] in roots for cls in type(exc).__mro__)


def train_and_save(trainer, setup: RunSetup, args) -> Path:
    """Train (from the checkpoint when resuming), then save model, processor and state."""
    minutes = getattr(args, "max_minutes", None)
    if minutes:
        trainer.add_callback(wall_clock_callback(minutes, getattr(args, "lr_cooldown", 0.0)))
    elif getattr(args, "lr_cooldown", 0.0):
        trainer.add_callback(step_cooldown_callback(args.lr_cooldown))
    if not args.disable_tqdm:
        from transformers.trainer_callback import ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(progress_callback(setup.stage, minutes))
    trainer.train(resume_from_checkpoint=setup.resume_from)
    return save_final(trainer, setup, args.output_dir)
