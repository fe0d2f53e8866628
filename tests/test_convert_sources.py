"""`mirg data convert mgrounding` and `mirg data convert vlm-r1` on files in the real formats and the two real
photos (900x616 and 474x739, so a width/height mix-up, a 0-1000 box read as pixels or the wrong target image
all change the numbers): boxes, target images, tasks, every rejection reason, and bad files."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from mirg.data import convert
from mirg.data.mentions import pick_target
from mirg.schema import QUESTION_BOXES, check_image_files, read_manifest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PHOTOS = FIXTURES / "mig-bench" / "images"
MG_FILE = FIXTURES / "mgrounding" / "MGrounding-sample.json"
R1_FILE = FIXTURES / "vlm-r1" / "rec-sample.json"
WIDE, TALL = (900, 616), (474, 739)  # case076_1.jpg, case076_2.jpg
#: The tiny model's processor limit (as in test_train.py), so that trajectories speak its resized pixels.
TINY_MAX_PIXELS = "50176"


def lay_out(layout_file: Path, root: Path) -> Path:
    """Put an image at every path ``layout_file`` names: a copy of a real photo, or a blank of [w, h]."""
    for rel, what in json.loads(layout_file.read_text()).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, list):
            Image.new("RGB", tuple(what), "gray").save(path, format="JPEG")
        else:
            shutil.copyfile(PHOTOS / what, path)
    return root


def pixels(box, size):
    """A 0-1000 box in pixels of an image of ``size`` = (width, height), written out by hand."""
    w, h = size
    return [box[0] * w / 1000, box[1] * h / 1000, box[2] * w / 1000, box[3] * h / 1000]


def rejections(out: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(rows) == len({r["id"] for r in rows}) or any("duplicate" in r["reason"] for r in rows)
    return {r["id"]: r["reason"] for r in rows}


@pytest.fixture(scope="module")
def mg_images(tmp_path_factory) -> Path:
    return lay_out(FIXTURES / "mgrounding" / "layout.json", tmp_path_factory.mktemp("mg") / "data")


@pytest.fixture(scope="module")
def mg_out(mg_images, tmp_path_factory):
    from conftest import run_mirg

    out = tmp_path_factory.mktemp("mg_out") / "converted"
    proc = run_mirg("data", "convert", "mgrounding", "--in", str(MG_FILE), "--images", str(mg_images),
                    "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.fixture(scope="module")
def mg_samples(mg_out):
    return {s.id: s for s in read_manifest(mg_out[0])}


# ----- MGrounding: what becomes a sample, and how --------------------------------------------------------


def test_the_readme_record_gives_one_sample_per_pair_in_the_image_the_answer_names(mg_samples):
    first, second = mg_samples["5229016_8929009_6793119_3571391-1"], mg_samples["5229016_8929009_6793119_3571391-2"]
    assert first.task == second.task == "group_grounding"
    assert first.question == "Give the bounding box of the region that this sentence refers to: a statue of a man."
    assert second.question == ("Recognize the target region that this sentence refers to: a woman wearing an "
                               "orange shirt.")
    assert first.target.image == 3 and first.image_sizes[2] == WIDE  # "It's in the third image."
    assert list(first.target.bbox) == pytest.approx(pixels([316, 58, 764, 999], WIDE))
    assert second.target.image == 1 and second.image_sizes[0] == TALL  # "It's in the first image."
    assert list(second.target.bbox) == pytest.approx(pixels([408, 656, 578, 997], TALL))
    assert first.image_sizes == [TALL, TALL, WIDE, TALL]


def test_the_image_named_only_in_the_question(mg_samples):
    s = mg_samples["common_000001-1"]
    assert s.task == "common_object" and s.target.image == 2 and s.image_sizes == [WIDE, TALL, WIDE]
    assert list(s.target.bbox) == pytest.approx([47.4, 147.8, 237.0, 591.2])
    assert s.question == "These images share one object in common. Recognize and locate this object in the 2th image."


def test_one_image_record_and_a_type_of_its_own(mg_samples):
    s = mg_samples["ff_000001-1"]
    assert s.task == "free_form_train" and s.target.image == 1 and s.image_sizes == [WIDE]
    assert list(s.target.bbox) == [0, 0, 900, 616]
    assert s.question == "Find the red car in this picture."


def test_multi_turn_tracking_keeps_the_question_box_and_converts_each_answer(mg_samples):
    first, second = mg_samples["got10k_000001-1"], mg_samples["got10k_000001-2"]
    assert first.task == "object_tracking" and first.target.image == 2
    assert list(first.target.bbox) == pytest.approx(pixels([82, 338, 540, 812], TALL))
    assert "<|box_start|>(139,305),(495,743)<|box_end|>" in first.question and "<image>" not in first.question
    assert first.extra[QUESTION_BOXES] == "norm1000"  # said, so that trajectories in another space count it
    assert second.target.image == 3 and second.question == "Now locate the same object in the third image."
    assert QUESTION_BOXES not in second.extra
    assert list(second.target.bbox) == pytest.approx(pixels([10, 20, 30, 40], WIDE))


@pytest.mark.parametrize("sid,task,image,size,box", [
    ("spot_diff_000001-1", "diff", 2, TALL, [250, 500, 750, 900]),  # the answer names it; paths without "./"
    ("region_000001-1", "region", 1, TALL, [421, 104, 606, 507]),  # the source image
    ("refer_000001-1", "refer_grounding", 2, WIDE, [260, 473, 428, 930]),  # the last image the question names
])
def test_target_image_and_task_per_type(mg_samples, sid, task, image, size, box):
    s = mg_samples[sid]
    assert (s.task, s.target.image, s.image_sizes[image - 1]) == (task, image, size)
    assert list(s.target.bbox) == pytest.approx(pixels(box, size))


EXPECTED_REJECTIONS = {
    "reg_nobox-1": "no box in the answer",
    "two_boxes-1": "several boxes in the answer",
    "unnamed-1": "no image named",
    "missing_file-1": "image file not found",
    "outside-1": "box outside the image",
    "inverted-1": "box inverted or empty",
    "placeholders-1": "placeholder count",
    "placeholders-2": "placeholder count",
    "no_conversations": "malformed record",
    "common_000001-1": "duplicate id",
    "two_images_named-1": "answer names several images",
    "fifth_image-1": "image number out of range",
    "not_alternating": "malformed record",
    "odd_box-1": "unreadable box",
    "only_placeholders-1": "empty question",
}


def test_every_rejection_is_written_with_its_reason_and_counted_in_the_card(mg_out, mg_samples):
    out, proc = mg_out
    rejected = rejections(out)
    assert {sid: reason.split(":")[0] for sid, reason in rejected.items()} == EXPECTED_REJECTIONS
    assert "missing.jpg" in rejected["missing_file-1"] and "1200" in rejected["outside-1"]
    assert rejected["placeholders-1"] == "placeholder count: 2 <image> placeholders for 3 images"
    assert len(mg_samples) == 9  # every pair of the first seven records; nothing dropped silently
    card = (out / "README.md").read_text()
    for reason, n in Counter(EXPECTED_REJECTIONS.values()).items():
        assert f"| {reason} | {n} |" in card
    for task, n in {"group_grounding": 2, "object_tracking": 2, "common_object": 1, "diff": 1, "region": 1,
                    "refer_grounding": 1, "free_form_train": 1}.items():
        assert f"| {task} | {n} |" in card
    assert "21 records gave 9 samples" in card and "15 would-be samples" in card
    assert "not converted: 15 (" in proc.stdout and "2 placeholder count" in proc.stdout


def test_image_paths_are_relative_to_the_output_folder_and_pass_the_image_check(mg_out, mg_images):
    out, _ = mg_out
    samples = read_manifest(out)
    assert check_image_files(samples, out) == []
    for s in samples:
        assert all(not p.startswith(("/", "./")) and "/./" not in p for p in s.images)
    diff = next(s for s in samples if s.id == "spot_diff_000001-1")  # named without "./" in the file
    expected = mg_images / "MGrounding-630k/Difference/spot-the-diff/1_b.png"
    assert (out / diff.images[1]).resolve() == expected.resolve()


def test_each_distinct_image_is_measured_once(mg_images, tmp_path, monkeypatch):
    calls = Counter()
    measure = convert.image_size

    def counting(path):
        calls[Path(path).resolve()] += 1
        return measure(path)

    monkeypatch.setattr(convert, "image_size", counting)
    index = convert.ImageIndex([mg_images], relative_to=tmp_path)
    report = convert.write_conversion(convert.MGroundingSource(MG_FILE), index, tmp_path / "out")
    assert sum(report.samples.values()) == 9
    assert calls and max(calls.values()) == 1
    # "./X" and "X" name one file: looked up under one key
    assert index.lookup("./MGrounding-630k/Common_Object/COCO/000000000139.jpg") == \
        index.lookup("MGrounding-630k/Common_Object/COCO/000000000139.jpg")
    assert max(calls.values()) == 1


def test_json_lines_give_the_same_manifest(mg_images, mg_out, tmp_path, mirg):
    lines = tmp_path / "mg.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in json.loads(MG_FILE.read_text())))
    out = tmp_path / "out"
    proc = mirg("data", "convert", "mgrounding", "--in", str(lines), "--images", str(mg_images), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    converted = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (mg_out[0] / "manifest.jsonl").read_text().splitlines()]
    for row in converted + reference:
        row["images"] = [Path(p).name for p in row["images"]]  # the two outputs sit in different folders
    assert converted == reference


# ----- bad files: one line, exit 2, nothing presented as complete ---------------------------------------


def test_a_truncated_file_is_refused_and_nothing_is_written(mg_images, tmp_path, mirg):
    text = MG_FILE.read_text()
    broken = tmp_path / "MGrounding-630k.json"
    broken.write_text(text[: text.index('"id": "region_000001"') + 30])
    out = tmp_path / "out"
    proc = mirg("data", "convert", "mgrounding", "--in", str(broken), "--images", str(mg_images), "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "breaks off" in proc.stderr and "truncated" in proc.stderr and "nothing was written" in proc.stderr
    assert "after record 5 (id spot_diff_000001)" in proc.stderr
    assert not any(out.glob("*")) if out.exists() else True


def test_a_truncated_file_leaves_an_earlier_complete_conversion_as_it_was(mg_images, mg_out, tmp_path, mirg):
    out = tmp_path / "out"
    shutil.copytree(mg_out[0], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / "mg.json"
    broken.write_text(MG_FILE.read_text()[:-40])
    proc = mirg("data", "convert", "mgrounding", "--in", str(broken), "--images", str(mg_images), "--out", str(out))
    assert proc.returncode == 2 and "breaks off" in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("content,message", [
    ('{"id": "a", "images": []}\n{"id": "b", "ima', ":2: unreadable JSON"),  # a JSON Lines file cut short
    ("[{\"id\": 1} {\"id\": 2}]", "unreadable JSON after record 1"),
    ("", "neither a JSON list of records nor JSON Lines (it is empty)"),
    ("id,images\n1,a.jpg\n", "neither a JSON list of records nor JSON Lines"),
    ('{\n  "data": []\n}\n', "line 1 is not one JSON record"),  # one pretty-printed object
    ('[{"id": "a", "solution": NaN}]', "unreadable JSON"),
])
def test_unreadable_files_end_in_one_line(tmp_path, mirg, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for source in ("mgrounding", "vlm-r1"):
        proc = mirg("data", "convert", source, "--in", str(bad), "--out", str(tmp_path / "out"))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_bad_arguments(tmp_path, mirg, mg_images):
    proc = mirg("data", "convert", "mgrounding", "--in", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = mirg("data", "convert", "mgrounding", "--in", str(MG_FILE), "--images", str(tmp_path / "nope"),
                "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such folder" in proc.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    proc = mirg("data", "convert", "vlm-r1", "--in", str(R1_FILE), "--images", str(mg_images),
                "--out", str(tmp_path / "busy"))
    assert proc.returncode == 2 and "holds other files" in proc.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_no_image_found_at_all_is_an_error_after_the_rejections_are_written(tmp_path, mirg):
    empty = tmp_path / "no_images"
    empty.mkdir()
    out = tmp_path / "out"
    proc = mirg("data", "convert", "mgrounding", "--in", str(MG_FILE), "--images", str(empty), "--out", str(out))
    assert proc.returncode == 2 and "no sample could be converted" in proc.stderr
    assert "image file not found" in rejections(out)["ff_000001-1"]


# ----- the target-image reader, on answer phrases --------------------------------------------------


@pytest.mark.parametrize("answer,question,n,task,expected", [
    ("It's in the third image. <|box_start|>(1,1),(2,2)<|box_end|>", "", 4, "group_grounding", 3),
    ("the 2nd image", "Locate it in image 1.", 3, "", 2),  # the answer wins over the question
    ("It is in image 3.", "", 3, "", 3),
    ("It is in Image-2.", "", 3, "region", 2),  # region's rule only when the answer names none
    ("", "Please locate the 2th region picture in the source image.", 3, "region", 1),
    ("", "Find it in image-1 and image-2.", 2, "", 2),  # the question's last mention
    ("", "Find the dog.", 1, "", 1),
    ("", "Find the dog.", 2, "", None),
    ("It's in the seventh image.", "", 6, "", None),
])
def test_pick_target(answer, question, n, task, expected):
    assert pick_target(n, answer=answer, question=question, task=task)[0] == expected


# ----- VLM-R1 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def r1_images(tmp_path_factory) -> Path:
    return lay_out(FIXTURES / "vlm-r1" / "layout.json", tmp_path_factory.mktemp("r1") / "coco")


@pytest.fixture(scope="module")
def r1_out(r1_images, tmp_path_factory):
    from conftest import run_mirg

    out = tmp_path_factory.mktemp("r1_out") / "converted"
    proc = run_mirg("data", "convert", "vlm-r1", "--in", str(R1_FILE), "--images", str(r1_images), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_vlm_r1_boxes_stay_in_pixels_of_the_original_image(r1_out):
    samples = {s.id: s for s in read_manifest(r1_out)}
    assert check_image_files(list(samples.values()), r1_out) == []
    coco = samples["rec-sample-1"]
    assert coco.task == "refer_grounding" and coco.image_sizes == [(427, 640)] and coco.target.image == 1
    assert list(coco.target.bbox) == pytest.approx([103.93, 299.99, 238.15, 477.41])
    assert coco.question.startswith("Please provide the bounding box") and coco.question.endswith("blue shirt.")
    assert samples["rec-sample-2"].image_sizes == [WIDE] and samples["rec-sample-3"].image_sizes == [TALL]
    assert list(samples["rec-sample-3"].target.bbox) == pytest.approx([47.4, 73.9, 237.0, 369.5])
    assert list(samples["rec-sample-4"].target.bbox) == [10, 20, 300, 400]  # no normalized box: no cross-check
    assert list(samples["rec-sample-5"].target.bbox) == [0, 0, 474, 100]  # half a pixel over: clipped
    assert sorted(samples) == [f"rec-sample-{i}" for i in range(1, 6)]


def test_vlm_r1_rejections(r1_out):
    rejected = rejections(r1_out)
    assert {sid: reason.split(":")[0] for sid, reason in rejected.items()} == {
        "rec-sample-6": "solution and normalized_solution disagree",
        "rec-sample-7": "box outside the image",
        "rec-sample-8": "box inverted or empty",
        "rec-sample-9": "image file not found",
        "rec-sample-10": "unreadable box",
        "rec-sample-11": "unreadable box",
        "rec-sample-12": "malformed record",
    }
    assert "it fits a 616x900 image: width and height swapped?" in rejected["rec-sample-6"]
    assert "the 900x616 image" in rejected["rec-sample-7"]
    card = (r1_out / "README.md").read_text()
    assert "| solution and normalized_solution disagree | 1 |" in card and "| refer_grounding | 5 |" in card


def test_vlm_r1_json_lines_and_record_ids(r1_images, tmp_path, mirg):
    records = json.loads(R1_FILE.read_text())[:3]
    records[1]["id"] = "window-7"
    lines = tmp_path / "refcoco_train.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    proc = mirg("data", "convert", "vlm-r1", "--in", str(lines), "--images", str(r1_images), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [s.id for s in read_manifest(out)] == ["refcoco_train-1", "window-7", "refcoco_train-3"]


def test_vlm_r1_cross_check_catches_an_image_stored_with_width_and_height_swapped(r1_images, tmp_path, mirg):
    rotated = tmp_path / "rotated"
    shutil.copytree(r1_images, rotated)
    with Image.open(rotated / "train2014/COCO_train2014_000000581857.jpg") as img:
        img.transpose(Image.Transpose.ROTATE_90).save(rotated / "train2014/COCO_train2014_000000581857.jpg")
    one = tmp_path / "one.json"
    one.write_text(json.dumps(json.loads(R1_FILE.read_text())[:1]))
    out = tmp_path / "out"
    proc = mirg("data", "convert", "vlm-r1", "--in", str(one), "--images", str(rotated), "--out", str(out))
    assert proc.returncode == 2  # the only record is rejected
    assert "width and height swapped" in rejections(out)["one-1"]


# ----- the output feeds the rest of mirg ----------------------------------------------------------------


def test_trajectories_in_another_space_count_the_questions_that_hold_boxes(mg_out, tmp_path):
    from mirg.cli import main

    held = sum(1 for s in read_manifest(mg_out[0]) if QUESTION_BOXES in s.extra)
    assert held >= 1
    for coords, expected in (("pixel", held), ("norm1000", 0)):
        traj = tmp_path / coords
        assert main(["data", "trajectories", "--data", str(mg_out[0]), "--out", str(traj), "--detail", "brief",
                     "--coords", coords]) == 0
        card = (traj / "README.md").read_text()
        note = f"{expected} sample(s) hold boxes in their question in another space than {coords}"
        assert (note in card) == bool(expected) and ("hold boxes in their question" in card) == bool(expected)


@pytest.mark.slow
def test_converted_data_feeds_trajectories_and_an_sft_dry_run(mg_out, r1_out, tmp_path, capsys):
    from mirg.cli import main

    tiny = tmp_path / "tiny"
    assert main(["model", "init-tiny", "--family", "qwen2_5_vl", "--out", str(tiny), "--size", "s"]) == 0
    for name, data in (("mg", mg_out[0]), ("r1", r1_out)):
        traj = tmp_path / f"traj-{name}"
        assert main(["data", "trajectories", "--data", str(data), "--out", str(traj), "--detail", "brief",
                     "--coords", "resized", "--max-pixels", TINY_MAX_PIXELS]) == 0
        rows = [json.loads(line) for line in (traj / "rl.jsonl").read_text().splitlines()]
        samples = {s.id: s for s in read_manifest(data)}
        assert len(rows) == len(samples)
        assert all(row["target_image"] == samples[row["id"]].target.image for row in rows)
        capsys.readouterr()
        assert main(["sft", "--model", str(tiny), "--data", str(traj), "--output_dir", str(tmp_path / f"sft-{name}"),
                     "--dry-run"]) == 0
        printed = capsys.readouterr().out
        assert json.loads(printed[printed.index("{"):])["records"] == len(samples)


@pytest.mark.parametrize("question,task,reason", [("  ", "region", "empty question"), ("Find it.", " ", "no task")])
def test_an_empty_question_or_task_is_a_counted_rejection_whatever_the_source(question, task, reason):
    candidate = convert.Candidate(id="x-1", task=task, images=["a.jpg"], question=question, target=1,
                                  box=[10, 10, 100, 100], space=convert.PIXEL)
    assert convert.to_sample(candidate, convert.VirtualImages()) == convert.Rejection("x-1", reason)
