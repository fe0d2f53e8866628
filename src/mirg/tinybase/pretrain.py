"""`mirg model pretrain-tiny`: the embedded default base — a tiny VLM taught to see and localise.

Real MIRG-RL starts from a pretrained VLM that already perceives and grounds single objects. With no
downloadable weights, the project makes its own small base: a tiny model of the chosen family, trained
with SFT on the synthetic ``perception`` family only (never the ten cross-image families, which are
what MIRG-RL's two stages teach), with a curriculum: one object in one image, then scenes of up to four
objects, then several images (``--max-images``, default three), every stage written in one trajectory detail
(``--detail``: answered at once, a list of every object, or a chain of label lists, the target named and its
image listed with boxes) and given its share of the time (``--shares``). It begins with a dense perception
stage for the vision tower (`mirg model pretrain-vision`: every image token learns to say whether an object
is there, what and where).
Every stage is an ordinary `mirg` command, so the model card can list exactly what was run. The stage
output that localises best on a validation set is the one kept; a rerun of the same command continues
an interrupted run (finished stages are not trained again).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mirg.formats import ORDERS
from mirg.errors import MirgError
from mirg.architectures.tiny import size_preset
from mirg.pipeline import peak_rss_mib, run_mirg


@dataclass(frozen=True)
class Stage:
    """One curriculum stage: which perception data, how it is written, and its share of the time."""

    name: str
    share: float
    min_images: int
    max_images: int
    max_objects: int
    detail: str
    tasks: str = "perception"


#: The dense vision stage (data: one image, up to four objects) and its share of the time.
VISION_STAGE = Stage("vision", 0.15, 1, 1, 4, "none")
#: One object alone first, then scenes of up to four objects, then one to three images (one-image samples
#: among them, so one-image skills stay). Every stage is answered at once: a tiny model learns to localise
#: within minutes when the box follows the image closely, barely at all behind a paragraph of reasoning,
#: and continuing on brief reasoning made it forget what it had learnt (docs/lab-notes/embedded-base.md).
CURRICULUM = (
    Stage("one-object", 0.35, 1, 1, 1, "answer"),
    Stage("scenes", 0.35, 1, 1, 4, "answer"),
    Stage("several-images", 0.15, 1, 3, 4, "answer"),
)


#: The curriculum stages' shares of the time after the vision stage (one object, scenes, several images), as
#: relative weights; and the most images of the several-images stage.
DEFAULT_SHARES = "35,35,15"
DEFAULT_MAX_IMAGES = 3


def parse_shares(text: str) -> tuple[float, float, float]:
    """``"35,35,15"`` -> the three stages' shares of the whole time (they sum to what the vision stage leaves).

    >>> [round(v, 2) for v in parse_shares("1,3,3")]
    [0.12, 0.36, 0.36]
    """
    try:
        weights = tuple(float(v) for v in text.split(","))
    except ValueError:
        weights = ()
    if len(weights) != len(CURRICULUM) or not all(w > 0 for w in weights):
        raise MirgError(f"--shares takes {len(CURRICULUM)} positive numbers separated by commas (one object, scenes, "
                        f"several images), got {text!r}")
    total = sum(weights)
    return tuple(round(w / total * (1 - VISION_STAGE.share), 6) for w in weights)  # type: ignore[return-value]


def curriculum(detail: str = "answer", shares: str = DEFAULT_SHARES,
               max_images: int = DEFAULT_MAX_IMAGES) -> tuple[Stage, ...]:
    """The curriculum with every stage answered in ``detail`` (``answer``, or a list detail such as ``list``,
    ``mark-list`` or ``chain``), the stages' time in the proportions ``shares`` and up to ``max_images`` images in
    the last stage. With a list, the stages after the first mix in the ``listing`` family, whose questions name
    no label.

    >>> [(s.name, s.detail, s.tasks) for s in curriculum("list")]  # doctest: +NORMALIZE_WHITESPACE
    [('one-object', 'list', 'perception'), ('scenes', 'list', 'perception,listing'),
     ('several-images', 'list', 'perception,listing')]
    >>> [(round(s.share, 3), s.max_images) for s in curriculum("chain", "15,35,35", 4)]
    [(0.15, 1), (0.35, 1), (0.35, 4)]
    """
    stages = tuple(replace(stage, share=share) for stage, share in zip(CURRICULUM, parse_shares(shares)))
    stages = stages[:-1] + (replace(stages[-1], max_images=max_images),)
    if detail == "answer":
        return stages
    return tuple(replace(stage, detail=detail, tasks="perception" if stage.max_objects == 1 else "perception,listing")
                 for stage in stages)


@dataclass
class PretrainPlan:
    out: Path
    minutes: float = 60.0
    seed: int = 0
    family: str = "qwen3_vl"
    size: str = "s"
    rope_theta: float | None = None  # None: the size preset's
    lm_layers: int | None = None  # None: the size preset's
    label_tokens: bool = False  # one token per synthetic label from the start (init-tiny --label-tokens)
    label_tokens_last: bool = False  # one token per synthetic label added before the last stage
    vision_minutes: float | None = None  # None: VISION_STAGE's share of ``minutes``
    select: str = "best"  # which stage output becomes the model: see select_stage
    shares: str = DEFAULT_SHARES  # the curriculum stages' relative shares of the time (see curriculum)
    max_images: int = DEFAULT_MAX_IMAGES  # most images in the several-images stage
    cooldown: float = 0.0  # the last stage's learning rate falls linearly to zero over this fraction of it
    order: str = "left-to-right"  # the order of the objects in every list (`mirg data trajectories --order`)
    image_size: int = 112
    learning_rate: float = 1e-3
    batch_size: int = 8
    samples_per_minute: int = 2000  # generated per stage-minute: about one pass
    vision_samples: int = 8000
    eval_samples: int = 200
    validation_samples: int = 100
    stages: tuple[Stage, ...] = CURRICULUM
    extra: list[str] = field(default_factory=list)
    vision_extra: list[str] = field(default_factory=list)

    def work(self, *parts: str) -> Path:
        return self.out / "work" / Path(*parts)


def stage_minutes(plan: PretrainPlan, stage: Stage) -> float:
    """Wall minutes of ``stage``: its share of ``plan.minutes``; where the plan sets the vision stage's
    minutes, that stage gets them and the curriculum stages share the rest in their proportions.

    >>> plan = PretrainPlan(Path("m"), minutes=40, vision_minutes=6)
    >>> [round(stage_minutes(plan, s), 2) for s in (VISION_STAGE, *CURRICULUM)]
    [6, 14.0, 14.0, 6.0]
    """
    if plan.vision_minutes is None:
        return max(0.1, plan.minutes * stage.share)
    if stage.name == VISION_STAGE.name:
        return plan.vision_minutes
    return max(0.1, round((plan.minutes - plan.vision_minutes) * stage.share / (1 - VISION_STAGE.share), 6))


def make_perception_data(plan: PretrainPlan, stage: Stage, index: int, n: int) -> Path:
    """Synthetic perception samples for ``stage`` (its own seed and id prefix); returns the folder."""
    data = plan.work("data", stage.name)
    if not (data / "manifest.jsonl").is_file():
        run_mirg(["data", "synth", "--out", str(data), "--samples", str(n), "--seed", str(plan.seed * 100 + index),
                  "--tasks", stage.tasks, "--min-images", str(stage.min_images), "--max-images",
                  str(stage.max_images), "--max-objects", str(stage.max_objects), "--image-size",
                  str(plan.image_size), "--id-prefix", f"pt{index}", "--overwrite"],
                 plan.work("logs", f"synth_{stage.name}.txt"), quiet=True)
    return data


def make_stage_data(plan: PretrainPlan, stage: Stage, coords: str, index: int) -> Path:
    """Synthetic perception data for ``stage`` and its trajectories (in ``coords``); returns the latter."""
    n = max(200, int(stage_minutes(plan, stage) * plan.samples_per_minute))
    data, traj = make_perception_data(plan, stage, index, n), plan.work("traj", stage.name)
    if not (traj / "sft.jsonl").is_file():
        run_mirg(["data", "trajectories", "--data", str(data), "--out", str(traj), "--detail", stage.detail,
                  "--order", plan.order, "--coords", coords], plan.work("logs", f"traj_{stage.name}.txt"), quiet=True)
    return traj


def train_stage(plan: PretrainPlan, stage: Stage, model: Path, traj: Path, out: Path) -> dict[str, Any]:
    """SFT for the stage's share of the time (the last stage with the plan's cool-down); returns what the card
    reports about it."""
    start = time.monotonic()
    resumed = (out / "trainer_state.json").is_file()
    cooldown = plan.cooldown if stage == plan.stages[-1] else 0.0
    if not resumed:
        run_mirg(["sft", "--model", str(model), "--data", str(traj), "--output-dir", str(out),
                  "--max-minutes", str(stage_minutes(plan, stage)), "--max-steps", "1000000",
                  "--learning-rate", str(plan.learning_rate), "--lr-scheduler-type", "constant_with_warmup",
                  "--warmup-steps", "20", "--per-device-train-batch-size", str(plan.batch_size),
                  "--logging-steps", "10", "--save-strategy", "no", "--report-to", "tensorboard",
                  "--seed", str(plan.seed), "--lr-cooldown", str(cooldown), *plan.extra],
                 plan.work("logs", f"sft_{stage.name}.txt"))
    state = json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))
    losses = [row["loss"] for row in state["log_history"] if "loss" in row]
    runtime = [row["train_runtime"] for row in state["log_history"] if "train_runtime" in row]
    return {"stage": stage.name, **asdict(stage), "minutes": stage_minutes(plan, stage), "steps": state["global_step"],
            "samples": state["global_step"] * plan.batch_size, "final_loss": losses[-1] if losses else None,
            "wall_s": round(runtime[-1] if runtime else time.monotonic() - start, 1), "resumed": resumed,
            "cooldown": cooldown}


def vision_stage(plan: PretrainPlan, init: Path) -> tuple[Path, bool]:
    """The dense perception stage for the vision tower; returns the updated model folder and whether an
    earlier run of the command had already trained it."""
    stage = VISION_STAGE
    minutes = stage_minutes(plan, stage)
    data = make_perception_data(plan, stage, 0, plan.vision_samples)
    out = plan.work("stages", "0_vision")
    resumed = (out / "vision_stage.json").is_file()
    if not resumed:
        run_mirg(["model", "pretrain-vision", "--model", str(init), "--data", str(data), "--out", str(out),
                  "--minutes", str(minutes), "--seed", str(plan.seed), *plan.vision_extra],
                 plan.work("logs", "vision.txt"))
    return out, resumed


def heldout_data(plan: PretrainPlan, name: str, seed: int, n: int, flags: list[str]) -> Path:
    """A held-out synthetic set (its own seed, never trained on); returns its folder."""
    data = plan.work("eval", name, "data")
    if not (data / "manifest.jsonl").is_file():
        run_mirg(["data", "synth", "--out", str(data), "--samples", str(n), "--seed", str(seed), "--image-size",
                  str(plan.image_size), "--id-prefix", name, "--overwrite", *flags],
                 plan.work("logs", f"synth_eval_{name}.txt"), quiet=True)
    return data


ONE_IMAGE = ["--tasks", "perception", "--min-images", "1", "--max-images", "1"]


def select_stage(plan: PretrainPlan, outputs: list[Path]) -> tuple[Path, list[dict[str, Any]]]:
    """The stage output that becomes the model, with every output's acc@0.5 on a validation set of one-image
    perception (not the test set the card reports). ``plan.select``: ``best``, the output with the best of
    those (later stages can trade localising for describing); ``last``, the several-images stage's, the only
    one that has listed several images, which a base for multi-image training needs."""
    data = heldout_data(plan, "validation", 80_000 + plan.seed, plan.validation_samples, ONE_IMAGE)
    scores = []
    for model in outputs:
        run = plan.work("eval", "validation", model.name)
        if not (run / "metrics.json").is_file():
            run_mirg(["eval", "--model", str(model), "--data", str(data), "--out", str(run), "--batch-size", "16"],
                     plan.work("logs", f"eval_validation_{model.name}.txt"), quiet=True)
        overall = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["overall"]
        scores.append({"stage_output": model.name, "validation_acc@0.5": overall["pooled_acc@0.5"]})
    if plan.select == "last":
        return outputs[-1], scores
    best = max(range(len(outputs)), key=lambda i: (scores[i]["validation_acc@0.5"], i))
    return outputs[best], scores


def evaluate_base(plan: PretrainPlan, model: Path) -> dict[str, Any]:
    """acc@0.5 and object listing on held-out one-image perception; the ten families at two images."""
    from mirg.eval.perception import listing_summary
    from mirg.models.registry import adapter_for
    from mirg.eval.predictions import read_predictions_jsonl
    from mirg.schema import read_manifest

    results: dict[str, Any] = {}
    from mirg.data.synth_tasks import DEFAULT_TASKS

    two_image_tasks = ",".join(t for t in DEFAULT_TASKS if t != "object_tracking")  # tracking needs 3+ images
    sets = {"perception_one_image": ONE_IMAGE,
            "ten_families_two_images": ["--tasks", two_image_tasks, "--min-images", "2", "--max-images", "2"]}
    for name, flags in sets.items():
        data, run = plan.work("eval", name, "data"), plan.work("eval", name, "run")
        if not (data / "manifest.jsonl").is_file():
            run_mirg(["data", "synth", "--out", str(data), "--samples", str(plan.eval_samples), "--seed",
                      str(90_000 + plan.seed), "--image-size", str(plan.image_size), "--id-prefix", "heldout",
                      "--overwrite", *flags], plan.work("logs", f"synth_eval_{name}.txt"), quiet=True)
        if (run / "metrics.json").is_file() and json.loads((run / "metrics.json").read_text())["overall"].get(
                "model") != str(model):
            shutil.rmtree(run)  # made for another stage's model
        run_mirg(["eval", "--model", str(model), "--data", str(data), "--out", str(run), "--batch-size", "16"],
                 plan.work("logs", f"eval_{name}.txt"))
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        results[name] = {"overall": metrics["overall"], "tasks": {t: m["acc@0.5"] for t, m in metrics["tasks"].items()}}
        if name.startswith("perception"):
            responses = read_predictions_jsonl(run / "predictions.jsonl")
            space = adapter_for(model).coord_space()
            results[name]["listing"] = listing_summary(read_manifest(data), responses, space)
    return results


#: `mirg model pretrain-tiny`'s options (by argparse name) and their defaults where neither the command line
#: nor ``--like`` sets them.
OPTION_DEFAULTS: dict[str, Any] = {
    "minutes": 60.0, "seed": 0, "family": "qwen3_vl", "size": "s", "rope_theta": None, "lm_layers": None,
    "label_tokens": False, "label_tokens_last": False, "vision_minutes": None, "eval_samples": 200, "freeze_vision": False, "word_targets": False,
    "detail": "answer", "order": "left-to-right",
    "select": "best", "shares": DEFAULT_SHARES, "max_images": DEFAULT_MAX_IMAGES, "cooldown": 0.0,
}


def recorded_options(folder: Path) -> dict[str, Any]:
    """The `pretrain-tiny` options the model in ``folder`` was made with, read from its pretrain_summary.json
    (what ``--like`` starts from).

    >>> from mirg.models.registry import embedded_model_dir
    >>> options = recorded_options(embedded_model_dir())
    >>> options["detail"], options["lm_layers"], options["freeze_vision"], options["word_targets"]
    ('chain', 4, True, True)
    """
    path = Path(folder) / "pretrain_summary.json"
    if not path.is_file():
        raise MirgError(f"{folder} holds no pretrain_summary.json: --like takes a model made by `mirg model pretrain-tiny`")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        plan, last = summary["plan"], summary["stages"][-1]
        options = {"minutes": float(plan["minutes"]), "seed": int(plan["seed"]), "family": str(plan["family"]),
                   "size": str(plan["size"]), "rope_theta": plan.get("rope_theta"), "lm_layers": plan.get("lm_layers"),
                   "label_tokens": bool(plan.get("label_tokens", False)),
                   "label_tokens_last": bool(plan.get("label_tokens_last", False)), "vision_minutes": plan.get("vision_minutes"),
                   "eval_samples": int(plan["eval_samples"]),
                   "freeze_vision": bool({"--freeze_vision", "--freeze-vision"} & set(plan["extra"])),
                   "word_targets": "--word-targets" in plan["vision_extra"], "detail": str(last["detail"]),
                   "order": str(plan.get("order", "left-to-right")),
                   "select": str(plan.get("select", "best")), "shares": str(plan.get("shares", DEFAULT_SHARES)),
                   "max_images": int(plan.get("max_images", DEFAULT_MAX_IMAGES)),
                   "cooldown": float(plan.get("cooldown", 0.0))}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise MirgError(f"{path}: not a pretrain-tiny summary ({type(exc).__name__}: {exc})") from None
    return options


def resolve_options(given: dict[str, Any], like: Path | None = None) -> dict[str, Any]:
    """Every `pretrain-tiny` option: those ``given`` (None where not), else the ``like`` model's, else the
    defaults; checked.

    >>> from mirg.models.registry import embedded_model_dir
    >>> options = resolve_options({"minutes": 90, "lm_layers": None}, embedded_model_dir())
    >>> options["minutes"], options["lm_layers"], options["detail"], options["size"]
    (90, 4, 'chain', 's')
    """
    start = recorded_options(like) if like is not None else OPTION_DEFAULTS
    options = {name: start[name] if given.get(name) is None else given[name] for name in OPTION_DEFAULTS}
    if options["minutes"] <= 0 or options["eval_samples"] < 1:
        raise MirgError(f"--minutes and --eval-samples must be positive, got {options['minutes']} and "
                        f"{options['eval_samples']}")
    parse_shares(options["shares"])
    if options["seed"] < 0:  # the stages' data are drawn from seeds derived from it; synth takes 0 and more
        raise MirgError(f"--seed must be 0 or more, got {options['seed']}")
    size_preset(options["size"], options["rope_theta"], options["lm_layers"])  # refused now, not stages later
    if options["label_tokens"] and options["label_tokens_last"]:
        raise MirgError("--label-tokens (from the start) and --label-tokens-last (before the last stage) exclude "
                        "each other; choose one")
    if options["order"] not in ORDERS:
        raise MirgError(f"unknown --order {options['order']!r}; choose one of {', '.join(ORDERS)}")
    if not 1 <= options["max_images"] <= 6:
        raise MirgError(f"--max-images must be 1..6, got {options['max_images']}")
    if not 0 <= options["cooldown"] < 1:
        raise MirgError(f"--lr-cooldown is a fraction of the last stage from 0 (off) to below 1, got "
                        f"{options['cooldown']}")
    vision = options["vision_minutes"]
    if vision is not None and not 0 < vision < options["minutes"]:
        source = f" (from --like {like})" if given.get("vision_minutes") is None else ""
        raise MirgError(f"--vision-minutes must be above 0 and below --minutes ({options['minutes']}), got "
                        f"{vision}{source}")
    return options


#: Options whose flag is not their name with dashes.
FLAGS = {"cooldown": "--lr-cooldown"}


def explicit_command(out: Path, options: dict[str, Any]) -> str:
    """The `pretrain-tiny` command line that sets every option in ``options`` explicitly (what the card shows,
    so that it rebuilds the model whatever later defaults or ``--like`` models say).

    >>> explicit_command(Path("b"), {**OPTION_DEFAULTS, "lm_layers": 4, "freeze_vision": True})
    'mirg model pretrain-tiny --out b --minutes 60 --seed 0 --family qwen3_vl --size s --lm-layers 4 --eval-samples 200 --freeze-vision --detail answer --order left-to-right --select best --shares 35,35,15 --max-images 3 --lr-cooldown 0'
    """
    import shlex

    parts = ["mirg", "model", "pretrain-tiny", "--out", str(out)]
    for name, value in options.items():
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif value is not None:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def with_label_tokens(plan: PretrainPlan, model: Path) -> Path:
    """``model`` with one token per synthetic label added (:func:`mirg.architectures.tiny.add_label_tokens_to`), saved
    once under the plan's work folder; returns that folder."""
    from mirg.architectures.tiny import add_label_tokens_to

    out = plan.work("stages", f"{model.name}+label-tokens")
    if not (out / "config.json").is_file():
        if out.exists():
            shutil.rmtree(out)  # an interrupted save
        add_label_tokens_to(model, out)
    return out


