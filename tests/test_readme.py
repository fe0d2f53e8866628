"""The README's "your data on GPUs" block runs as written: every command, on small stand-ins for its files.

Data commands run as they are, on fixture files named like the public ones; the dry run runs as it is; the two
training stages run for one step each, on a CPU (GPU-only settings of the recipe turned off, the rest the
recipe's); the evaluation runs on the converted MIG-Bench sample. A command the README names that does not exist,
a flag it misspells or a path the commands do not pass between each other fails here.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from coco_fixtures import write_coco_set
from conftest import FIXTURES, REPO
from test_convert_sources import lay_out

pytestmark = pytest.mark.slow

#: What the CPU changes in a GPU recipe's training run: precision, vLLM, sizes; one step; no logs or checkpoints.
CPU_STAGE = ["--bf16", "false", "--dtype", "float32", "--max-steps", "1", "--gradient-accumulation-steps", "1",
             "--dataloader-num-workers", "0", "--report-to", "none", "--save-strategy", "no"]
CPU_GRPO = ["--use-vllm", "false", "--num-generations", "2", "--per-device-train-batch-size", "2",
            "--max-completion-length", "16", "--log-completions", "false"]


def gpu_block() -> list[list[str]]:
    """The commands of the README's block under "## Your data on GPUs", continuation lines joined."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Your data on GPUs", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands, current = [], ""
    for line in block.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            commands.append(shlex.split(current))
            current = ""
    return commands


def stand_ins(root: Path) -> dict[str, str]:
    """The README's file names, mapped to small files of the same kinds."""
    mg = lay_out(FIXTURES / "mgrounding" / "layout.json", root / "mg")
    write_coco_set(root / "coco", n_photos=12)
    model = root / "model"
    init = subprocess.run([sys.executable, "-m", "mirg", "model", "init-tiny", "--family", "qwen2_5_vl", "--size",
                           "xs", "--out", str(model)], capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    return {"MGrounding-630k.json": str(FIXTURES / "mgrounding" / "MGrounding-sample.json"),
            "MGrounding/": f"{mg}/", "instances_train2017.json": str(root / "coco" / "instances.json"),
            "captions_train2017.json": str(root / "coco" / "captions.json"), "train2017/": f"{root / 'coco' / 'photos'}/",
            "models/Qwen2.5-VL-7B-Instruct": str(model), "revised_MIG_bench.json":
            str(FIXTURES / "mig-bench" / "revised_MIG_bench.json"), "MIG-Bench/": str(FIXTURES / "mig-bench" / "images")}


def on_this_machine(argv: list[str], names: dict[str, str]) -> list[str]:
    """``argv`` with the stand-ins, the repository's recipes, small sizes, and a training stage made a CPU step."""
    if argv[:2] == ["accelerate", "launch"]:  # one process here: the mirg command accelerate would start
        argv = argv[argv.index("-m") + 1:]
    assert argv[0] == "mirg", argv
    argv = [names.get(a, str(REPO / a) if a.startswith("recipes/") else a) for a in argv[1:]]
    if argv[:2] == ["data", "compose"]:
        argv[argv.index("--samples") + 1] = "12"
    if argv[0] in ("sft", "grpo") and "--dry-run" not in argv:
        argv += CPU_STAGE + (CPU_GRPO if argv[0] == "grpo" else [])
    if argv[0] == "eval":
        argv += ["--max-new-tokens", "8"]
    return argv


def test_the_readme_gpu_block_runs_as_written(tmp_path):
    commands = gpu_block()
    assert [c[0] if c[0] == "mirg" else c[:2] for c in commands].count("mirg") >= 5
    names = stand_ins(tmp_path / "in")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    for argv in commands:
        local = on_this_machine(argv, names)
        proc = subprocess.run([sys.executable, "-m", "mirg", *local], cwd=tmp_path, capture_output=True, text=True,
                              env=env, timeout=900)
        assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    # what each step hands the next: trajectories in the recipe's space, both stages' models, the evaluation
    assert '"max_pixels": 401408' in (tmp_path / "traj" / "trajectories.json").read_text()
    for folder in ("runs/sft", "runs/grpo"):
        assert (tmp_path / folder / "model.safetensors").is_file(), folder
    assert (tmp_path / "runs" / "eval" / "metrics.json").is_file() and (tmp_path / "runs" / "eval" / "report.html").is_file()
