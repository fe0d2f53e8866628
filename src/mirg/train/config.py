"""Configuration of `mirg sft` and `mirg grpo`: TRL's configs plus the fields mirg adds.

Every field of TRL's ``SFTConfig`` / ``GRPOConfig`` (hence of transformers' ``TrainingArguments``) is a
flag and a recipe key; :class:`MirgArguments` adds what both stages share (model, data, frozen vision
tower, LoRA, pixel limits, resume, dry run) and :class:`GRPOArguments` the rewards. A YAML recipe given
with ``--config`` sets the defaults and flags override it (TRL's ``TrlParser``); an unknown key in the
recipe or on the command line is a one-line error.

This module imports TRL; the command line imports it inside its handlers only.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from trl import GRPOConfig, SFTConfig, TrlParser

from mirg.errors import MirgError, first_line
from mirg.rewards import REWARD_FACTORIES, make_object_reward

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class MirgArguments:
    """Fields shared by both stages.

    Parameters:
        model: Model folder (a Hugging Face folder saved with its processor).
        data: Trajectories folder (``sft.jsonl`` / ``rl.jsonl``; image paths relative to it).
        dtype: dtype the weights are loaded in.
        freeze_vision: Keep the vision tower's weights fixed.
        use_lora / lora_*: Train LoRA adapters instead of all weights.
        min_pixels / max_pixels: Image processor limits (Qwen); they also define the ``resized`` space.
        max_samples: Use only the first N records of the data file.
        drop_overlong: Leave out (and count) samples over the run's token or image limits instead of refusing.
        resume: Continue from the last whole checkpoint in ``output_dir``.
        dry_run: Check recipe, data and model folder, then stop before loading weights or training.
        max_minutes: Stop training after this many minutes of wall time.
        lr_cooldown: Fraction of the run at its end over which the learning rate falls linearly to zero.
    """

    model: str | None = field(
        default=None, metadata={"help": "Model folder: a Hugging Face folder with config, weights and processor."}
    )
    data: str | None = field(
        default=None,
        metadata={"help": "Trajectories folder holding sft.jsonl / rl.jsonl (image paths relative to it)."},
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "dtype the weights are loaded in: float32, bfloat16, float16 or auto."},
    )
    freeze_vision: bool = field(
        default=False, metadata={"help": "Freeze the vision tower (the projector/merger stays trainable for LLaVA)."}
    )
    use_lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        metadata={"help": "Module names that get LoRA adapters (comma or space separated; 'all-linear' for all)."},
    )
    min_pixels: int | None = field(
        default=None,
        metadata={"help": "Image processor min_pixels (Qwen; default: the model folder's). Also used by rewards."},
    )
    max_pixels: int | None = field(
        default=None,
        metadata={"help": "Image processor max_pixels (Qwen; default: the model folder's). Also used by rewards."},
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N records of the data file (quick runs)."}
    )
    drop_overlong: bool = field(
        default=False,
        metadata={"help": "Leave out, and count, the samples over the run's limits (SFT: max_length; GRPO: the prompt "
                          "plus max_completion_length over the context, and with vLLM more images than "
                          "vllm_max_images) instead of refusing the data. A sample is never cut."},
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue from the last whole checkpoint in --out (one a run killed "
                                 "while saving left damaged is passed over, and named; error if none)."}
    )
    dry_run: bool = field(
        default=False,
        metadata={"help": "Check recipe, data and model folder, report what the run needs, and stop."},
    )
    max_minutes: float | None = field(
        default=None,
        metadata={"help": "Stop training after this many minutes of wall time (then save as usual); "
                          "max_steps/epochs still set the learning-rate schedule."},
    )
    lr_cooldown: float = field(
        default=0.0,
        metadata={"help": "Fraction of the run, at its end, over which the learning rate falls linearly to zero "
                          "(on top of --lr-scheduler-type; 0: off). With --max-minutes it begins when that "
                          "fraction of the time is left and lasts the steps the pace so far predicts; training "
                          "ends with it, and --max-steps of that many steps repeats the run."},
    )

    def __post_init__(self):
        if self.model is None:
            raise MirgError("no model: pass --model DIR or set `model:` in the recipe")
        if self.data is None:
            raise MirgError("no data: pass --data DIR (a trajectories folder) or set `data:` in the recipe")
        if self.max_samples is not None and self.max_samples < 1:
            raise MirgError(f"--max-samples must be at least 1, got {self.max_samples}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise MirgError(f"--max-minutes must be positive, got {self.max_minutes}")
        if not 0 <= self.lr_cooldown < 1:
            raise MirgError(f"--lr-cooldown is a fraction of the run from 0 (off) to below 1, got {self.lr_cooldown}")
        if self.output_dir:
            check_output_dir(Path(self.output_dir))
        check_at_least(self, 1, ("per_device_train_batch_size", "per_device_eval_batch_size",
                                 "gradient_accumulation_steps"))
        check_at_least(self, 0, ("learning_rate", "weight_decay", "warmup_steps", "max_grad_norm"))
        self.lora_target_modules = split_list(self.lora_target_modules)
        deferred = self._defer_gpu_only_options()
        super().__post_init__()
        for name, value in deferred.items():  # reported by the dry run as run-time needs
            setattr(self, name, value)
        schedule = getattr(self.lr_scheduler_type, "value", self.lr_scheduler_type)
        if self.lr_cooldown and schedule == "reduce_lr_on_plateau":
            raise MirgError("--lr-cooldown scales a schedule by step; reduce_lr_on_plateau is not one")

    def _defer_gpu_only_options(self) -> dict:
        """Without a GPU: mixed precision defaults to off, and a dry run checks a GPU recipe with it off.

        transformers refuses bf16/fp16 on a machine without a GPU; a dry run must still validate a GPU
        recipe here, so the values are set aside during validation and restored for the report.
        """
        import torch

        if torch.cuda.is_available():
            return {}
        if self.bf16 is None:
            self.bf16 = False
        deferred = {name: True for name in ("bf16", "fp16") if self.dry_run and getattr(self, name)}
        for name in deferred:
            setattr(self, name, False)
        return deferred


def check_output_dir(out: Path) -> None:
    """A new or empty folder, or one an earlier run wrote (its model, checkpoints or logs): anything else is
    someone's folder, whose README.md the run's model card would overwrite."""
    from mirg.folders import check_output_folder

    check_output_folder(out, "--out", ["config.json", "trainer_state.json", "runs", "checkpoint-*"],
                        "its weights and a README.md model card")


def check_at_least(args, lowest: float, names: tuple[str, ...]) -> None:
    """Each named option that is set is a number no smaller than ``lowest`` (nan fails), else one line
    naming the flag, before transformers or torch meets it mid-run with a traceback."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not value >= lowest:
            raise MirgError(f"--{name} must be at least {lowest}, got {value}")


