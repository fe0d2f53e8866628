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
    assert result["requests"] == 30 and result["requests_without_all_images"] == 0 and result["asking_samples_per_s"] > 0


def test_token_budget():
    result = json_lines(bench("token_budget.py", "--samples", "200", "--pool", "10"))[-1]
    assert result["samples"] == 200 and result["dry_run_s"] > 0 and result["count_s_headers"] > 0
