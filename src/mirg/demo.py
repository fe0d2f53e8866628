"""`mirg demo`: the whole method on the embedded default, on a CPU, in minutes.

Synthetic train/val/test splits -> template trajectories -> the ``embedded`` base -> stage 1 (SFT) ->
stage 2 (GRPO with the image and object rewards) -> evaluation of base, SFT and SFT+GRPO on the
held-out test split -> a summary table, ``summary.json`` and ``report.html``.

Every stage runs as its own `mirg` process (the same commands a user runs), so each starts clean and
its memory is measured; a stage whose output is already complete is not run again, so an interrupted
demo continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mirg.pipeline import peak_rss_mib, run_mirg

STAGES = ("base", "sft", "sft_grpo")


@dataclass
class DemoPlan:
    """Sizes and budgets of the demo; the defaults fit ~15 minutes on a 2-core CPU."""

    out: Path
    seed: int = 0
    model: str = "embedded"
    image_size: int = 112
    #: Stage 1 passes about 1.1 times over 24,000 samples in its 9 minutes on a 2-core CPU; over 8,000 it passed three
    #: times and learnt the samples (SFT 44.0% against 46.5%, seed 0; synthesis 25 s;
    #: docs/lab-notes/demo.md).
    n_train: int = 24000
    n_val: int = 100
    n_test: int = 200
    #: Each stage trains a fixed number of optimizer steps, so the same seed gives the same models and the same table
    #: on any machine, however busy (across machines only the order of floating-point sums may differ). 1,600 + 240
    #: steps keep `make demo` within 15 minutes on a 2-core CPU (it trained 1,700 + 250 in its 9 + 3 minute budgets).
    sft_steps: int | None = 1600
    grpo_steps: int | None = 240
    #: A wall-clock budget instead of the steps: the stage trains as many steps as fit in that many minutes, so a
    #: faster machine trains more (``summary.json`` records the steps each took and the command that repeats them).
    sft_minutes: float | None = None
    grpo_minutes: float | None = None
    #: With 24,000 samples, three seeds: SFT 46.7% at 2e-3 against 44.8% at 1e-3, SFT+GRPO 46.8% against 44.5%
    #: (docs/lab-notes/stage-2-ablation.md).
    sft_lr: float = 2e-3
    #: Stage 1's learning rate falls linearly to zero over this last fraction of its time (``mirg sft
    #: --lr-cooldown``; 0: constant to the end). At the constant 2e-3 the steps are too large to settle: cooled over
    #: the last 30% the same 9 minutes give 60.9% against 54.2% (three seeds, 2,000 held-out samples each;
    #: docs/lab-notes/demo.md, "Stage 1 cooled down").
    sft_cooldown: float = 0.3
    grpo_lr: float = 5e-5
    #: Stage 1's loss weight on the decision sentence's tokens (``mirg sft --decision-weight``); None:
    #: CHAIN_DECISION_WEIGHT with ``chain`` trajectories, the only detail that writes that sentence, else 1.
    decision_weight: float | None = None
    batch_size: int = 16
    num_generations: int = 4
    max_completion_length: int = 320  # list trajectories of 2-4 images stay under ~290 tokens
    detail: str | None = None  # None: the list format the base was pretrained on (pretrain_summary.json), else brief
    order: str | None = None  # None: the list order the base was pretrained on, else left-to-right
    #: Both stages keep the base's vision tower fixed: what it sees is the base's perception, and training it
    #: through a few answer tokens wears away the colour and shape its features carry
    #: (docs/lab-notes/embedded-base.md).
    freeze_vision: bool = True
    #: Recomputing each layer's activations in the backward pass (TRL's default; off in the tiny-cpu recipe, said here
    #: too so that no recipe decides it) saves memory a tiny model does not need and costs 13-15% of the steps on a
    #: 2-core CPU: 109 SFT steps against 96 in 45 s, 77 GRPO steps against 67 (peak RSS 986 MiB against 896).
    activation_checkpointing: bool = False
    eval_batch_size: int = 16
    extra_sft: list[str] = field(default_factory=list)
    extra_grpo: list[str] = field(default_factory=list)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)


def pretrain_summary(base: Path) -> dict[str, Any]:
    """The ``pretrain_summary.json`` of a ``mirg model pretrain-tiny`` base, or ``{}`` for any other base."""
    path = base / "pretrain_summary.json"
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # not JSON
        return {}
    return summary if isinstance(summary, dict) else {}


def pretrained_detail(base: Path) -> str | None:
    """The list format a ``mirg model pretrain-tiny`` base was trained to write (its last stage's detail),
    or None for any other base. Trajectories in that format carry over what the base already does."""
    from mirg.formats import LIST_DETAILS

    stages = pretrain_summary(base).get("stages")
    last = stages[-1] if isinstance(stages, list) and stages else None
    detail = last.get("detail") if isinstance(last, dict) else None
    return detail if detail in LIST_DETAILS else None


def pretrained_order(base: Path) -> str:
    """The order a ``mirg model pretrain-tiny`` base lists objects in (``left-to-right`` for any other base)."""
    from mirg.formats import ORDERS

    plan = pretrain_summary(base).get("plan")
    order = plan.get("order") if isinstance(plan, dict) else None
    return order if order in ORDERS else "left-to-right"


#: ~6 of a chain's ~150 tokens carry the cross-image decision. Seed 0: SFT 60.0% at 5 against 48.5% at 1 and 57.0% at
#: 10; three seeds 55.0% against 46.7% (docs/lab-notes/demo.md, docs/lab-notes/stage-2-ablation.md).
CHAIN_DECISION_WEIGHT = 5.0


def resolve_detail(plan: DemoPlan, base: Path) -> None:
    """Fill in ``plan.detail``, ``plan.order`` and ``plan.decision_weight`` where they were left open: the base's list
    format, else ``brief``; its list order, else left to right; CHAIN_DECISION_WEIGHT for chains, else 1. A decision
    weight given for trajectories that write no decision sentence is refused (it would weight nothing)."""
    if plan.detail is None:
        plan.detail = pretrained_detail(base) or "brief"
    if plan.order is None:
        plan.order = pretrained_order(base)
    from mirg.errors import MirgError

    if plan.decision_weight is None:
        plan.decision_weight = CHAIN_DECISION_WEIGHT if plan.detail == "chain" else 1.0
    elif plan.decision_weight != 1 and plan.detail != "chain":
        raise MirgError(f"--decision-weight weights the decision sentence of chain trajectories; --detail "
                        f"{plan.detail} writes none (use --detail chain, or leave the weight out)")


#: Plan fields that do not change what the demo trains or measures: a rerun may change them freely.
FREE_FIELDS = ("out", "eval_batch_size")
#: Plan fields added after demos were first recorded, with the value an older plan.json meant by leaving them out.
#: (activation_checkpointing: False, what the tiny-cpu recipe that a checkout's stages read had set.)
ADDED_FIELDS = {"order": "left-to-right", "decision_weight": 1.0, "activation_checkpointing": False,
                "sft_cooldown": 0.0}


def weights_identity(model_dir: Path, hash_limit: int = 100 * 2**20) -> dict[str, Any]:
    """What identifies a base's weights: the SHA-256 of its weight files where they total at most
    ``hash_limit`` bytes (the embedded base: a few MB), else their names and sizes (a 7B model)."""
    import hashlib

    files = sorted(p for p in model_dir.glob("*.safetensors") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    if total > hash_limit:
        return {p.name: p.stat().st_size for p in files}
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.read_bytes())
    return {"sha256": digest.hexdigest(), "bytes": total}


def plan_record(plan: DemoPlan, base: Path) -> dict[str, Any]:
    """The settings that decide what each stage of this demo trains and measures, with the base's weights."""
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(plan).items() if k not in FREE_FIELDS}
    record["base_weights"] = weights_identity(base)
    return record


