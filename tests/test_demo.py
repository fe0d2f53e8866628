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
    assert summary["plan"]["freeze_vision"] is True
    assert_vision_kept(out / "sft_grpo")
    # A rerun finds every stage complete and only rebuilds the summary.
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "$ mirg sft" not in again.stdout


def assert_vision_kept(model_dir):
    """Both stages left the base's vision tower as it was, and trained the language model."""
    from safetensors.torch import load_file

    from mirg.models.registry import embedded_model_dir

    base = load_file(str(embedded_model_dir() / "model.safetensors"))
    final = load_file(str(model_dir / "model.safetensors"))
    assert set(base) == set(final)
    vision = [k for k in base if ".visual." in f".{k}"]
    assert vision and all((base[k] == final[k]).all() for k in vision)
    assert any((base[k] != final[k]).any() for k in base if k not in vision)


def test_demo_writes_trajectories_in_the_list_format_its_base_was_pretrained_on(tmp_path):
    from mirg.demo import DemoPlan, pretrained_detail, resolve_detail
    from mirg.models.registry import embedded_model_dir

    assert pretrained_detail(embedded_model_dir()) == "list"
    cases = {"box": '{"stages": [{"detail": "none"}, {"detail": "box-list"}]}', "answer": '{"stages": [{"detail": "answer"}]}',
             "broken": '{"stages": [', "empty": '{"stages": []}', "dict": '{"stages": {"a": 1}}', "list": "[1]"}
    for name, text in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "pretrain_summary.json").write_text(text)
    assert pretrained_detail(tmp_path / "box") == "box-list"
    assert [pretrained_detail(tmp_path / n) for n in ("answer", "broken", "empty", "dict", "list")] == [None] * 5
    assert pretrained_detail(tmp_path) is None  # no summary: any other model folder
    plan = DemoPlan(out=tmp_path / "demo")
    resolve_detail(plan, tmp_path / "answer")
    assert plan.detail == "brief"
    plan = DemoPlan(out=tmp_path / "demo", detail="full")
    resolve_detail(plan, tmp_path / "box")
    assert plan.detail == "full"  # an explicit --detail wins


def test_demo_refuses_to_continue_with_trajectories_of_another_detail(tmp_path):
    import pytest

    from mirg.demo import check_trajectory_detail
    from mirg.errors import MirgError

    traj = tmp_path / "trajectories"
    traj.mkdir()
    (traj / "README.md").write_text("# Trajectories\n\n- mode: template\n- detail: brief\n")
    check_trajectory_detail(traj, "list")  # no rl.jsonl yet: nothing to continue
    (traj / "rl.jsonl").write_text("")
    check_trajectory_detail(traj, "brief")
    with pytest.raises(MirgError, match="detail 'brief'.*asks for 'list'"):
        check_trajectory_detail(traj, "list")
