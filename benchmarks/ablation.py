"""The paper's claims at this scale, on the demo's held-out split: what does each part of stage 2 add?

For every seed: the demo's data and stage-1 (SFT) model, then, each for the same extra wall time:
  sft_continued   SFT continued (the control: does GRPO beat more SFT at equal time?)
  sft_grpo        GRPO with the format, image and object rewards (the method)
  no_image        GRPO without the image reward
  no_object       GRPO without the object reward
  grpo_from_base  GRPO from the base, without SFT
and the SFT model itself, and the blind baseline (`mirg data blind`: the answers the questions alone give); all
evaluated on the demo's test split (200 samples) and on a second held-out split of --heldout samples (2,000 by
default; nothing trains on either). Mean and spread over seeds, and the paired differences the claims are about
(GRPO minus SFT continued, each stage, each reward) with a bootstrap interval over the split's samples, go to
OUT/ablation.json and OUT/ablation.md. On 200 samples a model's task-mean acc@0.5 has a sampling error (one
standard deviation) of about 3.5 points, as large as the effects asked about; on 2,000 about 1. The base is
`embedded` unless --model names another: a seed's folder is the demo's (`mirg demo --out OUT/seedS --seed S
--model M`), so a demo run with the same plan is reused as it is.

Usage (docs/results.md sums up the measurements; every run is in docs/lab-notes/stage-2-ablation.md):
    python benchmarks/ablation.py --out runs/ablation --seeds 0,1,2
    python benchmarks/ablation.py --out runs/ablation --variants sft_continued,sft_grpo   # the control and the method only
    python benchmarks/ablation.py --out runs/ablation_b --model DIR   # a base before it is shipped
    python benchmarks/ablation.py --out runs/ablation_long --sft-minutes 20 --variants sft_continued,sft_grpo   # after a longer stage 1
    python benchmarks/ablation.py --out runs/ablation_s2 --stage2-minutes 9 --variants sft_continued,sft_grpo   # a longer stage 2
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

from mirg.formats import DETAILS
from mirg.demo import DemoPlan, check_plan, evaluate_blind, grpo_args, make_data, resolve_detail, sft_args
from mirg.errors import MirgError
from mirg.models.registry import adapter_for, resolve_model_path
from mirg.pipeline import run_mirg
from mirg.eval.scoring import describe_difference
from paired import parse_seeds

METRICS = ("task_mean_acc@0.5", "pooled_acc@0.5", "pooled_mean_iou", "pooled_image_acc")
#: The differences the paper's claims are about, where both variants ran: the method against the control, what
#: each stage adds, what each reward adds.
PAIRS = (("sft_grpo", "sft_continued"), ("sft_grpo", "sft"), ("sft_continued", "sft"), ("sft_grpo", "no_image"),
         ("sft_grpo", "no_object"))


def variants(plan: DemoPlan, base: str) -> dict[str, tuple[list[str], Path]]:
    sft = plan.path("sft")
    v = {"sft": (sft_args(plan, base, sft, plan.sft_minutes, "none"), sft)}
    v["sft_continued"] = (sft_args(plan, str(sft), plan.path("sft_continued"), plan.grpo_minutes, "none",
                                   steps=plan.grpo_steps),
                          plan.path("sft_continued"))
    for name, model, rewards in (("sft_grpo", str(sft), "format,image,object"), ("no_image", str(sft), "format,object"),
                                 ("no_object", str(sft), "format,image"), ("grpo_from_base", base, "format,image,object")):
        v[name] = (grpo_args(plan, model, plan.path(name), rewards, "none"), plan.path(name))
    return v


def run_seed(out: Path, seed: int, detail: str | None = None, only: set[str] | None = None,
             model: str = "embedded", heldout: int = 0, **plan_fields: Any) -> dict[str, dict[str, dict]]:
    """Every variant of one seed, evaluated on the test split and, where ``heldout`` > 0, on a second held-out
    split of that many samples; returns ``{split: {variant: metrics}}``. ``plan_fields`` (``sft_minutes``,
    ``grpo_minutes``, ``n_train``, ``sft_lr``, ``sft_cooldown``, ``decision_weight``) replace the demo's where not
    None."""
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
    splits = ["test"] + ([make_heldout(plan, heldout)] if heldout else [])
    results: dict[str, dict[str, dict]] = {split: {} for split in splits}
    results["test"]["blind"] = {k: blind[k] for k in METRICS}
    for name, (args, folder) in variants(plan, base).items():
        if only is not None and name != "sft" and name not in only:
            continue
        if not (folder / "trainer_state.json").is_file():
            run_mirg(args, plan.path("logs", f"{name}.txt"), quiet=True)
        for split in splits:
            results[split][name] = evaluate(plan, name, folder, split)
            print(json.dumps({"seed": seed, "split": split, "variant": name, **results[split][name]}), flush=True)
    return results


def make_heldout(plan: DemoPlan, n: int) -> str:
    """A second held-out split of ``n`` samples for this seed (seed + 30,000, its own ids): the demo's 200 test
    samples give each model's task-mean acc@0.5 a sampling error of about ±3.5 points, as large as the effects
    asked about; ``n`` = 2,000 brings it near ±1. Nothing trains on it. Returns the split's folder name."""
    name = f"heldout{n}"
    folder = plan.path("data", name)
    if not (folder / "manifest.jsonl").is_file():
        run_mirg(["data", "synth", "--out", str(folder), "--samples", str(n), "--seed", str(plan.seed + 30_000),
                  "--id-prefix", name, "--image-size", str(plan.image_size), "--overwrite"],
                 plan.path("logs", f"synth_{name}.txt"), quiet=True)
    return name