def read_plan(stored: Path, remedy: str) -> dict[str, Any]:
    """A recorded plan.json, with the value an older plan meant for each field added since (:data:`ADDED_FIELDS`);
    one that is not a JSON object is refused with ``remedy`` said."""
    from mirg.errors import MirgError

    try:
        record = json.loads(stored.read_text(encoding="utf-8"))
    except ValueError:
        raise MirgError(f"{stored} is not JSON: {remedy}") from None
    if not isinstance(record, dict):
        raise MirgError(f"{stored} is not a demo's plan (a JSON object): {remedy}")
    return {**ADDED_FIELDS, **record}


def check_plan(plan: DemoPlan, base: Path) -> None:
    """Continue a demo only with the plan it was started with; record the plan in a new one.

    A stage whose output exists is not run again, so continuing under other settings (another base, other
    budgets, a trajectory detail, the vision tower trained or not) would report stages trained one way
    under a plan that says another. Such a rerun, or a non-empty folder with no recorded plan, is refused."""
    from mirg.errors import MirgError

    record, stored = plan_record(plan, base), plan.path("plan.json")
    if not stored.is_file():
        if any(p.name != "logs" for p in plan.out.iterdir()):
            raise MirgError(f"{plan.out} is not empty and holds no plan.json of a mirg demo (an older demo's folder?): "
                            "choose a new --out, or remove the folder to start again")
        stored.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return
    before = read_plan(stored, "choose a new --out")
    changed = sorted(k for k in set(before) | set(record) if before.get(k) != record.get(k))
    if changed:
        shown = "; ".join(f"{k}: {before.get(k)!r} -> {record.get(k)!r}" for k in changed if k != "base_weights")
        if "base_weights" in changed:
            shown = "; ".join(filter(None, ["the base's weights differ", shown]))
        raise MirgError(f"{plan.out} was started with other settings ({shown}): choose a new --out, rerun "
                        "with the options it was started with, or remove the folder to start again")


