"""`mirg demo` end to end at toy size: every stage runs, summary.json and the report are complete."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def test_demo_runs_every_stage_and_writes_summary_and_report(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "mirg", "demo", "--out", str(out), "--train-samples", "60", "--test-samples", "12",
            "--sft-minutes", "0.1", "--grpo-minutes", "0.1"]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"seed", "wall_s", "peak_rss_mib", "final_model", "stages", "tasks"}
    assert set(summary["stages"]) == {"base", "sft", "sft_grpo"}
    assert all(summary["stages"][s]["n"] == 12 for s in summary["stages"])
    assert summary["blind"]["n"] == 12 and summary["blind"]["model"] == "blind"  # the questions alone, scored
    assert set(summary["tasks"]) == {"sft", "sft_grpo"}
    assert summary["peak_rss_mib"] > 0 and summary["wall_s"] > 0
    page = (out / "report.html").read_text()
    assert "base" in page and "sft_grpo" in page and "<table" in page and "mirg data blind" in page
    assert "± se (the samples drawn)" in page
    assert "AVG acc@0.5" in proc.stdout  # the summary table in the terminal
    se = summary["stages"]["sft"]["task_mean_acc@0.5_se"]  # shown beside it: what the 12 samples drawn allow
    sft_row = next(line for line in proc.stdout.splitlines() if re.match(r"sft +[0-9.]+ ", line))
    assert sft_row.split()[2] == f"{100 * se:.1f}" and "± se: one standard error" in proc.stdout
    assert summary["plan"]["freeze_vision"] is True
    sft_command = proc.stdout.split("$ mirg sft ", 1)[1].splitlines()[0]
    assert "--decision-weight 5.0" in sft_command  # chain: weighted
    assert "--lr-cooldown 0.3" in sft_command and summary["plan"]["sft_cooldown"] == 0.3
    for stage in ("sft", "grpo"):  # no activations recomputed: a tiny model has the memory, the CPU not the time
        assert "--activation-checkpointing false" in proc.stdout.split(f"$ mirg {stage} ", 1)[1].splitlines()[0]
    assert "{'loss'" not in proc.stdout and "'rewards/" not in proc.stdout  # a progress line, not TRL's dictionaries
    assert_vision_kept(out / "sft_grpo")
    # A rerun finds every stage complete and only rebuilds the summary.
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "$ mirg sft" not in again.stdout
    rerun = json.loads((out / "summary.json").read_text())  # what the stages took, not what the rerun took
    assert summary["sessions"] == 1 and rerun["sessions"] == 2 and "over 2 sessions" in again.stdout
    assert summary["wall_s"] <= rerun["wall_s"] < summary["wall_s"] + 60
    assert rerun["peak_rss_mib"] == summary["peak_rss_mib"]


def test_demo_by_steps_repeats_its_models_exactly_beside_a_busy_process(tmp_path):
    """A demo trains a fixed number of steps by default, so its stages give the same weights and the same metrics
    however fast the machine runs: here the second run shares the CPU with a process that keeps every core busy.
    summary.json holds the command that repeats them."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    summaries = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = [sys.executable, "-m", "mirg", "demo", "--out", str(out), "--train-samples", "40", "--test-samples",
                "8", "--sft-steps", "3", "--grpo-steps", "2", "--grpo-lr", "0.0001"]
        hogs = [] if name == "a" else [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                                       for _ in range(os.cpu_count() or 2)]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
        finally:
            for hog in hogs:
                hog.kill()
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        summaries.append(json.loads((out / "summary.json").read_text()))
        assert "--sft-steps 3 --grpo-steps 2" in proc.stdout
        assert "--learning-rate 0.0001 " in proc.stdout.split("$ mirg grpo ", 1)[1]  # stage 2 at the rate asked
    a, b = summaries
    assert a["steps"] == b["steps"] == {"sft": 3, "sft_grpo": 2}
    assert a["repeat"].startswith("mirg demo --out NEW_FOLDER --seed 0 --train-samples 40 --test-samples 8 "
                                  "--grpo-lr 0.0001 --detail ")
    assert a["plan"]["grpo_lr"] == 1e-4
    assert a["repeat"].endswith("--sft-steps 3 --grpo-steps 2")

    def measured(stages):  # every metric, without the folders each run names
        return {stage: {k: v for k, v in m.items() if k not in ("model", "data")} for stage, m in stages.items()}

    assert measured(a["stages"]) == measured(b["stages"]) and a["tasks"] == b["tasks"]
    for stage in ("sft", "sft_grpo"):
        assert (tmp_path / "a" / stage / "model.safetensors").read_bytes() == \
            (tmp_path / "b" / stage / "model.safetensors").read_bytes()


