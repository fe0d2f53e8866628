#!/bin/bash
# The full-depth Qwen2.5-VL-3B shape in bf16 on one GPU: `mirg model init` (random weights, published config),
# then SFT steps and GRPO steps through the real `mirg sft` / `mirg grpo` commands with the shipped 3B recipes
# (frozen vision tower, activation checkpointing, max_pixels 401408) on samples of four photos of 640x480 to
# 1280x960. Writes per stage the step time, tokens per second and the peak GPU memory (nvidia-smi's
# memory.used, sampled every 200 ms: what the process held, CUDA context and allocator cache included) to
# OUTDIR/results.json and OUTDIR/results.md, with the device and the package versions. About 5 minutes; every
# step has a time limit, 7.5 minutes in all.
#
# Usage, from the repository root on the GPU machine:
#   bash benchmarks/gpu_real_shapes.sh OUTDIR [WHEELS]
# WHEELS (default .whl) holds wheels of the packages the machine lacks or has in other versions (transformers,
# tokenizers, huggingface_hub and its hf-xet/httpx2/httpcore2, trl, datasets, dill, multiprocess, peft; the versions
# of constraints.txt). They are installed with --no-deps into /tmp/site, put first on PYTHONPATH; wheels of
# torch, triton or nvidia-* are skipped, so the machine's own CUDA build of torch stays. Fetch them beside the
# repository with, for each NAME==VERSION:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl NAME==VERSION
# vLLM is not installed: GRPO generates with transformers (use_vllm false); the recipe's vLLM settings are
# not measured here.
set -u
OUTD=${1:?usage: bash benchmarks/gpu_real_shapes.sh OUTDIR [WHEELS]}; WHEELS=${2:-.whl}
PY=${PY:-python3}; W=${WORK:-/tmp/gpu-real-shapes}; REPO=$(pwd)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
rm -rf "$W"; mkdir -p "$W" "$OUTD"