def make_data(plan: DemoPlan, coords: str) -> None:
    """The three splits (distinct seeds and id prefixes) and the training trajectories."""
    splits = {"train": (plan.n_train, plan.seed), "val": (plan.n_val, plan.seed + 10_000),
              "test": (plan.n_test, plan.seed + 20_000)}
    for name, (n, seed) in splits.items():
        folder = plan.path("data", name)
        if (folder / "manifest.jsonl").is_file():
            continue
        run_mirg(["data", "synth", "--out", str(folder), "--samples", str(n), "--seed", str(seed), "--id-prefix", name,
                  "--image-size", str(plan.image_size), "--overwrite"], plan.path("logs", f"synth_{name}.txt"))
    traj = plan.path("data", "trajectories")
    if not (traj / "rl.jsonl").is_file():
        run_mirg(["data", "trajectories", "--data", str(plan.path("data", "train")), "--out", str(traj),
                  "--detail", plan.detail, "--order", str(plan.order), "--coords", coords],
                 plan.path("logs", "trajectories.txt"))


def vision_args(plan: DemoPlan) -> list[str]:
    return ["--freeze-vision"] if plan.freeze_vision else []


def memory_args(plan: DemoPlan) -> list[str]:
    """Both stages' activation checkpointing, said explicitly (TRL turns it on by default)."""
    return ["--activation-checkpointing", "true" if plan.activation_checkpointing else "false"]


def budget_args(minutes: float | None, steps: int | None) -> list[str]:
    """A stage's length: as many steps as fit in ``minutes`` where a budget is given, else ``steps`` optimizer
    steps."""
    if minutes is not None:
        return ["--max-minutes", str(minutes), "--max-steps", "1000000"]
    if steps is None:
        raise ValueError("a stage needs a number of steps or of minutes")
    return ["--max-steps", str(steps)]


def sft_args(plan: DemoPlan, model: str, out: Path, minutes: float | None, report: str = "tensorboard",
             steps: int | None = None) -> list[str]:
    """`mirg sft` for ``minutes`` (or ``steps``, by default the plan's stage-1 steps) from ``model`` on the training
    trajectories, in batches of similar length (less padding: 607 steps in 6 minutes against 386 in random batches,
    on a 2-core CPU)."""
    steps = plan.sft_steps if steps is None else steps
    return ["sft", "--model", model, "--data", str(plan.path("data", "trajectories")), "--output-dir", str(out),
            *budget_args(minutes, steps), "--learning-rate", str(plan.sft_lr),
            "--lr-scheduler-type", "constant_with_warmup", "--warmup-steps", "20",
            "--per-device-train-batch-size", str(plan.batch_size), "--save-strategy", "no", "--report-to", report,
            "--seed", str(plan.seed), "--logging-steps", "20", "--train-sampling-strategy", "group_by_length",
            *cooldown_args(plan), *vision_args(plan), *memory_args(plan), *decision_args(plan), *plan.extra_sft]


def cooldown_args(plan: DemoPlan) -> list[str]:
    """Stage 1's learning-rate cooldown where it has one (also when the ablation continues stage 1)."""
    return ["--lr-cooldown", str(plan.sft_cooldown)] if plan.sft_cooldown else []


def decision_args(plan: DemoPlan) -> list[str]:
    """Stage 1's decision weight where it is not 1 (resolved by :func:`resolve_detail`)."""
    if plan.decision_weight is None or plan.decision_weight == 1:
        return []
    return ["--decision-weight", str(plan.decision_weight)]


