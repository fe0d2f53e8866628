"""`mirg eval`: real generation with a tiny model, killed mid-run and resumed without loss or repeats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirg.eval.generate import completed_ids


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    for args in (["model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--out", str(root / "model")],
                 ["data", "synth", "--out", str(root / "data"), "--samples", "12", "--seed", "5", "--image-size", "112"]):
        subprocess.run([sys.executable, "-m", "mirg", *args], check=True, capture_output=True, env=env)
    return root


def eval_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mirg", "eval", "--model", str(root / "model"), "--data", str(root / "data"),
            "--out", str(out), "--max-new-tokens", "24", *extra]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_eval_killed_and_resumed_loses_and_repeats_nothing(tiny_setup, tmp_path):
    out = tmp_path / "run"
    preds = out / "predictions.jsonl"
    proc = subprocess.Popen(eval_args(tiny_setup, out, "--batch-size", "1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(lines(preds)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = lines(preds)
    assert 3 <= len(before) < 12, "the run should have been killed part-way"
    done = completed_ids(preds)
    kept = lines(preds)
    assert kept == before[: len(kept)] and len(kept) >= len(before) - 1  # at most a torn last line dropped
    result = subprocess.run(eval_args(tiny_setup, out, "--batch-size", "4"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    after = lines(preds)
    ids = [json.loads(line)["id"] for line in after]
    assert len(ids) == len(set(ids)) == 12
    assert after[: len(kept)] == kept  # nothing generated before was generated again
    assert done <= set(ids)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["n"] == 12 and metrics["overall"]["missing_predictions"] == 0
    assert (out / "report.html").is_file() and (out / "per_sample.jsonl").is_file()


def test_resume_drops_a_last_line_cut_inside_a_character(tmp_path):
    preds = tmp_path / "predictions.jsonl"
    whole = json.dumps({"id": "a", "response": "café ✓"}, ensure_ascii=False).encode()
    line = json.dumps({"id": "b", "response": "naïve"}, ensure_ascii=False).encode()
    torn = line[: line.index("ï".encode()) + 1]  # a write cut after the first of the two bytes of "ï"
    preds.write_bytes(whole + b"\n" + torn)
    assert completed_ids(preds) == {"a"}
    assert preds.read_bytes() == whole + b"\n"  # the whole line kept byte for byte, the torn one dropped


def test_eval_limit_and_bad_inputs(tiny_setup, tmp_path):
    result = subprocess.run(eval_args(tiny_setup, tmp_path / "r", "--max-samples", "2", "--batch-size", "2"),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(lines(tmp_path / "r" / "predictions.jsonl")) == 2
    bad = subprocess.run([sys.executable, "-m", "mirg", "eval", "--model", str(tmp_path / "nope"), "--data",
                          str(tiny_setup / "data"), "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "does not exist" in bad.stderr
    missing_image = tmp_path / "data2"
    import shutil

    shutil.copytree(tiny_setup / "data", missing_image)
    next((missing_image / "images").glob("*.png")).unlink()
    bad = subprocess.run(eval_args(tiny_setup, tmp_path / "y")[:6] + ["--data", str(missing_image), "--out",
                         str(tmp_path / "y")], capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    for device, reason in (("tpu", "unknown device 'tpu'"), ("cuda", "no GPU is visible here")):
        if device == "cuda" and torch_sees_a_gpu():
            continue
        bad = subprocess.run(eval_args(tiny_setup, tmp_path / device, "--device", device), capture_output=True,
                             text=True)
        assert bad.returncode == 2 and reason in bad.stderr and "Traceback" not in bad.stderr
        assert "Loading weights" not in bad.stderr and not (tmp_path / device).exists()  # refused before either
    for flag in ("--max-new-tokens", "--batch-size"):
        bad = subprocess.run(eval_args(tiny_setup, tmp_path / "z", flag, "0"), capture_output=True, text=True)
        assert bad.returncode == 2 and f"{flag} must be at least 1" in bad.stderr and "Traceback" not in bad.stderr
        assert not (tmp_path / "z" / "predictions.jsonl").exists()


def test_eval_refuses_a_folder_holding_other_files(tiny_setup, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text('{"mine": 1}')
    bad = subprocess.run(eval_args(tiny_setup, mine, "--max-samples", "1"), capture_output=True, text=True)
    assert bad.returncode == 2 and "holds other files and none a run leaves (run.json, predictions.jsonl)" in bad.stderr
    assert [p.name for p in mine.iterdir()] == ["metrics.json"] and (mine / "metrics.json").read_text() == '{"mine": 1}'


def torch_sees_a_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def test_eval_refuses_to_resume_another_models_predictions(tiny_setup, tmp_path):
    out = tmp_path / "run"
    first = subprocess.run(eval_args(tiny_setup, out, "--max-samples", "2", "--batch-size", "2"), capture_output=True,
                           text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    other = tmp_path / "other-model"
    import shutil

    shutil.copytree(tiny_setup / "model", other)
    args = eval_args(tiny_setup, out, "--max-samples", "4")
    args[args.index("--model") + 1] = str(other)
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 2 and "another model" in again.stderr and "Traceback" not in again.stderr
    assert len(lines(out / "predictions.jsonl")) == 2  # nothing appended to the first run
    longer = subprocess.run(eval_args(tiny_setup, out, "--max-samples", "4", "--max-new-tokens", "30"),
                            capture_output=True, text=True)
    assert longer.returncode == 2 and "max_new_tokens" in longer.stderr