def split_list(value) -> list[str]:
    """A list from ``a,b,c``, ``["a", "b"]`` or ``["a,b"]`` (recipes and flags write lists both ways).

    >>> split_list("format, image,object")
    ['format', 'image', 'object']
    >>> split_list(["format,image", "object"])
    ['format', 'image', 'object']
    """
    items = [value] if isinstance(value, str) else list(value or [])
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


@dataclass
class SFTArguments(MirgArguments, SFTConfig):
    """`mirg sft`: TRL's SFTConfig plus :class:`MirgArguments`. Loss is on the assistant turn only."""

    report_to: None | str | list[str] = field(
        default="tensorboard", metadata={"help": "Where to log: tensorboard (default), none, wandb, ..."}
    )
    decision_weight: float = field(
        default=1.0,
        metadata={"help": "Loss weight of the decision: the tokens after --decision-prefix up to the next full stop "
                          "(the target's label and image in a chain trajectory), against 1 for every other "
                          "completion token; the loss stays divided by the token count (1: TRL's loss)."},
    )
    decision_prefix: str = field(
        default="The target is the",
        metadata={"help": "Words that open the decision sentence (default: the chain trajectories' "
                          "'The target is the')."},
    )

    def __post_init__(self):
        import math

        if not (isinstance(self.decision_weight, (int, float)) and math.isfinite(self.decision_weight)
                and self.decision_weight > 0):
            raise MirgError(f"--decision-weight must be a positive number, got {self.decision_weight}")
        if not self.decision_prefix.strip():
            raise MirgError("--decision-prefix is empty; give the words that open the decision sentence")
        super().__post_init__()