# 1. Packages: bring what is missing, never another torch.
export PYTHONPATH=$REPO/src
ls "$WHEELS"/*.whl 2>/dev/null | grep -v -E '/(torch|torchvision|torchaudio|triton|nvidia_[a-z0-9_]+)-[0-9]' > "$W/wheels.txt"
if [ -s "$W/wheels.txt" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    $(cat "$W/wheels.txt") > "$W/pip.log" 2>&1 || { tail -20 "$W/pip.log"; exit 1; }
  export PYTHONPATH=/tmp/site:$REPO/src
fi
$PY - > "$OUTD/env.txt" 2>&1 <<'PY'
import torch, transformers, trl, datasets, peft, accelerate
import mirg.train.sft, mirg.train.grpo  # everything the stages import
assert torch.cuda.is_available(), "no GPU visible"
print("device", torch.cuda.get_device_name(0), "torch", torch.__version__, "cuda", torch.version.cuda)
print("transformers", transformers.__version__, "trl", trl.__version__, "datasets", datasets.__version__,
      "peft", peft.__version__, "accelerate", accelerate.__version__)
PY
cat "$OUTD/env.txt"; grep -q "^device" "$OUTD/env.txt" || exit 1

# 2. The published 3B at full depth, bf16 weights; photos and trajectories in its resized-pixel space.
timeout 150 $PY -m mirg model init --family qwen2_5_vl --size 3b --dtype bfloat16 --out "$W/model" \
  > "$W/init.log" 2>&1 || { tail -20 "$W/init.log"; exit 1; }
$PY -m mirg model info "$W/model" > "$OUTD/model_info.json" || exit 1
$PY -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from photo_fixtures import LARGE_SIZES, \
write_photo_dataset; write_photo_dataset(Path('$W/photos'), LARGE_SIZES, samples=16)" || exit 1
$PY -m mirg data trajectories --data "$W/photos" --out "$W/traj" --coords resized --max-pixels 401408 \
  > "$W/traj.log" 2>&1 || { tail -5 "$W/traj.log"; exit 1; }

# 3. One stage at a time, with nvidia-smi sampling the GPU memory beside it.
stage() {  # stage NAME SECONDS mirg-arguments...
  local name=$1 limit=$2; shift 2
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$W/$name.mem" 2>/dev/null &
  local sampler=$!
  local start=$(date +%s)
  timeout "$limit" $PY -m mirg "$@" > "$W/$name.log" 2>&1; echo $? > "$W/$name.rc"
  echo $(( $(date +%s) - start )) > "$W/$name.wall"
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  tr '\r' '\n' < "$W/$name.log" | grep -v -E "it/s\]$|s/it\]$" | tail -40 > "$OUTD/$name.log.txt"
  rm -f "$W/$name"/*.safetensors  # the final save is timed with the stage; the disk is needed for the next
}
COMMON=(--model "$W/model" --data "$W/traj" --max_steps 4 --gradient_accumulation_steps 1 --logging_steps 1
        --save_strategy no --report_to none --dataloader_num_workers 2)
stage sft 120 sft --config recipes/qwen2.5-vl-3b/sft.yaml --output_dir "$W/sft" "${COMMON[@]}" \
  --per_device_train_batch_size 2
stage grpo 150 grpo --config recipes/qwen2.5-vl-3b/grpo.yaml --output_dir "$W/grpo" "${COMMON[@]}" \
  --per_device_train_batch_size 8 --num_generations 4 --max_completion_length 128 --use_vllm false \
  --log_completions false

# 4. Step times, tokens per second and peak memory, from the runs' trainer_state.json and the samples.
$PY - "$W" "$OUTD" <<'PY'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
env = (out / "env.txt").read_text().split("\n")[0]
rows = {}
for name in ("sft", "grpo"):
    row = {"rc": int((work / f"{name}.rc").read_text()), "wall_s": round(float((work / f"{name}.wall").read_text()), 1)}
    memory = [int(v) for v in (work / f"{name}.mem").read_text().split() if v.strip().isdigit()]
    row["peak_gpu_memory_gib"] = round(max(memory) / 1024, 1) if memory else None
    state = work / name / "trainer_state.json"
    if state.is_file():
        history = json.loads(state.read_text())["log_history"]
        steps = [h for h in history if "loss" in h]
        total = next((h for h in history if "train_runtime" in h), {})
        row["steps"] = len(steps)
        row["train_runtime_s"] = total.get("train_runtime")
        if name == "grpo" and steps:  # GRPO logs each step's own time; the first one includes warm-up
            times = [h["step_time"] for h in steps if "step_time" in h]
            row["step_time_s"] = [round(t, 2) for t in times]
            row["tokens_per_s_after_first"] = round((steps[-1]["num_tokens"] - steps[0]["num_tokens"]) / sum(times[1:]), 1) if len(times) > 1 else None
        elif steps:
            row["tokens"] = steps[-1].get("num_tokens")
            row["tokens_per_s"] = round(steps[-1]["num_tokens"] / total["train_runtime"], 1) if total else None
            row["mean_step_s"] = round(total["train_runtime"] / len(steps), 2) if total else None
    rows[name] = row
info = json.loads((out / "model_info.json").read_text())
result = {"device": env, "model_parameters": info["parameters"], "stages": rows}
(out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
depth = info["depth"]
lines = [f"{env}; Qwen2.5-VL-3B shape, {depth['layers']} layers and {depth['vision_depth']} vision blocks, "
         f"{info['parameters']['total']:,} parameters, bf16", "",
         "| stage | rc | steps | time per step (s) | tokens/s | peak GPU memory (GiB) |", "|---|---|---|---|---|---|"]
for name, r in rows.items():
    per_step = r.get("step_time_s") or r.get("mean_step_s")
    tps = r.get("tokens_per_s_after_first") or r.get("tokens_per_s")
    lines.append(f"| {name} | {r['rc']} | {r.get('steps')} | {per_step} | {tps} | {r['peak_gpu_memory_gib']} |")
(out / "results.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
ls -la "$OUTD"
