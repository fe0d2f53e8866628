"""`mirg score`: exact MIG-Bench parity, the image-aware default mode, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mirg.answer import render_answer
from mirg.eval.migbench import compat_box, migician_yscale
from mirg.schema import Sample, Target, write_manifest

MODELS = {"univg-r1": 0.7203, "qwen2_vl": 0.3002}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_compat_mode_reproduces_every_published_result_file_exactly(parity_dir, tmp_path, mirg, model):
    expected = json.loads((parity_dir / "expected_counts.json").read_text())[model]
    files = sorted(str(p) for p in (parity_dir / "results" / model).glob("*.json"))
    assert len(files) == 10
    out = tmp_path / "metrics.json"
    proc = mirg("score", "--data", str(parity_dir / "revised_MIG_bench.json"), "--predictions", *files,
                "--out", str(out), "--compat", "migbench")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.read_text())
    assert set(metrics["tasks"]) == set(expected)
    for task, exp in expected.items():
        got = metrics["tasks"][task]
        assert got["n"] == exp["n"], task
        for key in ("iou@0.3", "iou@0.5", "iou@0.7"):
            assert got["counts"][key] == exp[key], (task, key)
        assert got["iou_sum"] == exp["iou_sum"], task  # bit-for-bit, summed in benchmark order
        assert got["image_acc"] is None and got["format_rate"] is None
    assert round(metrics["overall"]["task_mean_acc@0.5"], 4) == MODELS[model]
    assert metrics["overall"]["mode"] == "compat-migbench"


def test_compat_box_rules_for_both_versions():
    assert compat_box("(1,2),(3,4) then [5, 6, 7, 8]", "revised") == [1, 2, 3, 4]
    assert compat_box("[5, 6, 7, 8]", "revised") == [5, 6, 7, 8]
    assert compat_box("<box>5 6 7 8</box>", "revised") == [5, 6, 7, 8]
    assert compat_box("(0.1,0.2),(0.3,0.4)", "revised") is None  # decimals can't be read as 0-1000 ints
    assert compat_box("nothing", "revised") is None
    assert compat_box("[0.1, 0.2, 0.3, 0.4]", "original") == [0.1, 0.2, 0.3, 0.4]
    assert compat_box("[1, 20, 300, 400]", "original") == [0.001, 0.02, 0.3, 0.4]  # one match: v >= 1 -> /1000
    assert compat_box("[1, 20, 300, 400] [5, 6, 7, 8]", "original") == [1.0, 0.02, 0.3, 0.4]  # several: v > 1
    assert compat_box("nothing", "original") is None


def test_migician_yscale_matches_the_published_formula():
    assert migician_yscale([10, 400, 20, 800]) == [10, 420, 20, 880]
    assert migician_yscale([10, 990, 20, 990]) == [10, 999, 20, 999]


def test_migician_yscale_flag(parity_dir, tmp_path, mirg):
    files = sorted(str(p) for p in (parity_dir / "results" / "qwen2_vl").glob("*.json"))
    out = tmp_path / "m.json"
    proc = mirg("score", "--data", str(parity_dir / "revised_MIG_bench.json"), "--predictions", *files,
                "--out", str(out), "--compat", "migbench", "--migician-yscale")
    assert proc.returncode == 0, proc.stderr
    scaled = json.loads(out.read_text())["tasks"]["common_object"]["iou_sum"]
    assert scaled != pytest.approx(334.80115605215093)


@pytest.fixture
def small_dataset(tmp_path):
    samples = [
        Sample("a", "common_object", ["1.png", "2.png"], [(200, 100), (400, 300)], "q", Target(2, (100, 60, 200, 160))),
        Sample("b", "common_object", ["1.png", "2.png"], [(200, 100), (400, 300)], "q", Target(1, (0, 0, 100, 50))),
        Sample("c", "diff", ["1.png", "2.png", "3.png"], [(100, 100)] * 3, "q", Target(3, (10, 10, 60, 60))),
    ]
    write_manifest(samples, tmp_path / "data" / "manifest.jsonl")
    return tmp_path / "data"


def write_predictions(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_default_mode_is_image_aware_and_converts_coordinates(small_dataset, tmp_path, mirg):
    preds = write_predictions(tmp_path / "p.jsonl", [
        # right image; box in norm1000 of image 2 (400x300) = pixels (100, 60, 200, 160)
        {"id": "a", "response": render_answer(2, [250, 200, 500, 533.3333333])},
        # wrong image, perfect box for image 1: IoU must be 0
        {"id": "b", "response": render_answer(2, [0, 0, 500, 500])},
        # c: no prediction -> counted and wrong
    ])
    out, per = tmp_path / "m.json", tmp_path / "per.jsonl"
    proc = mirg("score", "--data", str(small_dataset), "--predictions", str(preds), "--out", str(out),
                "--per-sample", str(per), "--coords", "norm1000")
    assert proc.returncode == 0, proc.stderr
    assert "1 sample(s) have no prediction" in proc.stderr
    m = json.loads(out.read_text())
    co = m["tasks"]["common_object"]
    assert co["counts"] == {"iou@0.3": 1, "iou@0.5": 1, "iou@0.7": 1}
    assert co["image_acc"] == 0.5 and co["format_rate"] == 1.0 and co["parse_rate"] == 1.0
    assert m["tasks"]["diff"]["parse_rate"] == 0.0
    assert m["overall"]["task_mean_acc@0.5"] == pytest.approx(0.25)
    assert m["overall"]["pooled_acc@0.5"] == pytest.approx(1 / 3)
    # the task mean's standard error: common_object 1 of 2 (0.5 * 0.5 / 2), diff 0 of 1 (0), over two tasks
    assert m["overall"]["task_mean_acc@0.5_se"] == pytest.approx(0.125 ** 0.5 / 2)
    assert "AVG acc@0.5 25.0% ± 17.7 points" in proc.stdout + proc.stderr
    assert m["overall"]["missing_predictions"] == 1
    rows = [json.loads(line) for line in per.read_text().splitlines()]
    assert set(rows[0]) == {"id", "task", "format_ok", "parse_ok", "pred_image", "image_correct", "iou", "pred_box_pixels"}
    assert rows[0]["pred_box_pixels"] == pytest.approx([100, 60, 200, 160])
    assert rows[1]["image_correct"] is False and rows[1]["iou"] == 0.0


def test_default_mode_on_the_revised_benchmark_without_images(parity_dir, tmp_path, mirg):
    bench = json.loads((parity_dir / "revised_MIG_bench.json").read_text())
    from mirg.data.migbench import load_benchmark, target_image

    records = load_benchmark(bench, parity_dir / "revised_MIG_bench.json").records
    rows = [{"id": r.id, "response": render_answer(target_image(r), r.answer)} for r in records]
    preds = write_predictions(tmp_path / "p.jsonl", rows)
    out = tmp_path / "m.json"
    proc = mirg("score", "--data", str(parity_dir / "revised_MIG_bench.json"), "--predictions", str(preds),
                "--out", str(out), "--coords", "norm1000")
    assert proc.returncode == 0, proc.stderr
    assert "1000x1000 frame" in proc.stderr
    m = json.loads(out.read_text())
    assert m["overall"]["n"] == len(records)
    assert m["overall"]["task_mean_acc@0.5"] == 1.0 and m["overall"]["pooled_image_acc"] == 1.0


def _assert_one_line_error(proc, fragment):
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("mirg: error:")]
    assert lines and fragment in proc.stderr, proc.stderr


def test_bad_inputs_give_one_line_errors(parity_dir, small_dataset, tmp_path, mirg):
    good = write_predictions(tmp_path / "good.jsonl", [{"id": "a", "response": "x"}])
    cases = {
        "no such manifest file": ["--data", str(tmp_path / "nope.jsonl"), "--predictions", str(good)],
        "unreadable JSON": ["--data", str(small_dataset), "--predictions",
                            str(write_predictions(tmp_path / "bad.jsonl", []).parent / "bad.jsonl")],
        "duplicate id": ["--data", str(small_dataset), "--predictions", str(write_predictions(
            tmp_path / "dup.jsonl", [{"id": "a", "response": "x"}, {"id": "a", "response": "y"}]))],
        "response: missing field": ["--data", str(small_dataset), "--predictions", str(write_predictions(
            tmp_path / "noresp.jsonl", [{"id": "a"}]))],
        "another dataset": ["--data", str(small_dataset), "--predictions", str(write_predictions(
            tmp_path / "other.jsonl", [{"id": "zzz", "response": "x"}]))],
        "needs a MIG-Bench JSON": ["--data", str(small_dataset), "--predictions", str(good), "--compat", "migbench"],
        "only with --compat": ["--data", str(small_dataset), "--predictions", str(good), "--migician-yscale"],
        "--coords does not apply with --compat migbench": ["--data", str(parity_dir / "MIG_data.json"),
                                                          "--predictions", str(good), "--compat", "migbench",
                                                          "--coords", "resized"],
        "not a MIG-Bench result file": ["--data", str(small_dataset), "--predictions",
                                        str(parity_dir / "expected_counts.json")],
        "records but the benchmark has": ["--data", str(parity_dir / "MIG_data.json"), "--predictions",
                                          str(next((parity_dir / "results" / "univg-r1").glob("*common_object*"))),
                                          "--compat", "migbench"],
        "invalid record": ["--data", str(write_predictions(tmp_path / "badm.jsonl", [{"id": "x"}])),
                           "--predictions", str(good)],
    }
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "response": "x"}\n{oops\n')
    for fragment, args in cases.items():
        proc = mirg("score", *args, "--out", str(tmp_path / "m.json"))
        _assert_one_line_error(proc, fragment)


def test_files_opening_with_a_byte_order_mark_read_as_without_one(small_dataset, parity_dir, tmp_path, mirg):
    """Windows editors and PowerShell start UTF-8 files with a BOM: manifests, predictions and MIG-Bench files too."""
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": "a", "response": render_answer(2, [100, 60, 200, 160])}])
    plain = mirg("score", "--data", str(small_dataset), "--predictions", str(preds), "--out", str(tmp_path / "m0.json"))
    assert plain.returncode == 0, plain.stderr
    bom = b"\xef\xbb\xbf"
    (tmp_path / "bom").mkdir()
    (tmp_path / "bom" / "manifest.jsonl").write_bytes(bom + (small_dataset / "manifest.jsonl").read_bytes())
    (tmp_path / "bom.jsonl").write_bytes(bom + preds.read_bytes())
    marked = mirg("score", "--data", str(tmp_path / "bom"), "--predictions", str(tmp_path / "bom.jsonl"),
                  "--out", str(tmp_path / "m1.json"))
    assert marked.returncode == 0, marked.stderr
    first, second = (json.loads((tmp_path / f"m{i}.json").read_text()) for i in (0, 1))
    assert first["overall"]["task_mean_acc@0.5"] == second["overall"]["task_mean_acc@0.5"] == 0.25  # a of a, b, c
    result = next((parity_dir / "results" / "univg-r1").glob("*common_object*"))
    (tmp_path / "result.json").write_bytes(bom + result.read_bytes())
    (tmp_path / "bench.json").write_bytes(bom + (parity_dir / "revised_MIG_bench.json").read_bytes())
    compat = mirg("score", "--data", str(tmp_path / "bench.json"), "--predictions", str(tmp_path / "result.json"),
                  "--out", str(tmp_path / "m2.json"), "--compat", "migbench")
    assert compat.returncode == 0, compat.stderr


def test_an_output_path_that_cannot_be_written_is_named_with_the_reason(small_dataset, tmp_path, mirg):
    good = write_predictions(tmp_path / "good.jsonl", [{"id": "a", "response": "x"}])
    (tmp_path / "folder").mkdir()
    proc = mirg("score", "--data", str(small_dataset), "--predictions", str(good), "--out", str(tmp_path / "folder"))
    _assert_one_line_error(proc, f"mirg: error: {tmp_path / 'folder'}: Is a directory")
    assert "Errno" not in proc.stderr


def test_a_reader_that_stops_early_is_not_an_error(small_dataset, tmp_path):
    """`mirg score ... | head -1`: the table's writer meets a closed pipe; that ends the command quietly, status 0."""
    import subprocess
    import sys

    good = write_predictions(tmp_path / "good.jsonl", [{"id": "a", "response": "x"}])
    proc = subprocess.Popen([sys.executable, "-m", "mirg", "score", "--data", str(small_dataset), "--predictions",
                             str(good), "--out", str(tmp_path / "m.json")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the table is written
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and "error" not in err and "Traceback" not in err, err
    assert (tmp_path / "m.json").is_file()


def test_score_and_help_do_not_import_torch(small_dataset, tmp_path):
    import subprocess
    import sys

    preds = write_predictions(tmp_path / "p.jsonl", [{"id": "a", "response": "x"}])
    code = (
        "import sys; from mirg.cli import main; "
        f"main(['score', '--data', {str(small_dataset)!r}, '--predictions', {str(preds)!r}, '--out', {str(tmp_path / 'm.json')!r}]); "
        "bad = [m for m in ('torch', 'transformers', 'trl', 'PIL') if m in sys.modules]; "
        "print('LOADED', bad)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED []" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom mirg.cli import build_parser\nbuild_parser()\n"
         "print('LOADED', [m for m in ('torch', 'transformers', 'trl') if m in sys.modules])"],
        capture_output=True, text=True,
    )
    assert "LOADED []" in proc.stdout, proc.stdout + proc.stderr


def _score(sample_id: str, task: str, iou_value: float) -> "SampleScore":
    from mirg.eval.scoring import SampleScore

    return SampleScore(sample_id, task, True, True, 1, iou_value > 0, iou_value, [0.0, 0.0, 1.0, 1.0])


def test_paired_difference_is_the_task_mean_difference_with_a_paired_bootstrap():
    from mirg.eval.scoring import paired_difference

    # task x: a right on all 10, b on none (+1); task y: both right on the same 5 of 10 (0): task mean +0.5
    a = [_score(f"x{i}", "x", 0.9) for i in range(10)]
    a += [_score(f"y{i}", "y", 0.9 if i < 5 else 0.1) for i in range(10)]
    b = [_score(f"x{i}", "x", 0.2) for i in range(10)]
    b += [_score(f"y{i}", "y", 0.6 if i < 5 else 0.0) for i in range(10)]
    d = paired_difference(a, list(reversed(b)))  # matched by id, not by order
    assert d["diff"] == pytest.approx(0.5) and d["n"] == 20 and d["num_tasks"] == 2
    # every draw of x gives +1 and every draw of y gives 0 (both models agree on each y sample): no spread
    assert d["ci95"] == pytest.approx([0.5, 0.5]) and d["se"] == pytest.approx(0.0)
    assert paired_difference(a, a)["diff"] == 0.0


def test_paired_difference_spread_matches_the_standard_error_of_a_mean():
    from mirg.eval.scoring import paired_difference

    # per-sample differences +1, 0, 0, -1 repeated: mean 0, population variance 0.5, n = 40
    a_hit, b_hit = (True, True, False, False), (False, True, False, True)
    a = [_score(f"s{i}", "t", 0.9 if a_hit[i % 4] else 0.0) for i in range(40)]
    b = [_score(f"s{i}", "t", 0.9 if b_hit[i % 4] else 0.0) for i in range(40)]
    d = paired_difference(a, b, reps=4000, seed=1)
    assert d["diff"] == pytest.approx(0.0)
    assert d["se"] == pytest.approx((0.5 / 40) ** 0.5, rel=0.1)
    assert d["ci95"][0] < 0 < d["ci95"][1]
    assert len(d["diffs"]) == 4000


def test_paired_difference_refuses_runs_on_different_samples():
    from mirg.errors import MirgError
    from mirg.eval.scoring import paired_difference

    a = [_score("x0", "x", 0.9), _score("x1", "x", 0.9)]
    with pytest.raises(MirgError, match="same samples"):
        paired_difference(a, a[:1])
    with pytest.raises(MirgError, match="same samples"):
        paired_difference(a + a[:1], a + a[:1])
    with pytest.raises(MirgError, match="'x' in one run and 'y'"):
        paired_difference(a, [_score("x0", "x", 0.9), _score("x1", "y", 0.9)])


def _hits(prefix: str, task: str, pattern: str) -> list:
    """One sample per character of ``pattern``: ``1`` right at acc@0.5, ``0`` wrong."""
    return [_score(f"{prefix}{i}", task, 0.9 if c == "1" else 0.0) for i, c in enumerate(pattern)]


def test_paired_difference_over_seeds_averages_the_seeds_and_their_draws():
    from mirg.errors import MirgError
    from mirg.eval.scoring import describe_difference, paired_difference, paired_difference_over_seeds

    # seed 0: a ahead by 0.4 on task x (10 samples); seed 1: a behind by 0.2
    runs = {0: (_hits("x", "x", "1111100000"), _hits("x", "x", "1000000000")),
            1: (_hits("x", "x", "1100000000"), _hits("x", "x", "1111000000"))}
    result = paired_difference_over_seeds(runs, reps=4000)
    assert result["per_seed"][0]["diff"] == pytest.approx(0.4) and result["per_seed"][1]["diff"] == pytest.approx(-0.2)
    assert result["mean"]["diff"] == pytest.approx(0.1)
    assert "diffs" not in result["per_seed"][0]
    # each seed is bootstrapped with its own seed, as paired_difference alone would be
    assert result["per_seed"][1]["ci95"] == paired_difference(*runs[1], reps=4000, seed=1)["ci95"]
    # the mean of two independent seeds' draws spreads less than either seed alone
    assert result["mean"]["se"] < min(d["se"] for d in result["per_seed"].values())
    low, high = result["mean"]["ci95"]
    assert low < 0.1 < high
    assert describe_difference(result["per_seed"][0]).startswith("+40.0 [")
    assert describe_difference({"diff": -0.0123, "ci95": [-0.03, 0.004]}) == "-1.2 [-3.0, +0.4]"
    with pytest.raises(MirgError, match="at least one seed"):
        paired_difference_over_seeds({})


def _write_scores(path: Path, scores: list) -> None:
    from dataclasses import asdict

    path.mkdir(parents=True, exist_ok=True)
    (path / "per_sample.jsonl").write_text("".join(json.dumps(asdict(s)) + "\n" for s in scores))


def test_paired_script_compares_evaluation_folders_over_seeds(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "paired.py"
    for seed, (a, b) in {0: ("1111100000", "1000000000"), 1: ("1100000000", "1111000000")}.items():
        _write_scores(tmp_path / f"seed{seed}" / "a", _hits("x", "x", a))
        _write_scores(tmp_path / f"seed{seed}" / "b", _hits("x", "x", b))
    a, b = str(tmp_path / "seed{s}" / "a"), str(tmp_path / "seed{s}" / "b")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)

    proc = run(a, b, "--seeds", "0,1")
    assert proc.returncode == 0, proc.stderr
    assert "seed 0: +40.0 [" in proc.stdout and "seed 1: -20.0 [" in proc.stdout
    assert "mean of the seeds: +10.0 [" in proc.stdout
    as_json = json.loads(run(a, b, "--seeds", "0,1", "--json").stdout)
    assert as_json["mean"]["diff"] == pytest.approx(0.1)
    # a per_sample.jsonl named directly, one seed, no {s}
    proc = run(str(tmp_path / "seed0" / "a" / "per_sample.jsonl"), str(tmp_path / "seed0" / "b"))
    assert proc.returncode == 0 and "seed 0: +40.0 [" in proc.stdout
    for args, reason in (((a, b, "--seeds", "0,2"), "seed2/a: no such file"),
                         ((str(tmp_path / "seed0" / "a"), b, "--seeds", "0,1"), "must each hold {s}"),
                         ((a, b, "--seeds", "0,x"), "comma-separated whole numbers"),
                         ((a, str(tmp_path / "seed{s}" / "a" / "per_sample.jsonl"), "--seeds", "0", "--threshold", "0"),
                          "--threshold is an IoU")):
        proc = run(*args)
        assert proc.returncode == 2 and reason in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2  # argparse adds its usage line


def test_per_sample_scores_read_back_from_mirg_score(small_dataset, tmp_path, mirg):
    from mirg.errors import MirgError
    from mirg.eval.scoring import paired_difference, read_sample_scores

    right = {"id": "a", "response": render_answer(2, [250, 200, 500, 533.3333333])}
    preds = write_predictions(tmp_path / "p.jsonl", [right])
    per = tmp_path / "per.jsonl"
    proc = mirg("score", "--data", str(small_dataset), "--predictions", str(preds), "--out", str(tmp_path / "m.json"),
                "--per-sample", str(per), "--coords", "norm1000")
    assert proc.returncode == 0, proc.stderr
    rows = read_sample_scores(per)
    assert [r.id for r in rows] == ["a", "b", "c"] and rows[0].iou == pytest.approx(1.0) and rows[2].parse_ok is False
    assert paired_difference(rows, rows)["diff"] == 0.0
    per.write_text(per.read_text() + '{"id": "d"}\n', encoding="utf-8")
    with pytest.raises(MirgError, match=r"per.jsonl:4: not a per-sample score row"):
        read_sample_scores(per)
    good = per.read_text(encoding="utf-8").splitlines(keepends=True)[:3]
    per.write_bytes(b"\xef\xbb\xbf" + "".join(good).encode())  # a byte-order mark: read as without it
    assert [r.id for r in read_sample_scores(per)] == ["a", "b", "c"]
    per.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(MirgError, match=r"per.jsonl: not UTF-8 text"):
        read_sample_scores(per)
    with pytest.raises(MirgError, match=r"nothing.jsonl: no such file"):
        read_sample_scores(tmp_path / "nothing.jsonl")
