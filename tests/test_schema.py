"""The manifest: every bad record is reported with file, line, field and reason; nothing is dropped."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mirg.errors import ManifestError, MirgError
from mirg.schema import ObjectAnn, Sample, Target, check_image_files, read_manifest, write_manifest


def record(**overrides):
    base = {
        "id": "s1",
        "task": "common_object",
        "images": ["images/a.png", "images/b.png"],
        "image_sizes": [[64, 48], [64, 48]],
        "question": "Find it in image 2.",
        "target": {"image": 2, "bbox": [1, 2, 30, 40]},
        "objects": [[{"label": "red circle", "bbox": [0, 0, 10, 10], "attributes": {"color": "red"}}], []],
        "image_notes": ["a red circle", "empty"],
        "hints": {"rule": "kept as extra"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_round_trip_keeps_everything(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [json.dumps(record())])
    [sample] = read_manifest(path)
    assert sample.target == Target(2, (1.0, 2.0, 30.0, 40.0))
    assert sample.objects[0][0] == ObjectAnn("red circle", (0.0, 0.0, 10.0, 10.0), {"color": "red"})
    assert sample.extra == {"hints": {"rule": "kept as extra"}}
    write_manifest([sample], tmp_path / "out" / "manifest.jsonl")
    assert json.loads((tmp_path / "out" / "manifest.jsonl").read_text()) == record()
    assert read_manifest(tmp_path / "out")[0] == sample  # a dataset folder works too


BAD = [
    ({"id": None}, "id: missing field"),
    ({"target": None}, "target: missing field"),
    ({"question": None}, "question: missing field"),
    ({"target": {"image": 2}}, "target.bbox: missing field"),
    ({"target": {"image": 2, "bbox": [30, 2, 1, 40]}}, "target.bbox: box .* inverted"),
    ({"target": {"image": 2, "bbox": [1, 2, 70, 40]}}, "target.bbox: box .* outside the 64x48 image"),
    ({"target": {"image": 2, "bbox": [-1, 2, 30, 40]}}, "outside"),
    ({"target": {"image": 3, "bbox": [1, 2, 30, 40]}}, "target.image: 3 is out of range 1..2"),
    ({"target": {"image": 0, "bbox": [1, 2, 30, 40]}}, "target.image: 0 is out of range"),
    ({"target": {"image": "2", "bbox": [1, 2, 30, 40]}}, "target.image: must be an integer"),
    ({"image_sizes": [[64, 48]]}, "image_sizes: has 1 entries but there are 2 images"),
    ({"image_sizes": [[64, 48], [64, 0]]}, r"image_sizes\[1\]"),
    ({"images": []}, "images: must be a non-empty list"),
    ({"objects": [[{"label": "x", "bbox": [0, 0, 100, 10]}], []]}, r"objects\[0\]\[0\]\.bbox: box .* outside"),
    ({"objects": [[{"bbox": [0, 0, 1, 1]}], []]}, r"objects\[0\]\[0\]\.label: missing field"),
    ({"objects": [[]]}, "objects: must be a list with one list of objects per image"),
    ({"image_notes": ["only one"]}, "image_notes: must be a list of 2 strings"),
    ({"target": {"image": 2, "bbox": [1, 2, 30, 1e400]}}, "target.bbox: must be"),
]


@pytest.mark.parametrize("overrides,reason", BAD)
def test_each_bad_record_names_file_line_field_reason(tmp_path, overrides, reason):
    good = json.dumps(record(id="ok"))
    path = write_lines(tmp_path / "m.jsonl", [good, json.dumps(record(**overrides))])
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}:2: ")
    import re

    assert re.search(reason, err.value.problems[0]), err.value.problems[0]


def test_unreadable_json_and_duplicate_id_and_all_problems_reported(tmp_path):
    lines = [json.dumps(record()), "{not json", json.dumps(record()), "[1, 2]"]
    path = write_lines(tmp_path / "m.jsonl", lines)
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    problems = err.value.problems
    assert len(problems) == 3
    assert problems[0].startswith(f"{path}:2: (record): unreadable JSON")
    assert problems[1] == f"{path}:3: id: duplicate id 's1' (first on line 1)"
    assert problems[2].startswith(f"{path}:4: (record): must be a JSON object")


def test_missing_manifest_is_one_line(tmp_path):
    with pytest.raises(MirgError, match="no such manifest"):
        read_manifest(tmp_path / "nope.jsonl")


def test_write_refuses_invalid_samples(tmp_path):
    bad = Sample("x", "t", ["a.png"], [(10, 10)], "q", Target(1, (0, 0, 20, 5)))
    with pytest.raises(MirgError, match="outside"):
        write_manifest([bad], tmp_path / "m.jsonl")
    assert not (tmp_path / "m.jsonl").exists()


def test_image_file_checks(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "images" / "a.png")
    Image.new("RGB", (60, 48)).save(tmp_path / "images" / "b.png")
    (tmp_path / "images" / "c.png").write_bytes(b"not a png")
    samples = read_manifest(write_lines(tmp_path / "m.jsonl", [json.dumps(record())]))
    problems = check_image_files(samples, tmp_path)
    assert problems == [f"s1: image_sizes[1]: manifest says 64x48 but {tmp_path}/images/b.png is 60x48"]
    samples[0].images = ["images/a.png", "images/c.png"]
    assert "not a readable image" in check_image_files(samples, tmp_path)[0]
    samples[0].images = ["images/a.png", "images/missing.png"]
    assert "does not exist" in check_image_files(samples, tmp_path)[0]
