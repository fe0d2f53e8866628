"""`mirg demo` end to end at toy size: every stage runs, summary.json and the report are complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_every_stage_and_writes_summary_and_report(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "mirg", "demo", "--out", str(out), "--n-train", "60", "--n-test", "12",
            "--sft-minutes", "0.1", "--grpo-minutes", "0.1"]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"seed", "wall_s", "peak_rss_mib", "final_model", "stages", "tasks"}
    assert set(summary["stages"]) == {"base", "sft", "sft_grpo"}
    assert all(summary["stages"][s]["n"] == 12 for s in summary["stages"])
    assert set(summary["tasks"]) == {"sft", "sft_grpo"}
    assert summary["peak_rss_mib"] > 0 and summary["wall_s"] > 0
    page = (out / "report.html").read_text()
    assert "base" in page and "sft_grpo" in page and "<table" in page
    assert "AVG acc@0.5" in proc.stdout  # the summary table in the terminal
    # A rerun finds every stage complete and only rebuilds the summary.
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "$ mirg sft" not in again.stdout
