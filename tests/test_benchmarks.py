"""The measuring scripts of benchmarks/ still run against today's commands, at toy sizes: a renamed option or a
changed output would otherwise surface only when someone next measures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_compose_speed(tmp_path):
    result = json_lines(bench("compose_speed.py", "--photos", "40", "--samples", "20", "--dir", str(tmp_path)))[-1]
    assert result["exit"] == 0 and result["samples"] == 20 and result["crops"] > 0
    assert sum(1 for _ in (tmp_path / "out" / "manifest.jsonl").open()) == 20


def test_coco_reader_streams_what_json_load_reads(tmp_path):
    lines = json_lines(bench("coco_reader.py", "--images", "300", "--file", str(tmp_path / "instances.json")))
    readers = {line["reader"]: line for line in lines if "reader" in line}
    assert set(readers) == {"mirg streaming", "json.load"}
    assert readers["mirg streaming"]["objects"] == readers["json.load"]["objects"] > 0


def test_convert_speed():
    out = bench("convert_speed.py", "--records", "300", "--images", "5")
    assert "converted 300 MGrounding-630k records" in out and "run 1: wall" in out


def test_served_eval_speed():
    result = json_lines(bench("served_eval_speed.py", "--n", "30", "--concurrency", "4", "--size", "32"))[-1]
    assert result["requests"] == 30 and result["requests_without_all_images"] == 0
    assert result["asking_samples_per_s"] > 0


def test_token_budget():
    result = json_lines(bench("token_budget.py", "--samples", "200", "--pool", "10"))[-1]
    assert result["samples"] == 200 and result["dry_run_s"] > 0 and result["count_s_headers"] > 0


def _row(layers: int, language: int, vision: int, sft: float, grpo: float) -> dict:
    return {"layers": layers, "vision_depth": 2, "image_tokens_per_sample": [1873, 1873],
            "parameters": {"total": language + vision, "language_model": language, "vision_tower": vision},
            "full_depth": {"layers": 36, "vision_depth": 32,
                           "parameters": {"total": 3_754_622_976, "language_model": 0, "vision_tower": vision * 8}},
            "sft": {"rc": 0, "step_s": 50.0, "load_before": 1.0, "peak_rss_gib": sft + 1,
                    "peak_rss_to_step_end_gib": sft},
            "grpo": {"rc": 0, "step_s": 700.0, "load_before": 1.0, "peak_rss_gib": grpo,
                     "peak_rss_to_step_end_gib": grpo}}


def test_real_shapes_extrapolates_the_step_peak_to_the_published_depth(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import real_shapes

    gib = 1024 ** 3
    layer = gib // 8  # parameters of one language-model layer: 0.5 GiB of fp32 weights
    vision = gib // 4
    rows = [_row(2, 2 * layer, vision, sft=8.0, grpo=11.0), _row(3, 3 * layer, vision, sft=10.0, grpo=11.5)]
    full = real_shapes.extrapolate("qwen2.5-vl-3b", rows)
    frozen_vision = 7 * vision * 4 / gib  # the 30 vision blocks cut away, fp32, frozen
    # SFT: the step-end peaks (not the whole-run peaks) differ by 2 GiB per layer; 34 layers more.
    assert full["sft"]["per_layer_gib"] == 2.0
    assert full["sft"]["full_depth_fp32_gib"] == round(8.0 + 34 * 2.0 + frozen_vision, 1)
    assert full["sft"]["full_depth_bf16_gib"] == round((8.0 + 34 * 2.0 + frozen_vision) / 2, 1)
    # GRPO measured only 0.5 per layer (its first step peaks before the optimizer states exist): SFT's figure plus
    # the reference model's copy of a layer (4 bytes per parameter) is taken instead.
    assert full["grpo"]["measured_per_layer_gib"] == 0.5 and full["grpo"]["per_layer_gib"] == 2.5
    # With LoRA the reference is the policy without its adapters: no copy.
    assert real_shapes.extrapolate("qwen2.5-vl-7b-lora", rows)["grpo"]["per_layer_gib"] == 2.0
    table = real_shapes.markdown({"qwen2.5-vl-3b": {"rows": rows, "extrapolated": full}})
    assert "| qwen2.5-vl-3b | 2, 2 | 537 M | 1,873 | 50 s (load 1.0), 8.00 GiB | 700 s (load 1.0), 11.00 GiB |" in table
    assert "| qwen2.5-vl-3b | 36, 32, 3.75 B | SFT | 2.00 GiB: measured (3 - 2 layers) |" in table