@dataclass
class GRPOArguments(MirgArguments, GRPOConfig):
    """`mirg grpo`: TRL's GRPOConfig plus :class:`MirgArguments` and the image-aware rewards."""

    rewards: list[str] = field(
        default_factory=lambda: ["format", "image", "object"],
        metadata={"help": "Rewards by name, comma separated: format, image, object."},
    )
    object_reward_mode: str = field(
        default="iou", metadata={"help": "Object reward shape: iou, iou@T (1 if IoU >= T) or piecewise."}
    )
    report_to: None | str | list[str] = field(
        default="tensorboard", metadata={"help": "Where to log: tensorboard (default), none, wandb, ..."}
    )
    vllm_max_images: int | None = field(
        default=None,
        metadata={"help": "With --use-vllm: the most images one prompt may hold, what a vLLM server is started with "
                          "(--limit-mm-per-prompt); the data is checked against it (unset: not checked; TRL's "
                          "colocate mode leaves vLLM at its default of 999)."},
    )

    def __post_init__(self):
        check_at_least(self, 1, ("max_completion_length", "num_iterations", "vllm_max_images",
                                 "vllm_max_model_length"))
        check_at_least(self, 0, ("beta",))
        if not self.temperature > 0:  # also refuses nan: completions are sampled at this temperature
            raise MirgError(f"--temperature must be positive (completions are sampled), got {self.temperature}")
        self.rewards = split_list(self.rewards)
        check_rewards(self.rewards, self.reward_weights, self.object_reward_mode)
        check_generation_batch(self)
        super().__post_init__()


def check_rewards(names: list[str], weights: list[float] | None, object_mode: str) -> None:
    """Reward names known, one weight per reward, a valid object reward mode: else one line."""
    if not names:
        raise MirgError("--rewards is empty; choose from " + ", ".join(REWARD_FACTORIES))
    unknown = [n for n in names if n not in REWARD_FACTORIES]
    if unknown:
        raise MirgError(f"unknown reward(s) {', '.join(unknown)}; available: {', '.join(REWARD_FACTORIES)}")
    if weights is not None and len(weights) != len(names):
        raise MirgError(
            f"--reward-weights has {len(weights)} value(s) but --rewards names {len(names)} ({', '.join(names)})"
        )
    make_object_reward(object_mode)  # raises a one-line MirgError for a bad mode


def world_size() -> int:
    """Processes of this run: ``WORLD_SIZE`` as set by ``accelerate launch``/``torchrun``, else 1."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def check_generation_batch(args: GRPOArguments) -> None:
    """GRPO scores completions in groups of ``num_generations`` per prompt, and TRL builds each generation batch
    from ``per_device_train_batch_size x processes x steps_per_generation`` completions (or
    ``generation_batch_size``): that number must hold whole groups. Checked before TRL does, in mirg's words."""
    group = args.num_generations
    if group is None or group < 2:
        raise MirgError(f"--num-generations must be at least 2 for GRPO, got {group}")
    per_step = args.per_device_train_batch_size * world_size()
    if args.generation_batch_size is not None:
        total, how = args.generation_batch_size, f"generation_batch_size ({args.generation_batch_size})"
    else:
        steps = args.steps_per_generation or args.gradient_accumulation_steps
        total = per_step * steps
        how = (
            f"per_device_train_batch_size ({args.per_device_train_batch_size}) x processes ({world_size()}) x "
            f"{'steps_per_generation' if args.steps_per_generation else 'gradient_accumulation_steps'} ({steps}) "
            f"= {total}"
        )
    if total % group:
        raise MirgError(
            f"batch size is not a multiple of the number of generations: {how} completions per generation batch, "
            f"which is not a multiple of num_generations ({group}); set per_device_train_batch_size to a "
            f"multiple of {group} (or change num_generations)"
        )


# -- parsing: recipe + flags ---------------------------------------------------------------------------


def recipes_root() -> Path | None:
    """The recipes shipped inside the package (``recipes/`` at the top of a source checkout links to them), so an
    installed wheel trains with the same defaults as a checkout."""
    root = Path(__file__).resolve().parents[1] / "recipes"
    return root if root.is_dir() else None


def default_recipe(stage: str) -> Path | None:
    """``recipes/tiny-cpu/<stage>.yaml``, the embedded default used when no ``--config`` is given."""
    root = recipes_root()
    recipe = root / "tiny-cpu" / f"{stage}.yaml" if root else None
    return recipe if recipe is not None and recipe.is_file() else None


class _Parser(TrlParser):
    """TRL's recipe + flags parser whose errors are one-line MirgErrors instead of usage dumps."""

    def error(self, message: str):
        raise MirgError(message)


def _known_options(parser: TrlParser) -> dict[str, argparse.Action]:
    return {opt: action for action in parser._actions for opt in action.option_strings}


def respelled_recipe(path: Path, known: set[str]) -> Path:
    """The recipe to parse: ``path`` itself, or, where it uses a renamed field's old key, a copy with the new key
    (after a notice), so that TRL's parser reads it."""
    import tempfile

    import yaml

    from mirg.options import notice

    recipe = read_recipe(path, known | set(RENAMED_FIELDS))
    old = [key for key in recipe if key in RENAMED_FIELDS]
    if not old:
        return path
    both = [key for key in old if RENAMED_FIELDS[key] in recipe]
    if both:
        new = RENAMED_FIELDS[both[0]]
        raise MirgError(f"recipe {path}: both {both[0]} and {new} are set; keep {new}")
    for key in old:
        notice(f"recipe key {key}", RENAMED_FIELDS[key])
        recipe[RENAMED_FIELDS[key]] = recipe.pop(key)
    copy = Path(tempfile.mkdtemp(prefix="mirg-recipe-")) / path.name
    copy.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return copy