def cap_image_pixels(plan: PretrainPlan, model: Path) -> None:
    """Cap the model's processor at the pixels of the images it is trained on: every stage saves the processor it
    loaded, so the base it ends as resizes any larger image to what it learnt to see (uncapped, the embedded base
    found 4% of the objects in 224-px images against 98% at its 112 px)."""
    from mirg.models.base import read_pixel_limits, write_max_pixels

    if read_pixel_limits(model) != (None, None):  # Qwen-style processors (the LLaVA one resizes to a fixed square)
        write_max_pixels(model, plan.image_size ** 2)


def run_pretrain(plan: PretrainPlan, command: str) -> dict[str, Any]:
    """Build the tiny model, run the curriculum, evaluate, and leave the final model + card in ``out``."""
    from mirg.folders import check_output_folder
    from mirg.tinybase.card import write_model_card
    from mirg.models.registry import adapter_for

    if plan.out.exists() and (plan.out / "config.json").exists():
        raise MirgError(f"{plan.out} already holds a model; choose a new --out folder")
    check_output_folder(plan.out, "--out", ["work", "pretrain_summary.json"],  # an earlier run resumes in work/
                        "its stages under work/, then the model and a README.md card")
    start = time.monotonic()
    init = plan.work("init")
    if not (init / "config.json").is_file():
        theta = [] if plan.rope_theta is None else ["--rope-theta", str(plan.rope_theta)]
        layers = [] if plan.lm_layers is None else ["--lm-layers", str(plan.lm_layers)]
        labels = ["--label-tokens"] if plan.label_tokens else []
        partial = plan.work("init.partial")  # becomes init once capped: a run killed before resumes from scratch
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(init, ignore_errors=True)
        run_mirg(["model", "init-tiny", "--family", plan.family, "--size", plan.size, "--seed", str(plan.seed),
                  "--out", str(partial), *theta, *layers, *labels], plan.work("logs", "init.txt"), quiet=True)
        cap_image_pixels(plan, partial)
        partial.rename(init)
    coords = adapter_for(init).coords
    model, resumed = vision_stage(plan, init)
    vision = json.loads((model / "vision_stage.json").read_text(encoding="utf-8"))
    stages = [{"stage": "vision (dense head)", **asdict(VISION_STAGE), "minutes": stage_minutes(plan, VISION_STAGE),
               "steps": vision["steps"],
               "samples": vision["images"], "final_loss": round(sum(vision["last_losses"].values()), 4),
               "wall_s": vision["wall_s"], "resumed": resumed, "heldout": vision["heldout"]}]
    outputs = []
    for index, stage in enumerate(plan.stages, start=1):
        traj = make_stage_data(plan, stage, coords, index)
        out = plan.work("stages", f"{index}_{stage.name}")
        if plan.label_tokens_last and stage == plan.stages[-1]:
            model = with_label_tokens(plan, model)
        stages.append(train_stage(plan, stage, model, traj, out))
        model = out
        outputs.append(out)
    train_wall = sum(st["wall_s"] for st in stages)
    model, selection = select_stage(plan, outputs)
    metrics = evaluate_base(plan, model)
    for item in model.iterdir():
        if item.is_file() and item.name != "trainer_state.json" and not item.name.startswith("training_args"):
            shutil.copy2(item, plan.out / item.name)
    summary = {"command": command, "plan": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(plan).items()
                                             if k != "stages"},
               "stages": stages, "selection": selection, "selected": model.name, "metrics": metrics, "train_wall_s": round(train_wall, 1),
               "total_wall_s": round(time.monotonic() - start, 1), "peak_rss_mib": round(peak_rss_mib(), 1)}
    (plan.out / "pretrain_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_model_card(plan.out, summary)
    return summary