def grpo_args(plan: DemoPlan, model: str, out: Path, rewards: str = "format,image,object",
              report: str = "tensorboard") -> list[str]:
    """`mirg grpo` for the plan's stage 2 (its minutes or steps) from ``model`` with the named rewards (weights 1)."""
    weights = ",".join("1" for _ in rewards.split(","))
    return ["grpo", "--model", model, "--data", str(plan.path("data", "trajectories")), "--output-dir", str(out),
            *budget_args(plan.grpo_minutes, plan.grpo_steps), "--learning-rate", str(plan.grpo_lr),
            "--num-generations", str(plan.num_generations), "--per-device-train-batch-size",
            str(2 * plan.num_generations), "--rewards", rewards, "--reward-weights", weights,
            "--max-completion-length", str(plan.max_completion_length), "--save-strategy", "no", "--report-to",
            report, "--seed", str(plan.seed), "--logging-steps", "5", *vision_args(plan), *memory_args(plan),
            *plan.extra_grpo]


def train_stages(plan: DemoPlan, base: str) -> dict[str, str]:
    """Stage 1 from the base, stage 2 from stage 1; returns the model folder of every stage."""
    sft_dir, grpo_dir = plan.path("sft"), plan.path("sft_grpo")
    if not (sft_dir / "trainer_state.json").is_file():
        run_mirg(sft_args(plan, base, sft_dir, plan.sft_minutes), plan.path("logs", "sft.txt"))
    if not (grpo_dir / "trainer_state.json").is_file():
        run_mirg(grpo_args(plan, str(sft_dir), grpo_dir), plan.path("logs", "grpo.txt"))
    return {"base": base, "sft": str(sft_dir), "sft_grpo": str(grpo_dir)}


def evaluate_blind(plan: DemoPlan) -> dict[str, Any]:
    """`mirg data blind` on the test split, fitted on the training split: what the questions alone give away."""
    run = plan.path("eval", "blind")
    if not (run / "metrics.json").is_file():
        run_mirg(["data", "blind", "--train", str(plan.path("data", "train")), "--data", str(plan.path("data", "test")),
                  "--out", str(run)], plan.path("logs", "eval_blind.txt"))
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