def eval_dir(plan: DemoPlan, name: str, split: str) -> Path:
    """Where one variant's evaluation on one split lives (the test split's where the demo puts it)."""
    return plan.path("eval", name) if split == "test" else plan.path(f"eval_{split}", name)


def evaluate(plan: DemoPlan, name: str, folder: Path, split: str) -> dict[str, float]:
    """`mirg eval` of one variant on one split of the seed's data (kept if already there); its overall metrics."""
    run = eval_dir(plan, name, split)
    if not (run / "metrics.json").is_file():
        log = f"eval_{name}.txt" if split == "test" else f"eval_{split}_{name}.txt"
        run_mirg(["eval", "--model", str(folder), "--data", str(plan.path("data", split)), "--out", str(run),
                  "--batch-size", str(plan.eval_batch_size)], plan.path("logs", log), quiet=True)
    overall = json.loads((run / "metrics.json").read_text())["overall"]
    return {k: overall[k] for k in METRICS}


def aggregate(per_seed: dict[int, dict[str, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation over seeds of every variant's metrics on one split."""
    names = next(iter(per_seed.values())).keys()
    out = {}
    for name in names:
        out[name] = {}
        for metric in METRICS:
            values = [per_seed[s][name][metric] for s in per_seed]
            out[name][metric] = {"mean": statistics.mean(values),
                                 "std": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}
    return out


def paired(out: Path, seeds: list[int], split: str, names: set[str]) -> dict[str, dict]:
    """Each of :data:`PAIRS` whose variants ran: the difference in task-mean acc@0.5 per seed, with a paired
    bootstrap over the split's samples, and its mean over seeds (:func:`mirg.eval.scoring.paired_difference_over_seeds`)."""
    from mirg.eval.scoring import paired_difference_over_seeds, read_sample_scores

    def scores(seed: int, name: str) -> list:
        plan = DemoPlan(out=out / f"seed{seed}", seed=seed)
        return read_sample_scores(eval_dir(plan, name, split) / "per_sample.jsonl")

    return {f"{a} - {b}": paired_difference_over_seeds({seed: (scores(seed, a), scores(seed, b)) for seed in seeds})
            for a, b in PAIRS if {a, b} <= names}


def markdown(summary: dict[str, dict[str, dict[str, float]]], seeds: list[int], split: str, n: int,
             pairs: dict[str, dict]) -> str:
    """One split's table (mean ± sd over seeds) and its paired differences, in %."""
    lines = [f"Split `{split}` ({n} samples a seed). Seeds {', '.join(map(str, seeds))}; mean ± standard "
             "deviation, in %.", "", "| variant | " + " | ".join(METRICS) + " |", "|" + "---|" * (len(METRICS) + 1)]
    for name, metrics in summary.items():
        cells = [f"{100 * m['mean']:.1f} ± {100 * m['std']:.1f}" for m in metrics.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if pairs:
        lines += ["", "Paired differences in task-mean acc@0.5 (percentage points; 95% bootstrap interval over the "
                  "split's samples):", "", "| difference | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
                  "|" + "---|" * (len(seeds) + 2)]
        for label, d in pairs.items():
            cells = [describe_difference(d["per_seed"][s]) for s in seeds] + [describe_difference(d["mean"])]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--model", default="embedded", help="the base: `embedded` (default) or a model folder")
    parser.add_argument("--detail", choices=DETAILS, help="trajectory detail (default: the demo's choice for the base)")
    parser.add_argument("--variants", help="comma-separated variants to run besides sft (default: all of them)")
    parser.add_argument("--sft-minutes", type=float, default=9.0,
                        help="stage 1's wall time (default 9); longer asks whether GRPO adds more once SFT has levelled off")
    parser.add_argument("--stage2-minutes", type=float, default=3.0,
                        help="the extra wall time every stage-2 variant gets, SFT continued included (default 3): the "
                        "variants are compared at equal wall time")
    parser.add_argument("--n-train", type=int, help="training samples (default: the demo's)")
    parser.add_argument("--sft-lr", type=float, help="stage 1's learning rate, also when continued (default: the demo's)")
    parser.add_argument("--sft-cooldown", type=float, metavar="F",
                        help="the last fraction of stage 1 over which its learning rate falls to zero, also when "
                        "continued (default: the demo's; 0: constant)")
    parser.add_argument("--decision-weight", type=float,
                        help="stage 1's loss weight on the decision sentence, also when continued (default: the demo's)")
    parser.add_argument("--heldout", type=int, default=2000, metavar="N",
                        help="also evaluate every variant on a second held-out split of N samples per seed, where "
                        "a difference of 3 points is above the sampling error (default 2000; 0: the test split only)")
    opts = parser.parse_args()
    if opts.heldout < 0:
        parser.error(f"--heldout must be 0 or more, got {opts.heldout}")
    for flag, value in (("--sft-minutes", opts.sft_minutes), ("--stage2-minutes", opts.stage2_minutes),
                        ("--n-train", opts.n_train), ("--sft-lr", opts.sft_lr),
                        ("--decision-weight", opts.decision_weight)):
        if value is not None and not 0 < value < float("inf"):  # nan and inf too
            parser.error(f"{flag} must be positive, got {value}")
    if opts.sft_cooldown is not None and not 0 <= opts.sft_cooldown < 1:
        parser.error(f"--sft-cooldown is a fraction from 0 (off) to below 1, got {opts.sft_cooldown}")
    try:
        seeds = parse_seeds(opts.seeds)
    except MirgError as exc:
        parser.error(str(exc))
    only = None
    if opts.variants:
        only = set(opts.variants.split(","))
        known = set(variants(DemoPlan(out=opts.out), "embedded"))
        if only - known:
            parser.error(f"unknown variant(s) {', '.join(sorted(only - known))}; choose from {', '.join(sorted(known))}")
    try:
        per_seed = {seed: run_seed(opts.out, seed, opts.detail, only, opts.model, opts.heldout,
                                   sft_minutes=opts.sft_minutes, grpo_minutes=opts.stage2_minutes,
                                   n_train=opts.n_train, sft_lr=opts.sft_lr, sft_cooldown=opts.sft_cooldown,
                                   decision_weight=opts.decision_weight)
                    for seed in seeds}
        report: dict[str, Any] = {"per_seed": per_seed, "summary": {}, "paired": {}}
        texts = []
        for split in per_seed[seeds[0]]:
            by_seed = {seed: per_seed[seed][split] for seed in seeds}
            report["summary"][split] = aggregate(by_seed)
            report["paired"][split] = paired(opts.out, seeds, split, set(by_seed[seeds[0]]))
            n = DemoPlan.n_test if split == "test" else opts.heldout
            texts.append(markdown(report["summary"][split], seeds, split, n, report["paired"][split]))
    except MirgError as exc:  # a folder started with another plan, a failed stage: one line, not a traceback
        sys.exit(f"ablation: {exc}")
    (opts.out / "ablation.json").write_text(json.dumps(report, indent=2) + "\n")
    (opts.out / "ablation.md").write_text("\n".join(texts))
    print("\n".join(texts))


if __name__ == "__main__":
    main()
