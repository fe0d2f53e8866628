"""The paper's claims at this scale, on the demo's held-out split: what does each part of stage 2 add?

For every seed: the demo's data and stage-1 (SFT) model, then, each for the same extra wall time:
  sft_continued   SFT continued (the control: does GRPO beat more SFT at equal time?)
  sft_grpo        GRPO with the format, image and object rewards (the method)
  no_image        GRPO without the image reward
  no_object       GRPO without the object reward
  grpo_from_base  GRPO from the base, without SFT
and the SFT model itself, and the blind baseline (`mirg data blind`: the answers the questions alone give); all
evaluated on the same test split. Mean and spread over seeds go to
OUT/ablation.json and OUT/ablation.md. The base is `embedded` unless --model names another: a seed's folder
is the demo's (`mirg demo --out OUT/seedS --seed S --model M`), so a demo run with the same plan is reused as it is.

Usage (the measurement in benchmarks/RESULTS.md):
    python benchmarks/ablation.py --out runs/ablation --seeds 0,1,2
    python benchmarks/ablation.py --out runs/ablation --variants sft_continued,sft_grpo   # the control and the method only
    python benchmarks/ablation.py --out runs/ablation_b --model DIR   # a base before it is shipped
    python benchmarks/ablation.py --out runs/ablation_long --sft-minutes 20 --variants sft_continued,sft_grpo   # after a longer stage 1
    python benchmarks/ablation.py --out runs/ablation_data --n-train 24000   # more distinct training samples
    python benchmarks/ablation.py --out runs/ablation_dw --decision-weight 5   # stage 1 weighting the decision sentence
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from mirg.data.trajectories import DETAILS
from mirg.demo import DemoPlan, check_plan, evaluate_blind, grpo_args, make_data, resolve_detail, sft_args
from mirg.errors import MirgError
from mirg.models.registry import adapter_for, resolve_model_path
from mirg.pipeline import run_mirg

METRICS = ("task_mean_acc@0.5", "pooled_acc@0.5", "pooled_mean_iou", "pooled_image_acc")


def variants(plan: DemoPlan, base: str) -> dict[str, tuple[list[str], Path]]:
    sft = plan.path("sft")
    v = {"sft": (sft_args(plan, base, sft, plan.sft_minutes, "none"), sft)}
    v["sft_continued"] = (sft_args(plan, str(sft), plan.path("sft_continued"), plan.grpo_minutes, "none"),
                          plan.path("sft_continued"))
    for name, model, rewards in (("sft_grpo", str(sft), "format,image,object"), ("no_image", str(sft), "format,object"),
                                 ("no_object", str(sft), "format,image"), ("grpo_from_base", base, "format,image,object")):
        v[name] = (grpo_args(plan, model, plan.path(name), rewards, "none"), plan.path(name))
    return v


def run_seed(out: Path, seed: int, detail: str | None = None, only: set[str] | None = None,
             model: str = "embedded", **plan_fields: Any) -> dict[str, dict]:
    """Every variant of one seed; ``plan_fields`` (``sft_minutes``, ``n_train``, ``sft_lr``, ``decision_weight``)
    replace the demo's where not None."""
    plan = DemoPlan(out=out / f"seed{seed}", seed=seed, model=model)
    for name, value in plan_fields.items():
        if value is not None:
            setattr(plan, name, value)
    if detail is not None:
        plan.detail = detail
    base = str(resolve_model_path(plan.model))
    resolve_detail(plan, Path(base))
    plan.out.mkdir(parents=True, exist_ok=True)
    check_plan(plan, Path(base))
    make_data(plan, adapter_for(base).coords)
    blind = evaluate_blind(plan)["overall"]  # the questions alone: what image choice is given away
    results = {"blind": {k: blind[k] for k in METRICS}}
    for name, (args, folder) in variants(plan, base).items():
        if only is not None and name != "sft" and name not in only:
            continue
        if not (folder / "trainer_state.json").is_file():
            run_mirg(args, plan.path("logs", f"{name}.txt"), quiet=True)
        run = plan.path("eval", name)
        if not (run / "metrics.json").is_file():
            run_mirg(["eval", "--model", str(folder), "--data", str(plan.path("data", "test")), "--out", str(run),
                      "--batch-size", str(plan.eval_batch_size)], plan.path("logs", f"eval_{name}.txt"), quiet=True)
        overall = json.loads((run / "metrics.json").read_text())["overall"]
        results[name] = {k: overall[k] for k in METRICS}
        print(json.dumps({"seed": seed, "variant": name, **results[name]}), flush=True)
    return results


def aggregate(per_seed: dict[int, dict[str, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    names = next(iter(per_seed.values())).keys()
    out = {}
    for name in names:
        out[name] = {}
        for metric in METRICS:
            values = [per_seed[s][name][metric] for s in per_seed]
            out[name][metric] = {"mean": statistics.mean(values),
                                 "std": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}
    return out


def markdown(summary: dict[str, dict[str, dict[str, float]]], seeds: list[int]) -> str:
    lines = [f"Seeds {', '.join(map(str, seeds))}; mean ± standard deviation, in %.", "",
             "| variant | " + " | ".join(METRICS) + " |", "|" + "---|" * (len(METRICS) + 1)]
    for name, metrics in summary.items():
        cells = [f"{100 * m['mean']:.1f} ± {100 * m['std']:.1f}" for m in metrics.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--model", default="embedded", help="the base: `embedded` (default) or a model folder")
    parser.add_argument("--detail", choices=DETAILS, help="trajectory detail (default: the demo's choice for the base)")
    parser.add_argument("--variants", help="comma-separated variants to run besides sft (default: all of them)")
    parser.add_argument("--sft-minutes", type=float,
                        help="stage 1's wall time (default: the demo's); longer asks whether GRPO adds more once SFT has levelled off")
    parser.add_argument("--n-train", type=int, help="training samples (default: the demo's)")
    parser.add_argument("--sft-lr", type=float, help="stage 1's learning rate, also when continued (default: the demo's)")
    parser.add_argument("--decision-weight", type=float,
                        help="stage 1's loss weight on the decision sentence, also when continued (default: the demo's)")
    opts = parser.parse_args()
    for flag, value in (("--sft-minutes", opts.sft_minutes), ("--n-train", opts.n_train), ("--sft-lr", opts.sft_lr),
                        ("--decision-weight", opts.decision_weight)):
        if value is not None and not 0 < value < float("inf"):  # nan and inf too
            parser.error(f"{flag} must be positive, got {value}")
    seeds = [int(s) for s in opts.seeds.split(",")]
    only = None
    if opts.variants:
        only = set(opts.variants.split(","))
        known = set(variants(DemoPlan(out=opts.out), "embedded"))
        if only - known:
            parser.error(f"unknown variant(s) {', '.join(sorted(only - known))}; choose from {', '.join(sorted(known))}")
    try:
        per_seed = {seed: run_seed(opts.out, seed, opts.detail, only, opts.model, sft_minutes=opts.sft_minutes,
                                  n_train=opts.n_train, sft_lr=opts.sft_lr, decision_weight=opts.decision_weight)
                    for seed in seeds}
    except MirgError as exc:  # a folder started with another plan, a failed stage: one line, not a traceback
        sys.exit(f"ablation: {exc}")
    summary = aggregate(per_seed)
    (opts.out / "ablation.json").write_text(json.dumps({"per_seed": per_seed, "summary": summary}, indent=2) + "\n")
    (opts.out / "ablation.md").write_text(markdown(summary, seeds))
    print(markdown(summary, seeds))


if __name__ == "__main__":
    main()
