"""`mirg data convert migbench`: target image from the question, boxes to pixels from the image files."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mirg.data.migbench import BenchRecord, target_image
from mirg.schema import check_image_files, read_manifest


@pytest.mark.parametrize("bench_file", ["MIG_data.json", "revised_MIG_bench.json"])
def test_convert_with_the_real_photos(parity_dir, tmp_path, mirg, bench_file):
    out = tmp_path / "out"
    proc = mirg("data", "convert", "migbench", "--in", str(parity_dir / bench_file),
                "--images", str(parity_dir / "images"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    samples = read_manifest(out)
    case076 = [s for s in samples if s.images[0].endswith("case076_1.jpg")]
    assert len(case076) == 1 and len(samples) >= 1
    s = case076[0]
    assert s.task == "correspondence" and s.target.image == 2
    assert s.image_sizes == [(900, 616), (474, 739)]
    raw = json.loads((parity_dir / bench_file).read_text())[s.extra["source_index"]]
    scale = 1.0 if bench_file == "MIG_data.json" else 1000.0
    expected = [raw["answer"][0] / scale * 474, raw["answer"][1] / scale * 739,
                raw["answer"][2] / scale * 474, raw["answer"][3] / scale * 739]
    assert list(s.target.bbox) == pytest.approx(expected)
    assert check_image_files(samples, out) == []  # paths written relative to the output folder
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) + len(samples) == len(raw_all := json.loads((parity_dir / bench_file).read_text()))
    assert all(r["reason"] for r in rejected) and len(raw_all) > 4000
    assert "image file not found" in proc.stdout
    card = (out / "README.md").read_text()
    by_reason = Counter(r["reason"].split(":")[0] for r in rejected)
    assert by_reason["image file not found"] > 0
    assert all(f"| {reason} | {n} |" in card for reason, n in by_reason.items())


def test_target_image_is_read_from_every_revised_question(parity_dir):
    from mirg.data.migbench import load_benchmark

    path = parity_dir / "revised_MIG_bench.json"
    bench = load_benchmark(json.loads(path.read_text()), path)
    assert all(target_image(r) is not None for r in bench.records)


@pytest.mark.parametrize(
    "task,question,info,expected",
    [
        ("common_object", "These images share one object in common. Recognize and locate this object in the 3th image.", "", 3),
        ("region", "Please locate the 2th region picture in the source image.", "", 1),
        ("group_grounding", "Find the dog.", "It is in the fourth image. <|box_start|>", 4),
        ("multi_view", "object marked in the first image(...). Recognize and locate this object in the 2th image.", "", 2),
        ("refer_grounding", "Find and locate where does the object in image-1 locate in the image-2.", "", 2),
        ("diff", "Compare these two images carefully and give me the coordinates of their difference.", "", None),
    ],
)
def test_target_image_rules(task, question, info, expected):
    rec = BenchRecord(0, "x", task, ["a"] * 5, question, [0, 0, 1, 1], info)
    assert target_image(rec) == expected


def test_convert_bad_inputs(tmp_path, mirg, parity_dir):
    not_bench = tmp_path / "x.json"
    not_bench.write_text('{"a": 1}')
    proc = mirg("data", "convert", "migbench", "--in", str(not_bench), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "not a MIG-Bench JSON" in proc.stderr and "Traceback" not in proc.stderr
    proc = mirg("data", "convert", "migbench", "--in", str(parity_dir / "revised_MIG_bench.json"),
                "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such folder" in proc.stderr