def evaluate_stages(plan: DemoPlan, models: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The blind baseline, then `mirg eval` of every stage on the held-out test split; returns each one's metrics
    (``blind`` first)."""
    metrics = {"blind": evaluate_blind(plan)}
    for stage in STAGES:
        run = plan.path("eval", stage)
        if not (run / "metrics.json").is_file():
            run_mirg(["eval", "--model", models[stage], "--data", str(plan.path("data", "test")), "--out", str(run),
                      "--batch-size", str(plan.eval_batch_size)], plan.path("logs", f"eval_{stage}.txt"))
        metrics[stage] = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    return metrics


def summary_table(metrics: dict[str, dict[str, Any]]) -> str:
    """Base vs SFT vs SFT+GRPO: task-mean acc@0.5 (MIG-Bench's AVG), pooled, mIoU, image accuracy."""
    from mirg.eval.report import _pct

    rows = [f"{'stage':<10}{'AVG acc@0.5':>13}{'± se':>7}{'pooled':>9}{'mIoU':>8}{'image':>8}{'format':>8}"]
    for stage, m in metrics.items():
        o = m["overall"]
        rows.append(f"{stage:<10}{_pct(o['task_mean_acc@0.5']):>13}{_pct(o.get('task_mean_acc@0.5_se')):>7}"
                    f"{_pct(o['pooled_acc@0.5']):>9}{_pct(o['pooled_mean_iou']):>8}{_pct(o['pooled_image_acc']):>8}"
                    f"{_pct(o['pooled_format_rate']):>8}")
    tasks = sorted({t for m in metrics.values() for t in m["tasks"]})
    rows += ["", f"{'task (acc@0.5)':<18}" + "".join(f"{s:>10}" for s in metrics)]
    for task in tasks:
        cells = (_pct(m["tasks"].get(task, {}).get("acc@0.5")) for m in metrics.values())
        rows.append(f"{task:<18}" + "".join(f"{c:>10}" for c in cells))
    rows += ["", "± se: one standard error of AVG from the test samples drawn; two stages can differ by about "
             "twice it by the draw alone"]
    return "\n".join(rows)


def trained_steps(models: dict[str, str]) -> dict[str, int]:
    """The optimizer steps each trained stage took (its ``trainer_state.json``)."""
    steps = {}
    for stage in ("sft", "sft_grpo"):
        state = json.loads((Path(models[stage]) / "trainer_state.json").read_text(encoding="utf-8"))
        steps[stage] = int(state["global_step"])
    return steps


def repeat_command(plan: DemoPlan, steps: dict[str, int]) -> str:
    """The `mirg demo` that trains these stages again for the same number of steps, on any machine."""
    parts = ["mirg", "demo", "--out", "NEW_FOLDER", "--seed", str(plan.seed)]
    if plan.model != "embedded":
        parts += ["--model", plan.model]
    for flag, value, default in (("--train-samples", plan.n_train, DemoPlan.n_train),
                                 ("--test-samples", plan.n_test, DemoPlan.n_test),
                                 ("--sft-lr", plan.sft_lr, DemoPlan.sft_lr),
                                 ("--sft-lr-cooldown", plan.sft_cooldown, DemoPlan.sft_cooldown),
                                 ("--grpo-lr", plan.grpo_lr, DemoPlan.grpo_lr)):
        if value != default:
            parts += [flag, str(value)]  # str: exact for ints and floats, read back by the CLI as given
    parts += ["--detail", str(plan.detail), "--order", str(plan.order), "--decision-weight", str(plan.decision_weight)]
    parts += [] if plan.freeze_vision else ["--no-freeze-vision"]
    return " ".join(parts + ["--sft-steps", str(steps["sft"]), "--grpo-steps", str(steps["sft_grpo"])])


def read_sessions(plan: DemoPlan) -> dict[str, float]:
    """Wall time and peak memory of the earlier sessions on this folder (``sessions.json``; for a folder from
    before it, a finished demo's ``summary.json``), so that a demo interrupted and continued, or rerun once
    finished, reports the time and memory its stages took, not only those of its last session."""
    for name, sessions in (("sessions.json", None), ("summary.json", 1)):
        try:
            record = json.loads(plan.path(name).read_text(encoding="utf-8"))
            return {"wall_s": float(record["wall_s"]), "peak_rss_mib": float(record["peak_rss_mib"]),
                    "sessions": int(record.get("sessions", sessions))}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {"wall_s": 0.0, "peak_rss_mib": 0.0, "sessions": 0}


def add_session(plan: DemoPlan, before: dict[str, float], wall_s: float) -> dict[str, float]:
    """``before`` with this session added (written to ``sessions.json`` at once: an interrupted session counts)."""
    total = {"wall_s": round(before["wall_s"] + wall_s, 1),
             "peak_rss_mib": round(max(before["peak_rss_mib"], peak_rss_mib()), 1),
             "sessions": int(before["sessions"]) + 1}
    plan.path("sessions.json").write_text(json.dumps(total, indent=2) + "\n", encoding="utf-8")
    return total


def write_summary(plan: DemoPlan, models: dict[str, str], metrics: dict[str, dict[str, Any]],
                  sessions: dict[str, float]) -> dict:
    steps = trained_steps(models)
    summary = {
        "seed": plan.seed,
        "wall_s": sessions["wall_s"],
        "peak_rss_mib": sessions["peak_rss_mib"],
        "sessions": sessions["sessions"],
        "final_model": models["sft_grpo"],
        "steps": steps,
        "repeat": repeat_command(plan, steps),
        "stages": {stage: metrics[stage]["overall"] for stage in STAGES},
        "blind": metrics["blind"]["overall"],
        "tasks": {stage: metrics[stage]["tasks"] for stage in ("sft", "sft_grpo")},
        "plan": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(plan).items()},
    }
    plan.path("summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def run_demo(plan: DemoPlan) -> dict:
    """The whole demo; returns ``summary.json``'s content."""
    from mirg.demo_report import write_demo_report
    from mirg.models.registry import adapter_for, resolve_model_path

    start = time.monotonic()
    base_dir = resolve_model_path(plan.model)
    coords = adapter_for(base_dir).coords
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    resolve_detail(plan, base_dir)
    plan.out.mkdir(parents=True, exist_ok=True)  # only once the plan is whole: a refused one writes nothing
    check_plan(plan, base_dir)
    before = read_sessions(plan)
    try:
        make_data(plan, coords)
        models = train_stages(plan, str(base_dir))
        metrics = evaluate_stages(plan, models)
    finally:  # also when interrupted: the next session adds its time to this one's
        sessions = add_session(plan, before, time.monotonic() - start)
    summary = write_summary(plan, models, metrics, sessions)
    write_demo_report(plan.out, metrics, summary)
    print("\n" + summary_table(metrics))
    spread = f" over {summary['sessions']} sessions" if summary["sessions"] > 1 else ""
    print(f"\nwall {summary['wall_s']:.0f} s{spread}, peak memory {summary['peak_rss_mib']:.0f} MiB; "
          f"report: {plan.path('report.html')}")
    print(f"the same stages again, for the same number of steps on any machine: {summary['repeat']}")
    return summary