@pytest.mark.parametrize("flag, value", [("--sft-lr-cooldown", "1"), ("--sft-lr-cooldown", "-0.1"),
                                         ("--sft-lr-cooldown", "nan")])
def test_demo_refuses_a_cooldown_that_is_not_a_fraction_below_one(tmp_path, flag, value):
    assert f"--sft-lr-cooldown is a fraction of stage 1 from 0 (off) to below 1, got {value}" in \
        refused_before_writing(tmp_path, flag, value)


@pytest.mark.parametrize("flag, value", [("--sft-lr", "0"), ("--grpo-lr", "-0.5"), ("--sft-lr", "nan"),
                                         ("--grpo-lr", "inf"), ("--train-samples", "0"), ("--decision-weight", "0")])
def test_demo_refuses_a_learning_rate_or_size_that_is_not_positive(tmp_path, flag, value):
    assert f"{flag} must be positive, got {value}" in refused_before_writing(tmp_path, flag, value)


def test_demo_refuses_a_negative_seed_before_any_stage(tmp_path):
    assert "--seed must be 0 or more, got -1" in refused_before_writing(tmp_path, "--seed", "-1")


def refused_before_writing(tmp_path, *args: str) -> str:
    """`mirg demo --out tmp_path/d ARGS` exits 2 with a one-line reason and writes no folder; returns its stderr."""
    proc = subprocess.run([sys.executable, "-m", "mirg", "demo", "--out", str(tmp_path / "d"), *args],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and not (tmp_path / "d").exists()
    return proc.stderr


def test_demo_takes_minutes_or_steps_for_a_stage_not_both(tmp_path):
    stderr = refused_before_writing(tmp_path, "--sft-minutes", "1", "--sft-steps", "3")
    assert "--sft-minutes or --sft-steps, not both" in stderr


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

    assert pretrained_detail(embedded_model_dir()) == "chain"
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


def test_demo_continues_only_with_the_plan_it_was_started_with(tmp_path):
    import pytest

    from mirg.demo import DemoPlan, check_plan
    from mirg.errors import MirgError

    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"weights one")
    plan = DemoPlan(out=tmp_path / "demo", detail="list")
    plan.out.mkdir()
    check_plan(plan, base)  # a new demo: its plan is recorded
    assert json.loads((plan.out / "plan.json").read_text())["detail"] == "list"
    (plan.out / "sft").mkdir()
    check_plan(DemoPlan(out=plan.out, detail="list", eval_batch_size=4), base)  # what it measures is the same
    with pytest.raises(MirgError, match="detail: 'list' -> 'brief'"):
        check_plan(DemoPlan(out=plan.out, detail="brief"), base)
    with pytest.raises(MirgError, match="freeze_vision: True -> False"):
        check_plan(DemoPlan(out=plan.out, detail="list", freeze_vision=False), base)
    recorded = json.loads((plan.out / "plan.json").read_text())
    del recorded["activation_checkpointing"]  # a plan recorded before the field: off, as the recipe had it
    (plan.out / "plan.json").write_text(json.dumps(recorded))
    check_plan(plan, base)
    with pytest.raises(MirgError, match="activation_checkpointing: False -> True"):
        check_plan(DemoPlan(out=plan.out, detail="list", activation_checkpointing=True), base)
    (base / "model.safetensors").write_bytes(b"weights two")
    with pytest.raises(MirgError, match="the base's weights differ"):
        check_plan(plan, base)
    old = DemoPlan(out=tmp_path / "old", detail="list")  # made before demos recorded their plan
    (old.out / "sft").mkdir(parents=True)
    with pytest.raises(MirgError, match="holds no plan.json"):
        check_plan(old, base)
    assert not (old.out / "plan.json").exists()


def test_demo_refuses_an_other_plan_in_one_line(tmp_path):
    out = tmp_path / "demo"
    (out / "data").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "mirg", "demo", "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert proc.returncode == 2 and "holds no plan.json" in proc.stderr and "Traceback" not in proc.stderr


