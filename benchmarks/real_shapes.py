"""One SFT step and one GRPO step at the published widths of Qwen2.5-VL 3B/7B and Qwen3-VL 4B, on a CPU.

Each configuration is built by ``mirg model init`` with its language model cut to 2 (then 3) layers and its vision
tower to 2 blocks, and trained through the real ``mirg sft`` / ``mirg grpo`` commands (subprocesses: the product
path is what is measured) on samples of four real photos enlarged to 640x480 .. 1280x960, at the recipes'
``max_pixels`` 401,408, with the vision tower frozen and activation checkpointing on (both from the recipes):
full training at 3B width, LoRA at 7B width (full AdamW at 7B width does not fit 24 GiB even at 2 layers).

Per configuration and depth it records the image tokens per sample, the step time (``train_runtime`` of the one
step), the peak resident memory of each command (``wait4``'s ``ru_maxrss``: load, step and final save; and sampled
up to the end of the step, the figure the tables use), and from the 2- and 3-layer runs the peak memory per added
language-model layer, extrapolated to the published depth.

    python benchmarks/real_shapes.py --work WORK --configs qwen2.5-vl-3b --layers 2,3
    python benchmarks/real_shapes.py --table     # the results so far, as Markdown tables

Run the heavy configurations one at a time on a shared machine (``--configs``); results are merged into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the photo dataset the fast test of the same path uses

MAX_PIXELS = 401408
GIB = 1024 ** 3
#: name: (family, size, recipe folder, extra training flags, trajectory coordinates, min_pixels)
CONFIGS = {
    "qwen2.5-vl-3b": ("qwen2_5_vl", "3b", "qwen2.5-vl-3b", [], "resized", 3136),
    "qwen2.5-vl-7b-lora": ("qwen2_5_vl", "7b", "qwen2.5-vl-7b", ["--use_lora", "true"], "resized", 3136),
    "qwen3-vl-4b": ("qwen3_vl", "4b", "qwen2.5-vl-3b", [], "norm1000", 65536),
}
#: What a CPU step needs on top of the recipes: fp32 (no bf16 on this CPU), one sample per SFT step, two prompts
#: of two generations with short completions, no vLLM, no save in the middle, prompts never cut.
COMMON = ["--bf16", "false", "--dtype", "float32", "--max_steps", "1", "--gradient_accumulation_steps", "1",
          "--dataloader_num_workers", "0", "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1",
          "--disable_tqdm", "true"]
SFT_FLAGS = ["--per_device_train_batch_size", "1", "--max_length", "8192"]
GRPO_FLAGS = ["--use_vllm", "false", "--num_generations", "2", "--per_device_train_batch_size", "4",
              "--max_completion_length", "32", "--log_completions", "false"]


def _rss_gib(pid: int) -> float:
    """Resident memory of process ``pid`` now (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024 / GIB
    except (OSError, StopIteration):
        return 0.0


def run_measured(command: list[str], log: Path) -> dict:
    """Run ``command`` with its output in ``log``; its wall time, exit status and peak resident memory (GiB):
    over the whole run (``wait4``'s ``ru_maxrss``) and up to the end of training (sampled every 0.2 s until the
    trainer prints its ``train_runtime``; the final save comes after, and with LoRA it merges the adapters)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    start, load = time.monotonic(), os.getloadavg()[0]
    trained = threading.Event()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                   text=True, bufsize=1)

        def copy_output() -> None:
            for line in process.stdout:
                handle.write(line)
                if "'train_runtime'" in line:
                    trained.set()

        reader = threading.Thread(target=copy_output, daemon=True)
        reader.start()
        step_peak = 0.0
        while True:  # wait4, not poll: only wait4 hands back the child's own resource usage
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if not trained.is_set():
                step_peak = max(step_peak, _rss_gib(process.pid))
            time.sleep(0.2)
        process.returncode = os.waitstatus_to_exitcode(status)
        reader.join()
    result = {"wall_s": round(time.monotonic() - start, 1), "rc": process.returncode,
              "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 2), "peak_rss_to_step_end_gib": round(step_peak, 2),
              "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}
    if process.returncode != 0:
        result["error"] = log.read_text()[-2000:]
    return result


def mirg(*args: str) -> list[str]:
    return [sys.executable, "-m", "mirg", *args]


def image_tokens(model: Path, data: Path, min_pixels: int) -> list[int]:
    """Image tokens of each sample at the recipe's pixel limits, counted as `mirg sft --dry-run` counts them."""
    from mirg.models import adapter_for
    from mirg.train.budget import count_tokens

    processor = adapter_for(model).load_processor(model, min_pixels=min_pixels, max_pixels=MAX_PIXELS)
    records = [json.loads(line) for line in (data / "sft.jsonl").read_text().splitlines()]
    return [sample.image for sample in count_tokens(records, processor, data, "sft")]


def step_time(output_dir: Path) -> float | None:
    """``train_runtime`` of the run's one step, from its trainer_state.json."""
    state = output_dir / "trainer_state.json"
    if not state.is_file():
        return None
    history = json.loads(state.read_text())["log_history"]
    return next((h["train_runtime"] for h in history if "train_runtime" in h), None)


def prepare_data(work: Path, coords: str) -> Path:
    from photo_fixtures import LARGE_SIZES, write_photo_dataset

    photos = work / "photos"
    if not (photos / "manifest.jsonl").is_file():
        write_photo_dataset(photos, LARGE_SIZES, samples=2)
    data = work / f"traj-{coords}"
    if not (data / "sft.jsonl").is_file():
        flags = ["--max-pixels", str(MAX_PIXELS)] if coords == "resized" else []
        subprocess.run(mirg("data", "trajectories", "--data", str(photos), "--out", str(data), "--coords", coords,
                            *flags), check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    return data


def measure(name: str, layers: int, work: Path, stages: list[str]) -> dict:
    """Build ``name`` at ``layers`` language-model layers, then one step of each stage; the model is removed after."""
    family, size, recipe, extra, coords, min_pixels = CONFIGS[name]
    data = prepare_data(work, coords)
    model, logs = work / f"{name}-L{layers}", work / "logs"
    logs.mkdir(exist_ok=True)
    shutil.rmtree(model, ignore_errors=True)
    row = {"config": name, "layers": layers, "vision_depth": 2}
    row["init"] = run_measured(mirg("model", "init", "--family", family, "--size", size, "--layers", str(layers),
                                    "--vision-depth", "2", "--out", str(model)), logs / f"{name}-L{layers}-init.log")
    info = json.loads(subprocess.run(mirg("model", "info", str(model)), capture_output=True, text=True, check=True,
                                     cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stdout)
    row["parameters"], row["full_depth"] = info["parameters"], info["full_depth"]
    row["image_tokens_per_sample"] = image_tokens(model, data, min_pixels)
    pixels = ["--min_pixels", str(min_pixels), "--max_pixels", str(MAX_PIXELS)]
    for stage in stages:
        out = work / f"{name}-L{layers}-{stage}"
        shutil.rmtree(out, ignore_errors=True)
        flags = SFT_FLAGS if stage == "sft" else GRPO_FLAGS
        command = mirg(stage, "--config", str(REPO / "recipes" / recipe / f"{stage}.yaml"), "--model", str(model),
                       "--data", str(data), "--output_dir", str(out), *COMMON, *flags, *pixels, *extra)
        row[stage] = run_measured(command, logs / f"{name}-L{layers}-{stage}.log")
        row[stage]["step_s"] = step_time(out)
        row[stage]["command"] = " ".join(["mirg", *command[3:]])
        shutil.rmtree(out, ignore_errors=True)
        print(json.dumps({"config": name, "layers": layers, stage: row[stage]}), flush=True)
    shutil.rmtree(model, ignore_errors=True)
    return row


def _step_peak(run: dict) -> float:
    return run.get("peak_rss_to_step_end_gib") or run["peak_rss_gib"]


def extrapolate(name: str, rows: list[dict]) -> dict:
    """Peak memory of the step (to the end of training, the final save left out) per added language-model layer,
    and at the published depth (fp32): the 2-layer peak, plus the per-layer figure times the layers cut away,
    plus the weights of the vision blocks cut away (frozen: no gradients, no optimizer state, no kept
    activations; 4 bytes per parameter).

    SFT's per-layer figure is measured: the 3-layer peak minus the 2-layer peak (at 2 and 3 layers SFT peaks at the
    optimizer step, when weights, gradients and AdamW states are all held). GRPO's is the larger of its own
    measured difference and SFT's plus what GRPO keeps per layer on top of SFT, the reference model's copy of the
    layer (4 bytes per parameter; none with LoRA, whose reference is the same weights with the adapters off): at
    2 and 3 layers GRPO's first step peaks during its backward pass through the 152k-vocabulary log-probabilities,
    before the optimizer's states exist, so its measured difference misses the states that dominate at full
    depth. bf16 is derived, not measured: half the fp32 figure (weights, gradients, AdamW states in the
    parameters' dtype and activations all halve)."""
    by_layers = {row["layers"]: row for row in rows}
    if not {2, 3} <= set(by_layers):
        return {}
    two, three = by_layers[2], by_layers[3]
    full = two["full_depth"]
    layer_params = three["parameters"]["language_model"] - two["parameters"]["language_model"]
    frozen_vision = (full["parameters"]["vision_tower"] - two["parameters"]["vision_tower"]) * 4 / GIB
    lora = "--use_lora" in CONFIGS[name][3]
    result = {}
    for stage in ("sft", "grpo"):
        if stage not in two:
            continue
        measured = _step_peak(three[stage]) - _step_peak(two[stage]) if stage in three else None
        per_layer, how = measured, "measured (3 - 2 layers)"
        if stage == "grpo" and "sft" in three and "sft" in two:
            reference = 0 if lora else layer_params * 4 / GIB
            derived = _step_peak(three["sft"]) - _step_peak(two["sft"]) + reference
            if measured is None or derived > measured:
                per_layer = derived
                how = ("SFT's measured (LoRA: the reference is the policy without adapters)" if lora
                       else "SFT's measured + the reference model's copy of a layer")
        if per_layer is None:
            continue
        fp32 = _step_peak(two[stage]) + (full["layers"] - 2) * per_layer + frozen_vision
        result[stage] = {"per_layer_gib": round(per_layer, 2), "per_layer_from": how,
                         "measured_per_layer_gib": None if measured is None else round(measured, 2),
                         "layer_parameters": layer_params, "full_depth_fp32_gib": round(fp32, 1),
                         "full_depth_bf16_gib": round(fp32 / 2, 1)}
    return result


def _stage_cell(run: dict | None) -> str:
    if not run:
        return "—"
    if run["rc"] != 0:
        return f"failed (exit {run['rc']})"
    return f"{run['step_s']:.0f} s (load {run['load_before']:.1f}), {_step_peak(run):.2f} GiB"


def markdown(results: dict) -> str:
    """The measured rows and the extrapolation to the published depth, as two Markdown tables."""
    lines = ["| configuration | layers (language, vision) | parameters | image tokens per sample "
             "| SFT step: time, peak memory | GRPO step: time, peak memory |", "|---|---|---|---|---|---|"]
    for name, result in results.items():
        for row in result["rows"]:
            tokens = sorted(set(row["image_tokens_per_sample"]))
            millions = row["parameters"]["total"] / 1e6
            lines.append(f"| {name} | {row['layers']}, {row['vision_depth']} | {millions:,.0f} M "
                         f"| {', '.join(f'{t:,}' for t in tokens)} | {_stage_cell(row.get('sft'))} "
                         f"| {_stage_cell(row.get('grpo'))} |")
    lines += ["", "| configuration | published depth (language, vision), parameters | stage | per added layer "
              "| full depth, fp32 (measured + extrapolated) | full depth, bf16 (derived) |",
              "|---|---|---|---|---|---|"]
    for name, result in results.items():
        full = result["rows"][0]["full_depth"]
        for stage, figure in result.get("extrapolated", {}).items():
            billions = full["parameters"]["total"] / 1e9
            lines.append(f"| {name} | {full['layers']}, {full['vision_depth']}, {billions:.2f} B "
                         f"| {stage.upper()} | {figure['per_layer_gib']:.2f} GiB: {figure['per_layer_from']} "
                         f"| {figure['full_depth_fp32_gib']:.1f} GiB | {figure['full_depth_bf16_gib']:.1f} GiB |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="scratch folder (models of up to ~7 GB each)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "real-shapes.json")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma separated: {', '.join(CONFIGS)}")
    parser.add_argument("--layers", default="2,3", help="language-model depths to measure (default 2,3)")
    parser.add_argument("--stages", default="sft,grpo", help="stages to step at each depth (default sft,grpo)")
    parser.add_argument("--table", action="store_true", help="print --out's results as Markdown tables and stop")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.table:
        for name, result in results.items():
            result["extrapolated"] = extrapolate(name, result["rows"])
        print(markdown(results), end="")
        return 0
    if args.work is None:
        parser.error("--work is required to measure (a scratch folder)")
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.configs.split(","):
        rows = {row["layers"]: row for row in results.get(name, {}).get("rows", [])}
        for layers in (int(n) for n in args.layers.split(",")):
            rows[layers] = {**rows.get(layers, {}), **measure(name, layers, args.work, args.stages.split(","))}
        results[name] = {"rows": [rows[k] for k in sorted(rows)]}
        results[name]["extrapolated"] = extrapolate(name, results[name]["rows"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({name: r["extrapolated"] for name, r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