def read_recipe(path: Path, known: set[str]) -> dict:
    """The recipe's mapping; a one-line error for a missing/invalid file or an unknown key."""
    import yaml

    if not path.is_file():
        raise MirgError(f"recipe {path} not found")
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MirgError(f"recipe {path}: not valid YAML ({first_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise MirgError(f"recipe {path}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(recipe, dict):
        raise MirgError(f"recipe {path}: must be a mapping of option: value")
    for key in recipe:
        if key != "env" and key not in known:
            raise MirgError(f"recipe {path}: unknown key {key!r}{_suggest(str(key), known)}")
    return recipe


def _suggest(name: str, known, prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _check_flags(argv: list[str], options: dict[str, argparse.Action]) -> None:
    for token in argv:
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            if flag not in options:
                names = {opt[2:] for opt in options if opt.startswith("--")}
                raise MirgError(f"unknown option {flag}{_suggest(flag[2:], names, '--')}")


def _split_list_flags(argv: list[str], options: dict[str, argparse.Action]) -> list[str]:
    """``--rewards a,b`` and ``--reward-weights 1,1`` -> space separated values, as argparse wants lists."""
    out, list_valued = [], False
    for token in argv:
        if token.startswith("-") and not _is_number(token):
            flag, _, value = token.partition("=")
            action = options.get(flag)
            list_valued = action is not None and action.nargs in ("+", "*")
            out.extend([flag, *split_list(value)] if list_valued and value else [token])
        elif list_valued and "," in token:
            out.extend(split_list(token))
        else:
            out.append(token)
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _pop_config(argv: list[str]) -> tuple[list[str], str | None]:
    argv = list(argv)
    for i, token in enumerate(argv):
        if token.startswith("--config="):
            return argv[:i] + argv[i + 1:], token.split("=", 1)[1]
        if token == "--config":
            if i + 1 >= len(argv):
                raise MirgError("--config needs a recipe file")
            return argv[:i] + argv[i + 2:], argv[i + 1]
    return argv, None


#: mirg's short names for TRL fields: the spelling every mirg command uses for the same idea.
SHORT_NAMES = {"--out": "--output_dir"}
#: Fields renamed since the last release: their old spelling works, with a notice, for one more.
RENAMED_FIELDS = {"model_dtype": "dtype"}


def respell(argv: list[str]) -> list[str]:
    """``argv`` with mirg's short names (``--out``) for TRL's fields and renamed fields' old spellings (with a
    notice) replaced by the field names the parser knows.

    >>> respell(["--out", "runs/a", "--max-steps", "5"])
    ['--output_dir', 'runs/a', '--max-steps', '5']
    """
    from mirg.options import notice

    out = []
    for token in argv:
        flag, sep, value = token.partition("=")
        if flag in SHORT_NAMES:
            token = SHORT_NAMES[flag] + sep + value
        elif flag.startswith("--") and flag[2:].replace("-", "_") in RENAMED_FIELDS:
            new = RENAMED_FIELDS[flag[2:].replace("-", "_")]
            notice(flag, "--" + new.replace("_", "-"))
            token = f"--{new}{sep}{value}"
        out.append(token)
    return out


def parse_arguments(cls, argv: list[str], stage: str):
    """``cls`` (SFTArguments/GRPOArguments) from a recipe (``--config``, default tiny-cpu) and flags."""
    parser = _Parser(cls, prog=f"mirg {stage}", description=STAGE_HELP[stage])
    options = _known_options(parser)
    rest, config = _pop_config(argv)
    if "--help-all" in rest:
        parser.parse_args(["--help"])  # every field, TRL's included; exits 0
    if "-h" in rest or "--help" in rest:
        print_short_help(parser, cls, stage)
        raise SystemExit(0)
    rest = respell(rest)
    _check_flags(rest, options)
    recipe_path = Path(config) if config else default_recipe(stage)
    args = _split_list_flags(rest, options)
    recipe = None if recipe_path is None else respelled_recipe(recipe_path, {a.dest for a in parser._actions})
    if recipe is not None:
        args = ["--config", str(recipe), *args]
    try:
        (parsed,) = parser.parse_args_and_config(args)
    except MirgError:
        raise
    except (ValueError, TypeError) as exc:
        raise MirgError(first_line(exc)) from None
    finally:
        if recipe is not None and recipe != recipe_path:  # the respelled copy
            shutil.rmtree(recipe.parent, ignore_errors=True)
    return parsed


#: The TRL options people set first, shown by ``--help`` after mirg's own (``--help-all`` lists every one).
COMMON_TRL_OPTIONS = {
    "sft": ("output_dir", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
            "num_train_epochs", "max_steps", "max_length", "lr_scheduler_type", "warmup_steps", "bf16",
            "activation_checkpointing", "logging_steps", "save_steps", "seed", "report_to"),
    "grpo": ("output_dir", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
             "max_steps", "num_generations", "beta", "max_completion_length", "temperature", "num_iterations",
             "use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "vllm_max_model_length", "bf16",
             "activation_checkpointing", "logging_steps", "save_steps", "seed", "report_to"),
}


def mirg_fields(cls) -> list[str]:
    """The fields mirg adds to TRL's config, in the order they are declared."""
    import dataclasses

    trl_config = SFTConfig if issubclass(cls, SFTConfig) else GRPOConfig
    theirs = {f.name for f in dataclasses.fields(trl_config)}
    return [f.name for f in dataclasses.fields(cls) if f.name not in theirs]


def print_short_help(parser: TrlParser, cls, stage: str) -> None:
    """mirg's own options, then the TRL options people set first, each in its kebab-case spelling; every TRL option
    (either spelling works) behind ``--help-all``."""
    actions = {action.dest: action for action in parser._actions}
    known = set(actions)
    short = argparse.ArgumentParser(
        prog=f"mirg {stage}", add_help=False, description=STAGE_HELP[stage],
        usage=f"mirg {stage} [--config RECIPE.yaml] [--model DIR] [--data DIR] [--out DIR] [OPTION VALUE ...]",
        epilog=f"Every field of TRL's {'SFTConfig' if stage == 'sft' else 'GRPOConfig'} and transformers' "
        "TrainingArguments is an option too, spelled with dashes or with underscores as in their documentation: "
        f"`mirg {stage} --help-all` lists them all.")
    short.add_argument("--config", metavar="RECIPE", help="YAML recipe: defaults for every option (flags override it)")
    for title, names in (("mirg's options", mirg_fields(cls)), ("most used TRL options", COMMON_TRL_OPTIONS[stage])):
        group = short.add_argument_group(title)
        for name in names:
            action = actions.get(name)
            if action is None:
                continue
            flag = "--out" if name == "output_dir" else "--" + name.replace("_", "-")
            text = kebab_mentions(first_sentence(action.help or ""), known)
            switch = isinstance(action.default, bool) or action.const is True
            if switch:
                text += " (a switch: --x or --x true/false; default: " + ("on)" if action.default else "off)")
                text = text.replace("--x", flag)
            elif action.default not in (None, argparse.SUPPRESS, ""):
                text += f" (default: {action.default})"
            value = {} if switch else {"metavar": {int: "N", float: "X"}.get(action.type, name.split("_")[-1].upper())}
            group.add_argument(flag, help=text.replace("%", "%%"), **({"action": "store_true"} if switch else value))
    short.print_help()


def kebab_mentions(text: str, names: set[str]) -> str:
    """``text`` with every option it names in TRL's spelling (``max_steps``, ```max_steps```, ``--max_steps``) written
    as the flag mirg shows (``--max-steps``).

    >>> kebab_mentions("Overrides `num_train_epochs`; see --output_dir and min_pixels.", {"num_train_epochs",
    ...                "output_dir", "min_pixels"})
    'Overrides --num-train-epochs; see --out and --min-pixels.'
    """
    import re

    def flag(match: re.Match) -> str:
        name = match.group(1)
        if name not in names:
            return match.group(0)
        return "--out" if name == "output_dir" else "--" + name.replace("_", "-")

    return re.sub(r"`?(?:--)?\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b`?", flag, text)


def first_sentence(text: str) -> str:
    """The first sentence of a help text (TRL's run to paragraphs).

    >>> first_sentence("Learning rate. Used by AdamW; see e.g. the docs.")
    'Learning rate.'
    """
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


STAGE_HELP = {
    "sft": "Stage 1: supervised fine-tuning on reasoning trajectories (sft.jsonl), loss on the assistant turn only. "
    "Options come from the recipe (--config; default: the tiny-cpu recipe shipped with mirg); flags override it.",
    "grpo": "Stage 2: GRPO with image-aware rewards on rl.jsonl. Options come from the recipe (--config; default: the "
    "tiny-cpu recipe shipped with mirg); flags override it.",
}