def test_repeat_command_writes_every_changed_setting_so_the_cli_reads_it_back():
    """summary.json's `repeat`: sizes as integers (a million samples is not `1e+06`), rates as the floats given."""
    from pathlib import Path

    from mirg.cli import build_parser
    from mirg.demo import DemoPlan, repeat_command

    plan = DemoPlan(out=Path("x"), n_train=1_000_000, sft_lr=1e-3, sft_cooldown=0.0, grpo_lr=1e-5, decision_weight=2.5,
                    detail="chain", order="label")
    command = repeat_command(plan, {"sft": 3, "sft_grpo": 2})
    assert ("--train-samples 1000000 --sft-lr 0.001 --sft-lr-cooldown 0.0 --grpo-lr 1e-05 --detail chain --order "
            "label --decision-weight 2.5 ") in command
    args = build_parser().parse_args(command.split()[1:])
    assert (args.train_samples, args.sft_lr, args.sft_lr_cooldown, args.grpo_lr, args.decision_weight,
            args.sft_steps) == (1_000_000, 1e-3, 0.0, 1e-5, 2.5, 3)
    assert "--train-samples" not in repeat_command(DemoPlan(out=Path("x"), detail="chain", order="label"), {"sft": 1, "sft_grpo": 1})


def test_decision_weight_goes_to_sft_only_where_the_trajectories_write_the_decision_sentence(tmp_path):
    from pathlib import Path

    import pytest

    from mirg.demo import DemoPlan, resolve_detail, sft_args
    from mirg.errors import MirgError

    def flags(**fields):
        plan = DemoPlan(out=Path("x"), **fields)
        resolve_detail(plan, tmp_path)
        args = sft_args(plan, "m", Path("x/sft"), 1.0)
        return plan.decision_weight, args[args.index("--decision-weight") + 1] if "--decision-weight" in args else None

    assert flags(detail="chain") == (5.0, "5.0")
    assert flags(detail="chain", decision_weight=2) == (2, "2")
    assert flags(detail="chain", decision_weight=1.0) == (1.0, None)
    assert flags(detail="list") == (1.0, None) and flags(detail="brief") == (1.0, None)
    assert flags(detail="list", decision_weight=1) == (1, None)
    with pytest.raises(MirgError, match="--detail list writes none"):
        flags(detail="list", decision_weight=5)


def test_demo_refuses_a_decision_weight_for_trajectories_without_the_sentence(tmp_path):
    assert "--detail list writes none" in refused_before_writing(tmp_path, "--detail", "list", "--decision-weight", "5")


@pytest.mark.parametrize("seeds, reason", [("x", "comma-separated whole numbers"), ("0,0", "distinct numbers from 0"),
                                           ("-1", "distinct numbers from 0")])
def test_ablation_refuses_bad_seeds_before_any_stage(tmp_path, seeds, reason):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "ablation.py"
    proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "a"), "--seeds", seeds],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and reason in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "a").exists()


def test_sessions_add_up_and_a_finished_demo_from_before_them_keeps_its_time(tmp_path):
    from mirg.demo import DemoPlan, add_session, read_sessions

    plan = DemoPlan(out=tmp_path / "demo")
    plan.out.mkdir()
    assert read_sessions(plan) == {"wall_s": 0.0, "peak_rss_mib": 0.0, "sessions": 0}
    first = add_session(plan, read_sessions(plan), 300.0)  # e.g. interrupted after 5 minutes
    second = add_session(plan, read_sessions(plan), 540.5)  # continued to the end
    assert second["wall_s"] == 840.5 and second["sessions"] == 2 and second["peak_rss_mib"] >= first["peak_rss_mib"] > 0
    old = DemoPlan(out=tmp_path / "old")  # finished before sessions.json existed: its summary holds the time
    old.out.mkdir()
    (old.out / "summary.json").write_text(json.dumps({"wall_s": 825.8, "peak_rss_mib": 99999.0}))
    assert read_sessions(old) == {"wall_s": 825.8, "peak_rss_mib": 99999.0, "sessions": 1}
    assert add_session(old, read_sessions(old), 0.4) == {"wall_s": 826.2, "peak_rss_mib": 99999.0, "sessions": 2}
    (old.out / "sessions.json").write_text("{broken")  # unreadable: the summary is read instead
    assert read_sessions(old)["wall_s"] == 825.8
