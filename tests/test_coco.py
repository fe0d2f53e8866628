"""COCO-format annotations in: the streaming reader, `mirg data annotate` and `mirg data compose` on real and
generated photos, each family's rule checked against the annotation file itself, and bad inputs (truncated
JSON, missing images, boxes outside their image, sizes that disagree with the files)."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image, ImageChops

import mirg.data.coco as coco_module
from coco_fixtures import instances, present_categories, write_coco_set
from mirg.cli import main
from mirg.data.coco import read_captions, read_instances
from mirg.data.jsonstream import array_items
from mirg.errors import MirgError
from mirg.geometry import iou
from mirg.schema import check_image_files, read_manifest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mig-bench"


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("coco")
    return root, write_coco_set(root)


@pytest.fixture(scope="module")
def composed(coco_set, tmp_path_factory) -> Path:
    root, _ = coco_set
    out = tmp_path_factory.mktemp("composed") / "out"
    assert main(["data", "compose", "--coco", str(root / "instances.json"), "--captions", str(root / "captions.json"),
                 "--images", str(root / "photos"), "--out", str(out), "--samples", "48", "--seed", "3"]) == 0
    return out


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("mirg: error: ") and "Traceback" not in err, err
    return err


# ----- the reader ------------------------------------------------------------------------------------------------


def test_reader_converts_boxes_to_pixels_and_counts_every_rejection(coco_set):
    root, raw = coco_set
    coco = read_instances(root / "instances.json")
    assert coco.images[900].size == (900, 616) and coco.images[901].size == (474, 739)
    wide = {o.label: o.bbox for o in coco.objects[900]}
    assert wide["dog"] == (812.5, 500.0, 900.0, 616.0)  # [x, y, w, h] -> [x1, y1, x2, y2], 0.5 px over: clipped
    tall = [(o.label, o.bbox) for o in coco.objects[901]]
    assert tall == [("cat", (50.0, 400.0, 430.0, 700.0)), ("car", (400.0, 10.0, 474.0, 60.0))]  # 0.6 px clipped
    reasons = coco.reasons()
    assert reasons == Counter({coco_module.REASON_OUTSIDE: 1, coco_module.REASON_EMPTY: 1,
                               coco_module.REASON_UNKNOWN_CATEGORY: 1, coco_module.REASON_UNKNOWN_IMAGE: 1})
    crowds = sum(1 for a in raw["annotations"] if a["iscrowd"])
    assert coco.crowd == crowds > 0
    assert coco.annotations == len(raw["annotations"])
    assert coco.attached + coco.crowd + len(coco.rejected) == len(raw["annotations"])
    crowded = next(a["image_id"] for a in raw["annotations"] if a["iscrowd"])
    assert "person" in coco.present(crowded)  # a crowd still shows its category
    assert "car" in coco.present(901) and "apple" in coco.present(901)  # so do rejected boxes


def test_reader_reads_a_box_outside_a_swapped_size_as_outside(tmp_path):
    """The same boxes against the real photo's size given as height x width: the boxes no longer fit."""
    doc = {"images": [{"id": 1, "file_name": "case076_1.jpg", "width": 616, "height": 900}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [812.5, 500, 88, 116], "iscrowd": 0}],
           "categories": [{"id": 1, "name": "dog"}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    coco = read_instances(tmp_path / "c.json")
    assert coco.objects == {} and coco.reasons() == Counter({coco_module.REASON_OUTSIDE: 1})


def test_streamed_arrays_agree_with_json_and_a_cut_file_is_one_line(tmp_path):
    rng = random.Random(5)

    def value(depth=0):
        if depth > 2 or rng.random() < 0.4:
            return rng.choice([0, -1.5e-3, 12345678901234, "é\"\\\n" * rng.randint(0, 9), True, False, None])
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {f"k{i}": value(depth + 1) for i in range(rng.randint(0, 3))}

    path = tmp_path / "x.json"
    for trial in range(40):
        doc = {"info": value(), "images": [value() for _ in range(rng.randint(0, 5))], "n": value(),
               "annotations": [value() for _ in range(rng.randint(1, 5))]}
        text = json.dumps(doc, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5)
        path.write_text(text, encoding="utf-8")
        got = list(array_items(path, ("images", "annotations"), progress=False))
        assert got == [("images", v) for v in doc["images"]] + [("annotations", v) for v in doc["annotations"]]
        path.write_text(text[:rng.randint(1, len(text) - 1)], encoding="utf-8")
        with pytest.raises(MirgError, match="breaks off at the end of the file|unreadable JSON"):
            list(array_items(path, ("images", "annotations"), progress=False))


def test_captions_are_the_first_caption_per_file_name(coco_set):
    root, raw = coco_set
    captions = read_captions(root / "captions.json")
    assert captions["case076_1.jpg"] == "A photo, number 900."  # whitespace tidied
    assert "case076_2.jpg" not in captions and len(captions) == sum(1 for i in raw["images"] if i["id"] % 2 == 0)


@pytest.mark.parametrize("text, why", [
    ('{"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "he', "breaks off at the end of the file"),
    ('[{"id": 1}]', "not a COCO instances file (no 'images' list"),
    ('{"images": [{"id": 1, "file_name": "a.jpg", "width": 9, "height": 9}], '
     '"annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}]}', "categories"),
    ('{"info": 1}', "no 'images' list"),
    ('{"images": [] "annotations": []}', "unreadable JSON"),
])
def test_broken_instances_files_are_one_line_errors(coco_set, tmp_path, capsys, text, why):
    root, _ = coco_set
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    code = main(["data", "compose", "--coco", str(bad), "--images", str(root / "photos"), "--out",
                 str(tmp_path / "out"), "--samples", "4"])
    assert code == 2 and why in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


# ----- annotate --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The revised MIG-Bench converted with the two real photos: one correspondence sample, without objects."""
    out = tmp_path_factory.mktemp("bench") / "converted"
    assert main(["data", "convert", "migbench", "--in", str(FIXTURES / "revised_MIG_bench.json"), "--images",
                 str(FIXTURES / "images"), "--out", str(out)]) == 0
    return out


def test_annotate_attaches_objects_and_captions_to_the_real_photos(coco_set, converted, tmp_path):
    root, raw = coco_set
    out = tmp_path / "annotated"
    assert main(["data", "annotate", "--data", str(converted), "--coco", str(root / "instances.json"),
                 "--captions", str(root / "captions.json"), "--out", str(out)]) == 0
    samples = read_manifest(out)
    assert check_image_files(samples, out) == []
    sample = samples[0]
    assert [Path(p).name for p in sample.images] == ["case076_1.jpg", "case076_2.jpg"]
    for k, image_id in enumerate((900, 901)):
        want = sorted((a["bbox"][0], a["bbox"][1]) for a in raw["annotations"]
                      if a["image_id"] == image_id and not a["iscrowd"])
        got = [(o.label, o.bbox) for o in sample.objects[k]]
        assert all(o[1][2] <= sample.image_sizes[k][0] and o[1][3] <= sample.image_sizes[k][1] for o in got)
        assert {(b[0], b[1]) for _, b in got} <= set(want)
    assert ("dog", (812.5, 500.0, 900.0, 616.0)) in [(o.label, o.bbox) for o in sample.objects[0]]
    assert sample.image_notes == ["A photo, number 900.", "a photo with these annotated objects: car, cat"]
    card = (out / "README.md").read_text()
    assert "| images annotated (every image of their sample matched) / all | 2 / 2 |" in card
    assert "| samples fully annotated / all | 1 / 1 |" in card
    assert "| objects attached (over the annotated images) | 4 |" in card
    assert sample.target == read_manifest(converted)[0].target  # the answer is untouched


def test_annotate_reports_a_size_that_disagrees_and_leaves_the_image_unannotated(coco_set, converted, tmp_path):
    root, raw = coco_set
    doc = json.loads((root / "instances.json").read_text())
    for image in doc["images"]:
        if image["file_name"] == "case076_2.jpg":  # width and height swapped: 739x474 instead of 474x739
            image["width"], image["height"] = image["height"], image["width"]
    (tmp_path / "swapped.json").write_text(json.dumps(doc))
    out = tmp_path / "annotated"
    assert main(["data", "annotate", "--data", str(converted), "--coco", str(tmp_path / "swapped.json"),
                 "--out", str(out)]) == 0
    sample = read_manifest(out)[0]
    assert sample.objects is None  # one image of two matched: nothing claimed for the other
    card = (out / "README.md").read_text()
    assert "## Size disagreements" in card and "| 739x474 | 474x739 |" in card
    assert "| images matched to an annotated image / all | 1 / 2 |" in card
    assert "| images annotated (every image of their sample matched) / all | 0 / 2 |" in card
    assert "| objects attached (over the annotated images) | 0 |" in card
    assert "| samples with only some images matched (left as they were) | 1 |" in card
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    row = next(r for r in rejected if r.get("reason") == "size disagrees with the file")
    assert row["coco_size"] == [739, 474] and row["file_size"] == [474, 739]


def test_annotate_refuses_a_manifest_whose_image_is_missing(coco_set, converted, tmp_path, capsys):
    root, _ = coco_set
    data = tmp_path / "data"
    shutil.copytree(converted, data)
    record = json.loads((data / "manifest.jsonl").read_text())
    record["images"][1] = "nowhere/case076_2.jpg"
    (data / "manifest.jsonl").write_text(json.dumps(record) + "\n")
    code = main(["data", "annotate", "--data", str(data), "--coco", str(root / "instances.json"), "--out",
                 str(tmp_path / "out")])
    assert code == 2 and "does not exist" in one_line_error(capsys).splitlines()[-1]


def test_annotated_benchmark_feeds_list_trajectories_the_bare_one_only_brief(coco_set, converted, tmp_path, capsys):
    root, _ = coco_set
    out = tmp_path / "annotated"
    assert main(["data", "annotate", "--data", str(converted), "--coco", str(root / "instances.json"), "--out",
                 str(out)]) == 0
    assert main(["data", "trajectories", "--data", str(out), "--out", str(tmp_path / "chain"), "--detail",
                 "chain"]) == 0
    text = json.loads((tmp_path / "chain" / "sft.jsonl").read_text())["completion"][0]["content"][0]["text"]
    assert text.startswith("<think>Image 1: ") and "cat" in text and "The target is the " in text
    capsys.readouterr()
    assert main(["data", "trajectories", "--data", str(converted), "--out", str(tmp_path / "bare"), "--detail",
                 "chain"]) == 2
    assert "use --detail brief" in one_line_error(capsys)


# ----- compose ---------------------------------------------------------------------------------------------------


def migbench_questions(task: str) -> list[str]:
    bench = json.loads((FIXTURES / "revised_MIG_bench.json").read_text())
    return [r["question"].strip() for r in bench if r["task"] == task]


def test_composed_questions_are_migbench_wording(composed):
    group = {q.split("<|object_ref_start|>")[0] for q in migbench_questions("group_grounding")}
    fixed = {task: set(migbench_questions(task)) for task in ("common_object", "refer_grounding", "region")}
    seen = Counter()
    for r in records(composed):
        q = r["question"]
        if r["task"] == "group_grounding":
            prefix, phrase = next((p, q[len(p):]) for p in group if q.startswith(p))
            assert phrase.rstrip(".").split(" ", 1)[1] == r["objects"][r["target"]["image"] - 1][
                r["hints"]["target_object"]]["label"]
            seen[prefix] += 1
        else:
            assert q in fixed[r["task"]], q
    assert len(seen) >= 3  # several of MIG-Bench's phrasings, not one


def test_every_family_follows_its_rule_against_the_annotation_file(coco_set, composed):
    root, raw = coco_set
    shown = present_categories(raw)
    by_id = {image["id"]: image for image in raw["images"]}
    tasks = Counter()
    for r in records(composed):
        task, ids, t = r["task"], r["coco_images"], r["target"]["image"]
        label = r["objects"][t - 1][r["hints"]["target_object"]]["label"]
        tasks[task] += 1
        assert r["target"]["bbox"] == r["objects"][t - 1][r["hints"]["target_object"]]["bbox"]
        if task == "common_object":
            assert set.intersection(*(shown.get(i, set()) for i in ids)) == {label}
            assert all(len(instances(raw, i, label)) == 1 and not _crowd(raw, i, label) for i in ids)
            assert r["question"].endswith(f"in the {t}th image.")
        elif task == "group_grounding":
            assert len(instances(raw, ids[t - 1], label)) == 1
            assert all(label not in shown.get(i, set()) for k, i in enumerate(ids, start=1) if k != t)
        elif task == "refer_grounding":
            assert len(ids) == 2 and t == 2 and ids[0] != ids[1]
            assert len(instances(raw, ids[1], label)) == 1 and not _crowd(raw, ids[1], label)
            assert crop_matches(composed / r["images"][0], root / "photos" / by_id[ids[0]]["file_name"],
                                instances(raw, ids[0], label))
        else:  # region: the source photo first, then crops of it; the k-th region asked
            assert t == 1 and len(set(ids)) == 1
            k = int(r["question"].split("locate the ")[1].split("th region")[0])
            source = root / "photos" / by_id[ids[0]]["file_name"]
            assert crop_matches(composed / r["images"][k], source, [r["target"]["bbox"]])
        box = r["target"]["bbox"]
        assert any(iou(box, b) > 0.98 for b in instances(raw, ids[t - 1], label))  # a box of the file (clipped)
    assert set(tasks) == {"common_object", "group_grounding", "refer_grounding", "region"}


def _crowd(raw: dict, image_id: int, label: str) -> bool:
    names = {c["id"]: c["name"] for c in raw["categories"]}
    return any(a["iscrowd"] and a["image_id"] == image_id and names[a["category_id"]] == label
               for a in raw["annotations"])


def crop_matches(crop_path: Path, photo_path: Path, boxes: list) -> bool:
    """True when the crop is the pixels of one of ``boxes`` (rounded outward) cut from the photo."""
    import math

    with Image.open(crop_path) as crop, Image.open(photo_path) as photo:
        crop, photo = crop.convert("RGB"), photo.convert("RGB")
        for b in boxes:
            window = (max(0, math.floor(b[0])), max(0, math.floor(b[1])), min(photo.width, math.ceil(b[2])),
                      min(photo.height, math.ceil(b[3])))
            piece = photo.crop(window)
            if piece.size == crop.size:
                diff = ImageChops.difference(piece, crop)
                if max(max(band) for band in diff.getextrema()) <= 40:  # JPEG's loss only
                    return True
    return False


def test_compose_output_passes_the_manifest_check_with_objects_and_notes_everywhere(composed):
    samples = read_manifest(composed)
    assert len(samples) == 48 and check_image_files(samples, composed) == []
    for s in samples:
        assert s.objects is not None and s.image_notes is not None and len(s.image_notes) == s.num_images
        for k, (rel, notes) in enumerate(zip(s.images, s.image_notes)):
            if rel.startswith("images/"):
                assert notes.startswith("a close-up of ") and len(s.objects[k]) == 1
    captioned = [n for s in samples for n in s.image_notes if n.startswith("A photo, number ")]
    assert captioned and all(int(n.split()[-1].rstrip(".")) % 2 == 0 for n in captioned)
    card = (composed / "README.md").read_text()
    for task in ("common_object", "group_grounding", "refer_grounding", "region"):
        assert f"- **{task}**: " in card and (composed / "examples" / f"{task}.png").is_file()


def test_compose_is_deterministic_and_balances_the_target_image(coco_set, composed, tmp_path):
    root, _ = coco_set
    again = tmp_path / "again"
    argv = ["data", "compose", "--coco", str(root / "instances.json"), "--captions", str(root / "captions.json"),
            "--images", str(root / "photos"), "--samples", "48"]
    assert main(argv + ["--out", str(again), "--seed", "3"]) == 0
    assert same_records(again) == same_records(composed)
    crops = sorted(p.name for p in (composed / "images").iterdir())
    assert crops and sorted(p.name for p in (again / "images").iterdir()) == crops
    for p in (composed / "images").iterdir():
        assert (again / "images" / p.name).read_bytes() == p.read_bytes()
    assert main(argv + ["--out", str(tmp_path / "other"), "--seed", "4"]) == 0
    assert [r["coco_images"] for r in records(tmp_path / "other")] != [r["coco_images"] for r in records(composed)]
    groups: dict = {}
    for r in records(composed):
        position = r["target"]["image"]
        if r["task"] == "region":
            position = int(r["question"].split("locate the ")[1].split("th")[0])
        groups.setdefault((r["task"], len(r["images"])), Counter())[position] += 1
    for (task, n), counts in groups.items():
        allowed = {"refer_grounding": [2], "region": list(range(1, n))}.get(task, list(range(1, n + 1)))
        full = [counts.get(k, 0) for k in allowed]
        assert set(counts) <= set(allowed) and max(full) - min(full) <= 1, (task, n, counts)


def same_records(folder: Path) -> list[dict]:
    """The records with each photo's path resolved (output folders at other depths write other relative paths)."""
    out = []
    for r in records(folder):
        r["images"] = [p if p.startswith("images/") else str((folder / p).resolve()) for p in r["images"]]
        out.append(r)
    return out


@pytest.mark.parametrize("task, need", [("diff", "added, removed or changed"), ("view_diff", "viewpoints"),
                                        ("multi_view", "several cameras"), ("object_tracking", "tracks"),
                                        ("correspondence", "part or function"), ("reasoning", "reasoning")])
def test_families_detection_cannot_express_are_refused(coco_set, tmp_path, capsys, task, need):
    root, _ = coco_set
    code = main(["data", "compose", "--coco", str(root / "instances.json"), "--images", str(root / "photos"),
                 "--out", str(tmp_path / "out"), "--samples", "4", "--tasks", f"common_object,{task}"])
    err = one_line_error(capsys)
    assert code == 2 and f"--tasks {task}: " in err and need in err and len(err.splitlines()) == 1


def test_missing_photos_and_sizes_that_disagree_are_counted_and_never_used(coco_set, tmp_path):
    root, raw = coco_set
    photos = tmp_path / "photos"
    shutil.copytree(root / "photos", photos)
    (photos / "gen_005.png").unlink()
    doc = json.loads((root / "instances.json").read_text())
    for image in doc["images"]:
        if image["file_name"] in ("case076_1.jpg", "case076_2.jpg"):
            image["width"], image["height"] = image["height"], image["width"]
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert main(["data", "compose", "--coco", str(tmp_path / "instances.json"), "--images", str(photos), "--out",
                 str(out), "--samples", "40", "--seed", "1"]) == 0
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    by_reason = Counter(r["reason"] for r in rejected if "image" in r and r.get("annotation") is None
                        and "image_id" not in r)
    assert by_reason == Counter({"image file missing": 1, "size disagrees with the file": 2})
    detail = next(r["detail"] for r in rejected if r.get("image") == "case076_1.jpg")
    assert detail == "annotations say 616x900, the file is 900x616"
    used = {i for r in records(out) for i in r["coco_images"]}
    assert used and not used & {105, 900, 901}
    card = (out / "README.md").read_text()
    assert "| rejected: image file missing | 1 |" in card and "| rejected: size disagrees with the file | 2 |" in card


def test_small_objects_are_never_cut_out_or_asked_for(coco_set, composed, tmp_path):
    root, raw = coco_set
    small = sum(1 for a in raw["annotations"] if not a["iscrowd"] and min(a["bbox"][2:]) < 32
                and a["bbox"][2] > 0 and a["image_id"] != 777 and a["category_id"] != 99)
    assert small > 0 and f"| objects smaller than 32 px on a side (never cut out or asked for) | {small} |" in \
        (composed / "README.md").read_text()
    for r in records(composed):
        box = r["target"]["bbox"]
        assert min(box[2] - box[0], box[3] - box[1]) >= 32
        for rel, size in zip(r["images"], r["image_sizes"]):
            if rel.startswith("images/"):
                assert min(size) >= 32


def test_compose_refuses_what_the_photos_cannot_give(coco_set, tmp_path, capsys):
    root, _ = coco_set
    code = main(["data", "compose", "--coco", str(root / "instances.json"), "--images", str(root / "photos"),
                 "--out", str(tmp_path / "out"), "--samples", "8", "--tasks", "region", "--min-images", "5",
                 "--max-images", "5"])
    assert code == 2 and "region with 5 images: no photo has 4 distinct objects" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()  # refused before anything was written
    code = main(["data", "compose", "--coco", str(root / "instances.json"), "--images", str(tmp_path / "nothing"),
                 "--out", str(tmp_path / "out"), "--samples", "8"])
    assert code == 2 and "no such folder" in one_line_error(capsys)
    shutil.copytree(root / "photos", tmp_path / "out" / "images")
    (tmp_path / "out" / "manifest.jsonl").write_text("")  # looks like an earlier run's folder
    code = main(["data", "compose", "--coco", str(root / "instances.json"), "--images", str(tmp_path / "out" /
                 "images"), "--out", str(tmp_path / "out"), "--samples", "8"])
    assert code == 2 and "which a run replaces" in one_line_error(capsys)
    assert (tmp_path / "out" / "images" / "case076_1.jpg").is_file()
    code = main(["data", "compose", "--coco", str(root / "instances.json"), "--images", str(tmp_path), "--out",
                 str(tmp_path / "new"), "--samples", "8"])
    assert code == 2 and "none of the 32 annotated images is there" in one_line_error(capsys)


def test_composed_samples_feed_template_trajectories_that_score_perfectly(composed, tmp_path):
    from mirg.eval.score_files import score_files
    from mirg.geometry import CoordSpace

    for detail in ("chain", "brief", "full"):
        out = tmp_path / detail
        assert main(["data", "trajectories", "--data", str(composed), "--out", str(out), "--detail", detail,
                     "--coords", "norm1000"]) == 0
        rows = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
        preds = out / "predictions.jsonl"
        preds.write_text("".join(json.dumps({"id": r["id"], "response": r["completion"][0]["content"][0]["text"]})
                                 + "\n" for r in rows))
        metrics, _ = score_files(composed, [preds], CoordSpace("norm1000"))
        assert all(m["acc@0.5"] == 1.0 for m in metrics["tasks"].values()), detail
    brief = [json.loads(line) for line in (tmp_path / "brief" / "sft.jsonl").read_text().splitlines()]
    texts = " ".join(r["completion"][0]["content"][0]["text"] for r in brief)
    assert "A photo, number" not in texts and "a photo, number" in texts  # captions as notes, in the summary
    assert "a close-up of a" in texts and "region picture" in texts


def test_teacher_is_told_the_real_objects_and_notes(composed):
    from mirg.data.teacher import annotation_text
    from mirg.data.trajectories import TrajectoryOptions, box_text, note_text

    opts = TrajectoryOptions()
    for sample in read_manifest(composed)[:8]:
        text = annotation_text(sample, opts)
        for k, (objects, note, size) in enumerate(zip(sample.objects, sample.image_notes, sample.image_sizes), 1):
            assert f"Image {k}: {note_text(note)}." in text
            for o in objects:
                assert f"{o.label} {box_text(o.bbox, size, opts.coords)}" in text


@pytest.mark.slow
def test_composed_and_annotated_trajectories_pass_an_sft_dry_run_on_a_tiny_model(coco_set, composed, converted,
                                                                                  tmp_path, capsys):
    root, _ = coco_set
    model = tmp_path / "tiny"
    assert main(["model", "init-tiny", "--family", "qwen2_5_vl", "--out", str(model), "--size", "s"]) == 0
    annotated = tmp_path / "annotated"
    assert main(["data", "annotate", "--data", str(converted), "--coco", str(root / "instances.json"), "--out",
                 str(annotated)]) == 0
    for data, records_there in ((composed, 48), (annotated, 1)):
        traj = tmp_path / f"traj-{data.name}"
        assert main(["data", "trajectories", "--data", str(data), "--out", str(traj), "--detail", "chain",
                     "--coords", "resized", "--max-pixels", "50176"]) == 0
        capsys.readouterr()
        assert main(["sft", "--model", str(model), "--data", str(traj), "--output_dir", str(tmp_path / "run"),
                     "--dry-run"]) == 0
        printed = capsys.readouterr().out
        report = json.loads(printed[printed.index("{"):])
        assert report["records"] == records_there and report["coords"] == "resized"
        assert not (tmp_path / "run").exists()
