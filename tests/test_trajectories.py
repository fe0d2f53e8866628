"""Template trajectories: exact file formats, determinism, perfect scores in every coordinate space,
shorter trajectories without annotations, and clear errors on bad input."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mirg.answer import check_strict, parse_answer, think_block
from mirg.cli import main
from mirg.data.trajectories import (
    INTRO, LOCATE, SOUGHT, SUMMARY, TrajectoryOptions, box_text, format_box, load_dataset, names_image,
    template_completion,
)
from mirg.geometry import CoordSpace, iou
from mirg.errors import MirgError
from mirg.prompts import user_message
from mirg.schema import read_manifest
from mirg.eval.score_files import score_files

SIZES = [(96, 64), (80, 80), (200, 150), (333, 217), (64, 120)]
COLORS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60), "orange": (250, 150, 20)}
SHAPES = ["circle", "square", "triangle"]
TASKS = ["common_object", "spot_diff", "group_grounding"]


def _random_box(rng: random.Random, size: tuple[int, int]) -> list[int]:
    w, h = size
    bw, bh = rng.randint(6, max(7, w // 3)), rng.randint(6, max(7, h // 3))
    x1, y1 = rng.randint(0, w - bw), rng.randint(0, h - bh)
    return [x1, y1, x1 + bw, y1 + bh]


def _image_objects(rng: random.Random, size: tuple[int, int]) -> list[dict]:
    objects = []
    for _ in range(rng.randint(1, 3)):
        color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
        attrs = {"color": color, "shape": shape, "size": rng.choice(["small", "large"])}
        objects.append({"label": f"{color} {shape}", "bbox": _random_box(rng, size), "attributes": attrs})
    return objects


def _draw(path: Path, size: tuple[int, int], objects: list[dict]) -> None:
    img = Image.new("RGB", size, (235, 235, 235))
    draw = ImageDraw.Draw(img)
    for obj in objects:
        draw.rectangle(obj["bbox"], fill=COLORS[obj["attributes"]["color"]])
    img.save(path)


def _record(rng: random.Random, i: int, root: Path) -> dict:
    n = rng.randint(2, 4)
    sizes = [rng.choice(SIZES) for _ in range(n)]
    objects = [_image_objects(rng, s) for s in sizes]
    images = []
    for k, (size, objs) in enumerate(zip(sizes, objects), start=1):
        rel = f"images/{i:03d}_{k}.png"
        _draw(root / rel, size, objs)
        images.append(rel)
    t = rng.randint(1, n)
    j = rng.randrange(len(objects[t - 1]))
    target_obj = objects[t - 1][j]
    ref_image = rng.choice([k for k in range(1, n + 1) if k != t])
    hints = {"target_object": j, "reference": {"image": ref_image, "object": 0},
             "rule": f"Only image {t} holds an object like the reference."}
    if i % 3 == 2:
        hints = None  # the fallbacks: best-matching object, no reference, the question restated
    record = {
        "id": f"s{i:03d}", "task": TASKS[i % len(TASKS)], "images": images,
        "image_sizes": [list(s) for s in sizes],
        "question": f"Which image has the {target_obj['label']} like the one in image {ref_image}? Locate it.",
        "target": {"image": t, "bbox": target_obj["bbox"]},
        "objects": objects,
        "image_notes": [" and ".join(o["label"] for o in objs) for objs in objects],
    }
    if hints is not None:
        record["hints"] = hints
    return record


def write_dataset(root: Path, n: int = 12, bare: bool = False, seed: int = 0) -> Path:
    """A dataset folder with real PNGs; ``bare`` drops objects, image_notes and hints."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = [_record(rng, i, root) for i in range(n)]
    if bare:
        for r in records:
            for key in ("objects", "image_notes", "hints"):
                r.pop(key, None)
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def completion_text(row: dict) -> str:
    return row["completion"][0]["content"][0]["text"]


def score_rows(data: Path, out: Path, space: CoordSpace) -> dict:
    preds = out / "predictions.jsonl"
    preds.write_text("".join(
        json.dumps({"id": r["id"], "response": completion_text(r)}) + "\n" for r in read_jsonl(out / "sft.jsonl")
    ))
    metrics, _ = score_files(data, [preds], space)
    return metrics


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "ds", n=18)


@pytest.mark.parametrize(
    "coords,extra",
    [("pixel", []), ("norm1000", []), ("norm1", []), ("resized", ["--max-pixels", "20000", "--min-pixels", "3136"])],
)
@pytest.mark.parametrize("detail", ["answer", "list", "box-list", "mark-list", "chain", "brief", "full"])
def test_template_answers_score_perfectly(dataset, tmp_path, coords, extra, detail):
    out = tmp_path / "out"
    argv = ["data", "trajectories", "--data", str(dataset), "--out", str(out), "--coords", coords, "--detail", detail]
    assert main(argv + extra) == 0
    space = CoordSpace(coords, 3136, 20000) if coords == "resized" else CoordSpace(coords)
    metrics = score_rows(dataset, out, space)
    assert set(metrics["tasks"]) == set(TASKS)
    for task, m in metrics["tasks"].items():
        assert m["acc@0.5"] == 1.0, task
        assert m["image_acc"] == 1.0, task
        assert m["format_rate"] == 1.0, task


def test_answer_detail_only_names_the_target_image(dataset, tmp_path):
    out = tmp_path / "answer"
    assert main(["data", "trajectories", "--data", str(dataset), "--out", str(out), "--detail", "answer"]) == 0
    samples = {s.id: s for s in read_manifest(dataset)}
    for row in read_jsonl(out / "sft.jsonl"):
        text = row["completion"][0]["content"][0]["text"]
        think = text[len("<think>"):text.index("</think>")]
        assert think.endswith(f" is in image {samples[row['id']].target.image}.") and "[" not in think, text


@pytest.mark.parametrize("detail", ["list", "box-list", "mark-list"])
def test_list_detail_lists_every_object_so_the_listing_score_is_perfect(dataset, tmp_path, detail):
    from mirg.eval.perception import listed_objects, score_listing

    out = tmp_path / "list"
    assert main(["data", "trajectories", "--data", str(dataset), "--out", str(out), "--detail", detail,
                 "--coords", "norm1000"]) == 0
    samples = {s.id: s for s in read_manifest(dataset)}
    rows = read_jsonl(out / "sft.jsonl")
    assert rows
    for row in rows:
        sample, text = samples[row["id"]], row["completion"][0]["content"][0]["text"]
        score = score_listing(sample, text, CoordSpace("norm1000"))
        assert score.objects == sum(len(objs) for objs in sample.objects)
        assert score.labels_found == score.boxes_found == score.objects, text
        think = text[len("<think>"):text.index("</think>")]
        assert think.endswith(f" is in image {sample.target.image}."), text
        first = think.split(": ", 1)[1]
        assert first.startswith("[") if detail == "box-list" else first[0].isalpha(), text
        assert think.count("(the target)") == (detail == "mark-list"), text
        if detail == "mark-list":  # the box after the mark is the answer's, in the target image's list
            marked = think.split("(the target) ", 1)[1]
            answer = text[text.index('"bbox_2d": ') + len('"bbox_2d": '):text.index("]}") + 1]
            assert marked.startswith(answer), text
            section = think[:think.index("(the target)")]
            assert sample.num_images == 1 or section.rfind("Image ") == section.rfind(f"Image {sample.target.image}:")
        if sample.num_images == 1:
            xs = [box[0] + box[2] for _, box in listed_objects(think)]
            assert xs == sorted(xs) and think.startswith("Objects: "), text
        else:
            assert all(f"Image {k}: " in think for k in range(1, sample.num_images + 1)), text


@pytest.mark.parametrize("order", ["left-to-right", "label"])
def test_chain_lists_every_image_by_label_then_the_target_image_with_boxes(tmp_path, order):
    """``chain``: each image's labels in the order asked (the outlined object marked), the target named with its
    image, then only the target image's objects with boxes, the mark on the target and the answer's box after it."""
    from mirg.eval.perception import listed_objects

    data = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(data), "--samples", "30", "--seed", "4", "--image-size", "112"]) == 0
    out = tmp_path / "chain"
    assert main(["data", "trajectories", "--data", str(data), "--out", str(out), "--detail", "chain",
                 "--coords", "norm1000", "--order", order]) == 0
    ordered_in = by_label if order == "label" else left_to_right_by_centre
    samples = {s.id: s for s in read_manifest(data)}
    outlined = 0
    for row in read_jsonl(out / "sft.jsonl"):
        sample, text = samples[row["id"]], completion_text(row)
        think, k = think_block(text), sample.target.image
        target = next(o for o in sample.objects[k - 1] if tuple(o.bbox) == tuple(sample.target.bbox))
        lists, rest = think.split(" The target is the ", 1)
        for i, objects in enumerate(sample.objects, start=1):
            ordered = ordered_in(objects)
            labels = "; ".join(o.label + (" outlined" if o.attributes.get("outlined") else "") for o in ordered)
            assert f"Image {i}: {labels}." in lists, text
            outlined += sum(1 for o in objects if o.attributes.get("outlined"))
        assert "[" not in lists and rest.startswith(f"{target.label} in image {k}. In image {k}: "), text
        listed = listed_objects(rest)
        assert [label for label, _ in listed] == [o.label for o in ordered_in(sample.objects[k - 1])], text
        answer = parse_answer(text)
        assert rest.count("(the target)") == 1
        marked = rest.split("(the target) ", 1)[1]
        assert marked.startswith(json.dumps([int(v) for v in answer.bbox])) and answer.image == k, text
    assert outlined > 0  # the synthetic families outline reference objects, and the lists say which


def test_chain_analysis_reads_template_answers_as_perfect(tmp_path):
    """experiments/chain_analysis.py reads chain answers back with the writer's own phrases: the template
    answers see, decide, mark and copy right on every sample."""
    import subprocess
    import sys

    data, out = tmp_path / "synth", tmp_path / "chain"
    assert main(["data", "synth", "--out", str(data), "--samples", "40", "--seed", "9", "--image-size", "112"]) == 0
    assert main(["data", "trajectories", "--data", str(data), "--out", str(out), "--detail", "chain",
                 "--coords", "norm1000"]) == 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "response": completion_text(r)}) + "\n" for r in read_jsonl(out / "sft.jsonl")))
    script = Path(__file__).resolve().parents[1] / "experiments" / "chain_analysis.py"
    proc = subprocess.run([sys.executable, str(script), "--data", str(data), "--run", str(run)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)["all"]
    assert counts["n"] == 40 and counts["outlined_samples"] > 0
    for name in ("seen", "image_right", "label_right", "decided", "mark_on_target", "copied", "correct"):
        assert counts[name] == 40, (name, counts)
    assert counts["outline_seen"] == counts["outlined_samples"]
    assert counts["mark_shape_only"] == counts["mark_colour_only"] == 0
    # Boxes are listed for the target's image only: its objects all count as listed, with their boxes.
    manifest = read_manifest(data)
    target_objects = sum(len(s.objects[s.target.image - 1]) for s in manifest)
    assert counts["objects"] == sum(len(objs) for s in manifest for objs in s.objects) > target_objects
    assert counts["listed"] == target_objects <= counts["listed_boxed"]
    # The mark moved to the target image's next entry: counted by the half of the label it shares.
    moved, shape_only, colour_only = [], 0, 0
    for r in read_jsonl(out / "sft.jsonl"):
        text = completion_text(r)
        head, final = text.split("In image ", 1)[0], "In image " + text.split("In image ", 1)[1]
        entries = re.findall(r"([a-z]+ [a-z]+)( \(the target\))? \[", final)
        at = next(i for i, (_, mark) in enumerate(entries) if mark)
        if len(entries) > 1:
            other = entries[(at + 1) % len(entries)][0]
            final = final.replace(" (the target)", "").replace(f"{other} [", f"{other} (the target) [", 1)
            (colour, shape), (want_colour, want_shape) = other.split(), entries[at][0].split()
            shape_only += shape == want_shape
            colour_only += colour == want_colour
        moved.append(json.dumps({"id": r["id"], "response": head + final}) + "\n")
    (run / "predictions.jsonl").write_text("".join(moved))
    proc = subprocess.run([sys.executable, str(script), "--data", str(data), "--run", str(run)],
                          capture_output=True, text=True, timeout=120)
    counts = json.loads(proc.stdout)["all"]
    assert shape_only + colour_only > 0 and counts["mark_on_target"] < 40
    assert (counts["mark_shape_only"], counts["mark_colour_only"]) == (shape_only, colour_only)
    wrong = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "none"), "--run", str(run)],
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and wrong.stderr.startswith("chain_analysis: ") and "Traceback" not in wrong.stderr


def left_to_right_by_centre(objects):
    return sorted(objects, key=lambda o: (o.bbox[0] + o.bbox[2], o.bbox[1] + o.bbox[3]))


ordered_in = left_to_right_by_centre


def by_label(objects):
    return sorted(objects, key=lambda o: (o.label, o.bbox[0] + o.bbox[2], o.bbox[1] + o.bbox[3]))


@pytest.mark.parametrize("detail", ["list", "chain"])
def test_label_order_lists_alphabetically_and_still_scores_perfectly(dataset, tmp_path, detail):
    out = tmp_path / "out"
    assert main(["data", "trajectories", "--data", str(dataset), "--out", str(out), "--coords", "norm1000",
                 "--detail", detail, "--order", "label"]) == 0
    metrics = score_rows(dataset, out, CoordSpace("norm1000"))
    assert all(m["acc@0.5"] == 1.0 and m["format_rate"] == 1.0 for m in metrics["tasks"].values())
    samples = {s.id: s for s in read_manifest(dataset)}
    differs = 0
    for row in read_jsonl(out / "sft.jsonl"):
        think, sample = think_block(completion_text(row)), samples[row["id"]]
        for k, objects in enumerate(sample.objects, start=1):
            segment = think.split(f"Image {k}: ", 1)[1].split(".", 1)[0]  # the first list of image k
            labels = [o.label for o in by_label(objects)]
            assert re.findall(r"[a-z]+ [a-z]+", segment) == labels, think
            differs += labels != [o.label for o in left_to_right_by_centre(objects)]
    assert differs > 0  # the two orders are not the same lists


def test_an_unknown_order_is_refused_by_name():
    with pytest.raises(MirgError, match="unknown --order 'size'"):
        TrajectoryOptions(CoordSpace("pixel"), "chain", "size")


def test_files_have_the_exact_formats(dataset, tmp_path):
    out = tmp_path / "deep" / "out"
    assert main(["data", "trajectories", "--data", str(dataset), "--out", str(out), "--coords", "norm1000"]) == 0
    samples = {s.id: s for s in read_manifest(dataset)}
    sft, rl = read_jsonl(out / "sft.jsonl"), read_jsonl(out / "rl.jsonl")
    assert [r["id"] for r in sft] == [r["id"] for r in rl] == list(samples)
    for row, rl_row in zip(sft, rl):
        s = samples[row["id"]]
        assert set(row) == {"id", "task", "images", "image_sizes", "prompt", "completion"}
        assert row["prompt"] == rl_row["prompt"] == user_message(s.question, s.num_images, "norm1000")
        assert row["images"] == rl_row["images"]
        assert row["image_sizes"] == rl_row["image_sizes"]
        for rel, size in zip(row["images"], s.image_sizes):
            assert not Path(rel).is_absolute()
            with Image.open(out / rel) as img:
                assert img.size == tuple(size)
        assert len(row["completion"]) == 1 and row["completion"][0]["role"] == "assistant"
        check_strict(completion_text(row), s.num_images)
        assert set(rl_row) == {"id", "task", "images", "prompt", "target_image", "target_box", "image_sizes"}
        assert rl_row["target_image"] == s.target.image and rl_row["task"] == s.task
        assert rl_row["target_box"] == list(s.target.bbox)
        assert rl_row["image_sizes"] == [list(z) for z in s.image_sizes]
    record = json.loads((out / "trajectories.json").read_text())
    assert record == {"coords": "norm1000", "min_pixels": None, "max_pixels": None, "model": None}
    readme = (out / "README.md").read_text()
    assert "mode: template" in readme and "coords: norm1000" in readme and "detail: brief" in readme
    for task in TASKS:
        n = sum(1 for s in samples.values() if s.task == task)
        assert f"| {task} | {n} | {n} | {n} |" in readme


def test_determinism(dataset, tmp_path):
    for name in ("a", "b"):
        argv = ["data", "trajectories", "--data", str(dataset), "--out", str(tmp_path / name), "--detail", "full"]
        assert main(argv) == 0
    for f in ("sft.jsonl", "rl.jsonl", "README.md"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_reasoning_follows_the_steps(dataset):
    samples = read_manifest(dataset)
    opts = TrajectoryOptions(CoordSpace("pixel"), "brief")
    for s in samples:
        think = think_block(template_completion(s, opts))
        k = s.target.image
        assert names_image(think, k)
        for i, note in enumerate(s.image_notes, start=1):  # (a) every image summed up from its note
            assert f"image {i}" in think.lower() and note in think
        hints = s.extra.get("hints")
        if hints:  # (b) the reference and its attributes, (c) the rule
            ref = s.objects[hints["reference"]["image"] - 1][hints["reference"]["object"]]
            assert ref.label in think and f"color {ref.attributes['color']}" in think
            assert hints["rule"] in think
        else:
            assert s.question in think
        assert box_text(s.target.bbox, s.target_size(), opts.coords) in think  # (d)


def test_full_detail_lists_every_object_in_the_coordinate_space(dataset):
    opts = TrajectoryOptions(CoordSpace("norm1"), "full")
    brief = TrajectoryOptions(CoordSpace("norm1"), "brief")
    for s in read_manifest(dataset):
        think = think_block(template_completion(s, opts))
        short = think_block(template_completion(s, brief))
        for objs, size in zip(s.objects, s.image_sizes):
            for o in objs:
                text = box_text(o.bbox, size, opts.coords)
                assert f"{o.label} {text}" in think
        assert len(short) < len(think)


def test_phrasings_vary_between_samples(dataset):
    samples = read_manifest(dataset)
    opts = TrajectoryOptions()
    thinks = [think_block(template_completion(s, opts)) for s in samples]
    used_summary = {t for t in SUMMARY if any(t.split("{")[0] and t.split("{")[0] in x for x in thinks)}
    used_locate = {t for t in LOCATE if any(t.format(k=1, the_label="", The_label="", box="")[:8] in x for x in thinks)}
    assert len(used_summary) >= 2 and len(used_locate) >= 2


def test_missing_annotations_give_shorter_trajectories(tmp_path, capsys):
    data = write_dataset(tmp_path / "bare", n=9, bare=True)
    out = tmp_path / "out"
    assert main(["data", "trajectories", "--data", str(data), "--out", str(out), "--detail", "brief"]) == 0
    err = capsys.readouterr().err
    assert "9 of 9 sample(s) without objects" in err and "9 of 9 sample(s) without image_notes" in err
    assert err.count("warning") == 2
    metrics = score_rows(data, out, CoordSpace("pixel"))
    assert all(m["acc@0.5"] == 1.0 and m["image_acc"] == 1.0 for m in metrics["tasks"].values())
    for row in read_jsonl(out / "sft.jsonl"):  # only (c) and (d): no summaries, no reference
        think = think_block(completion_text(row))
        assert think.startswith("The question says: ") and not any(p.split("{")[0] in think for p in INTRO + SOUGHT)
    assert "9 sample(s) without objects" in (out / "README.md").read_text()


@pytest.mark.parametrize("detail", ["list", "box-list", "mark-list", "chain", "full"])
def test_list_details_refuse_a_manifest_without_objects(tmp_path, capsys, detail):
    """A detail that lists every image's objects would silently write shorter trajectories without them: refused in
    one line naming the detail that works, before anything is written."""
    data = write_dataset(tmp_path / "bare", n=4, bare=True)
    lines = (data / "manifest.jsonl").read_text().splitlines()
    annotated = write_dataset(tmp_path / "full", n=4)  # one sample of four with objects: still refused
    lines[0] = (annotated / "manifest.jsonl").read_text().splitlines()[0].replace("images/", "../full/images/")
    (data / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    first_bare = json.loads(lines[1])["id"]
    out = tmp_path / "out"
    modes = [["--mode", "template"]]
    if detail == "full":  # the teacher is asked to list every object only in full detail
        modes.append(["--mode", "teacher", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])
    for mode in modes:
        assert main(["data", "trajectories", "--data", str(data), "--out", str(out), "--detail", detail] + mode) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"mirg: error: --detail {detail} lists every image's objects, but 3 of 4 sample(s) have no "
                       f"object annotations (the first: {first_bare}); use --detail brief, or attach objects first "
                       "(mirg data annotate)"), err
        assert not out.exists()


def test_brief_works_on_a_converted_migbench_manifest(tmp_path):
    """A converted benchmark has no annotations: brief names the target image and restates the question."""
    bench = Path(__file__).resolve().parent / "fixtures" / "mig-bench"
    data = tmp_path / "converted"
    assert main(["data", "convert", "migbench", "--in", str(bench / "revised_MIG_bench.json"), "--images",
                 str(bench / "images"), "--out", str(data)]) == 0
    out = tmp_path / "brief"
    assert main(["data", "trajectories", "--data", str(data), "--out", str(out), "--detail", "brief", "--coords",
                 "norm1000"]) == 0
    sample = read_manifest(data)[0]
    (row,) = read_jsonl(out / "sft.jsonl")
    text = completion_text(row)
    assert row["id"] == sample.id and check_strict(text, 2).image == sample.target.image == 2
    assert think_block(text).startswith("The question says: You are now presented with two objects.")
    answer = parse_answer(text)
    size = sample.target_size()
    assert size == (474, 739)
    assert iou(CoordSpace("norm1000").to_pixels(answer.bbox, size), sample.target.bbox) > 0.99


def test_notes_missing_but_objects_present(tmp_path):
    data = write_dataset(tmp_path / "d", n=3)
    lines = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines()]
    for r in lines:
        del r["image_notes"]
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    s = read_manifest(data)[0]
    think = think_block(template_completion(s, TrajectoryOptions()))
    for k, objs in enumerate(s.objects, start=1):
        assert f"image {k}" in think.lower() and objs[0].label in think


def test_target_falls_back_to_best_overlapping_object(tmp_path):
    data = write_dataset(tmp_path / "d", n=3)
    s = read_manifest(data)[2]  # written without hints
    assert "hints" not in s.extra
    think = think_block(template_completion(s, TrajectoryOptions()))
    best = max(s.objects[s.target.image - 1], key=lambda o: iou(o.bbox, s.target.bbox))
    assert f"the {best.label}" in think


def test_collapsed_boxes_are_widened():
    space = CoordSpace("norm1000")
    assert format_box((99.9, 10, 100.0, 10.2), (100, 5000), space) == [999, 2, 1000, 3]
    assert format_box((0, 0, 0.2, 0.2), (1000, 1000), CoordSpace("norm1")) == [0.0, 0.0, 0.001, 0.001]
    assert format_box((10.2, 3.6, 40.4, 20.5), (64, 64), CoordSpace("pixel")) == [10, 4, 40, 20]


def test_hints_naming_no_object_are_an_error(tmp_path, capsys):
    data = write_dataset(tmp_path / "d", n=2)
    lines = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines()]
    lines[0]["hints"]["target_object"] = 7
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["data", "trajectories", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "hints.target_object names no annotated object" in capsys.readouterr().err


def _break_and_run(tmp_path, capsys, breaker) -> tuple[int, str, Path]:
    data = write_dataset(tmp_path / "d", n=4)
    out = tmp_path / "out"
    assert main(["data", "trajectories", "--data", str(data), "--out", str(out)]) == 0
    before = {f: (out / f).read_bytes() for f in ("sft.jsonl", "rl.jsonl", "README.md")}
    breaker(data)
    capsys.readouterr()
    rc = main(["data", "trajectories", "--data", str(data), "--out", str(out), "--coords", "norm1000"])
    assert {f: (out / f).read_bytes() for f in before} == before  # nothing already written is lost
    return rc, capsys.readouterr().err, data


def test_missing_image_is_a_clear_error(tmp_path, capsys):
    rc, err, data = _break_and_run(tmp_path, capsys, lambda d: (d / "images" / "001_2.png").unlink())
    assert rc == 2 and "Traceback" not in err
    assert "s001: images[1]:" in err and "does not exist" in err


def test_unreadable_image_and_wrong_size_are_listed(tmp_path, capsys):
    def breaker(d: Path) -> None:
        (d / "images" / "000_1.png").write_bytes(b"not a png")
        for name in ("002_1.png", "003_1.png"):
            with Image.open(d / "images" / name) as img:
                img.resize((img.width + 1, img.height)).save(d / "images" / name)

    rc, err, _ = _break_and_run(tmp_path, capsys, breaker)
    assert rc == 2 and "3 problem(s) with the image files" in err
    assert "not a readable image" in err and "manifest says" in err


def test_out_must_not_be_the_dataset_folder(tmp_path, capsys):
    data = write_dataset(tmp_path / "d", n=2)
    card = (data / "README.md")
    card.write_text("dataset card")
    assert main(["data", "trajectories", "--data", str(data), "--out", str(data)]) == 2
    assert "is the dataset folder" in capsys.readouterr().err
    assert card.read_text() == "dataset card"


def test_out_holding_other_files_is_refused_and_a_trajectories_folder_rebuilt(tmp_path, capsys):
    data = write_dataset(tmp_path / "d", n=2)
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("my project")
    assert main(["data", "trajectories", "--data", str(data), "--out", str(project)]) == 2
    err = capsys.readouterr().err
    assert "holds other files and none a run leaves (sft.jsonl, rl.jsonl, teacher_cache.jsonl, rejected.jsonl)" in err
    assert (project / "README.md").read_text() == "my project" and len(list(project.iterdir())) == 1
    out = tmp_path / "traj"
    for _ in range(2):  # a folder an earlier run wrote is rebuilt in place
        assert main(["data", "trajectories", "--data", str(data), "--out", str(out)]) == 0
    assert len(read_jsonl(out / "sft.jsonl")) == 2


def test_answers_parse_back_to_the_manifest_box(dataset):
    opts = TrajectoryOptions(CoordSpace("pixel"))
    for s in read_manifest(dataset):
        answer = parse_answer(template_completion(s, opts), s.num_images)
        assert answer.image == s.target.image and answer.bbox == s.target.bbox


def test_load_dataset_needs_samples(tmp_path):
    (tmp_path / "manifest.jsonl").write_text("")
    from mirg.errors import MirgError

    with pytest.raises(MirgError, match="no samples"):
        load_dataset(tmp_path)


def test_synth_output_scores_perfectly(tmp_path):
    """Over the synthetic generator's ten families, in three coordinate spaces."""
    synth = pytest.importorskip("mirg.data.synth")
    data = tmp_path / "synth"
    synth.write_dataset(synth.SynthConfig(n=40, seed=3), data)
    for coords, extra in [("pixel", []), ("norm1000", []), ("resized", ["--max-pixels", "40000"])]:
        out = tmp_path / f"traj_{coords}"
        assert main(["data", "trajectories", "--data", str(data), "--out", str(out), "--coords", coords,
                     "--detail", "full"] + extra) == 0
        space = CoordSpace(coords, max_pixels=40000) if coords == "resized" else CoordSpace(coords)
        metrics = score_rows(data, out, space)
        assert len(metrics["tasks"]) == 10
        for task, m in metrics["tasks"].items():
            assert (m["acc@0.5"], m["image_acc"]) == (1.0, 1.0), (coords, task)


def test_list_order_counts_template_lists_as_right_in_their_own_order_only(tmp_path):
    """experiments/list_order.py: template chain answers written in label order are right in that order, every
    one; read as left-to-right lists, those whose objects the two orders arrange differently are not."""
    import subprocess
    import sys

    data, out, run = tmp_path / "synth", tmp_path / "chain", tmp_path / "run"
    assert main(["data", "synth", "--out", str(data), "--samples", "40", "--seed", "9", "--image-size", "112"]) == 0
    assert main(["data", "trajectories", "--data", str(data), "--out", str(out), "--detail", "chain",
                 "--coords", "norm1000", "--order", "label"]) == 0
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "response": completion_text(r)}) + "\n" for r in read_jsonl(out / "sft.jsonl")))
    script = Path(__file__).resolve().parents[1] / "experiments" / "list_order.py"
    counts = {}
    for order in ("label", "left-to-right"):
        proc = subprocess.run([sys.executable, str(script), "--data", str(data), "--run", str(run), "--order", order],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        counts[order] = json.loads(proc.stdout)["all"]
    lists = sum(1 for s in read_manifest(data) for objs in s.objects if len(objs) > 1)
    assert counts["label"] == {"lists": lists, "order_right": lists, "labels_right": lists, "repeated": 0}
    differ = sum(1 for s in read_manifest(data) for objs in s.objects
                 if len(objs) > 1 and by_label(objs) != left_to_right_by_centre(objs))
    assert differ > 0 and counts["left-to-right"]["order_right"] == lists - differ
    assert counts["left-to-right"]["labels_right"] == lists


# -- the space the boxes are written in: recorded, taken from the model, checked by the runs --------------------

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "tests" / "fixtures" / "mig-bench" / "images"
RECIPE_7B_SFT = REPO / "recipes" / "qwen2.5-vl-7b" / "sft.yaml"
RECIPE_7B_GRPO = REPO / "recipes" / "qwen2.5-vl-7b" / "grpo.yaml"


@pytest.fixture(scope="module")
def qwen25(tmp_path_factory) -> Path:
    """A tiny Qwen2.5-VL whose saved processor resizes at min_pixels 3136, max_pixels 50176."""
    out = tmp_path_factory.mktemp("model") / "qwen2_5_vl"
    assert main(["model", "init-tiny", "--family", "qwen2_5_vl", "--out", str(out), "--size", "xs"]) == 0
    return out


@pytest.fixture(scope="module")
def photo_data(tmp_path_factory) -> Path:
    """One sample on the two real photos: the target [100, 100, 500, 400] in the 900x616 one."""
    root = tmp_path_factory.mktemp("photos")
    (root / "images").mkdir()
    for name in ("case076_1.jpg", "case076_2.jpg"):
        (root / "images" / name).write_bytes((PHOTOS / name).read_bytes())
    record = {"id": "p1", "task": "photo", "images": ["images/case076_1.jpg", "images/case076_2.jpg"],
              "image_sizes": [[900, 616], [474, 739]], "question": "Find the dog of image 2 in image 1.",
              "target": {"image": 1, "bbox": [100, 100, 500, 400]},
              "objects": [[{"label": "dog", "bbox": [100, 100, 500, 400]}],
                          [{"label": "dog", "bbox": [50, 60, 200, 300]}]],
              "image_notes": ["a dog on grass", "a dog indoors"]}
    (root / "manifest.jsonl").write_text(json.dumps(record) + "\n")
    return root


def answer_box(folder: Path) -> str:
    """The box as the SFT text writes it."""
    text = completion_text(read_jsonl(folder / "sft.jsonl")[0])
    return re.search(r'"bbox_2d": (\[[^]]*\])', text).group(1)


def dry_run(stage: str, recipe: Path, model: Path, data: Path, out: Path, *extra: str) -> int:
    return main([stage, "--config", str(recipe), "--model", str(model), "--data", str(data), "--output_dir", str(out),
                 "--dry-run", *extra])


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mirg: error: ") and err.count("\n") == 1, err
    return err


def test_boxes_at_other_pixel_limits_are_refused_by_the_run_and_for_model_writes_the_runs(qwen25, photo_data,
                                                                                          tmp_path, capsys):
    """`--coords resized` at the default max_pixels (12,845,056) writes [100, 100, 498, 400] on the 900x616 photo,
    where the 7B recipe's model sees [84, 82, 420, 327] (max_pixels 401,408): both stages refuse those boxes in one
    line, and `--for-model --config` writes the run's."""
    default = tmp_path / "default"
    assert main(["data", "trajectories", "--data", str(photo_data), "--out", str(default), "--coords", "resized"]) == 0
    assert answer_box(default) == "[100, 100, 498, 400]"
    capsys.readouterr()
    for stage, recipe, extra in (("sft", RECIPE_7B_SFT, []),
                                 ("grpo", RECIPE_7B_GRPO, ["--use_vllm", "false"])):  # (vLLM's check: test_budget.py)
        err = one_line_error(capsys, dry_run(stage, recipe, qwen25, default, tmp_path / "o", *extra))
        assert "resized pixels at min_pixels 3136, max_pixels 12845056" in err
        assert "this run resizes images at min_pixels 3136, max_pixels 401408" in err and "--for-model" in err
    assert not (tmp_path / "o").exists()

    matched = tmp_path / "matched"
    assert main(["data", "trajectories", "--data", str(photo_data), "--out", str(matched), "--for-model",
                 str(qwen25), "--config", str(RECIPE_7B_SFT)]) == 0
    assert answer_box(matched) == "[84, 82, 420, 327]"
    record = json.loads((matched / "trajectories.json").read_text())
    assert record == {"coords": "resized", "min_pixels": 3136, "max_pixels": 401408,
                      "model": {"family": "qwen2_5_vl", "path": str(qwen25)}}
    assert "for model: qwen2_5_vl" in (matched / "README.md").read_text()
    capsys.readouterr()
    assert dry_run("sft", RECIPE_7B_SFT, qwen25, matched, tmp_path / "o") == 0
    assert capsys.readouterr().err == ""


def test_for_model_takes_the_limits_of_the_folder_then_the_recipe_then_the_flags(qwen25, photo_data, tmp_path):
    def record(*flags: str) -> dict:
        out = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        assert main(["data", "trajectories", "--data", str(photo_data), "--out", str(out), *flags]) == 0
        return json.loads((out / "trajectories.json").read_text())

    assert record("--for-model", str(qwen25))["max_pixels"] == 50176  # the folder's saved processor
    assert record("--for-model", str(qwen25), "--config", str(RECIPE_7B_SFT))["max_pixels"] == 401408
    flags = record("--for-model", str(qwen25), "--config", str(RECIPE_7B_SFT), "--max-pixels", "200704")
    assert (flags["min_pixels"], flags["max_pixels"]) == (3136, 200704)
    embedded = record("--for-model", "embedded")  # Qwen3-VL: 0-1000 boxes, which no pixel limit changes
    assert embedded == {"coords": "norm1000", "min_pixels": None, "max_pixels": None,
                        "model": {"family": "qwen3_vl", "path": "embedded"}}
    assert record()["coords"] == "pixel"  # no model named: the default space, as before


@pytest.mark.parametrize("flags, reason", [
    (["--coords", "norm1000"], "--coords norm1000 disagrees with --for-model"),
    (["--config", "missing.yaml"], "missing.yaml: no such file"),
])
def test_for_model_refusals_are_one_line(qwen25, photo_data, tmp_path, capsys, flags, reason):
    code = main(["data", "trajectories", "--data", str(photo_data), "--out", str(tmp_path / "o"), "--for-model",
                 str(qwen25), *flags])
    assert reason in one_line_error(capsys, code)
    assert not (tmp_path / "o").exists()


def test_config_needs_for_model_and_agreeing_coords_are_accepted(qwen25, photo_data, tmp_path, capsys):
    code = main(["data", "trajectories", "--data", str(photo_data), "--out", str(tmp_path / "o"), "--config",
                 str(RECIPE_7B_SFT)])
    assert "--config takes the pixel limits of a model's run: it needs --for-model" in one_line_error(capsys, code)
    assert main(["data", "trajectories", "--data", str(photo_data), "--out", str(tmp_path / "o"), "--for-model",
                 str(qwen25), "--coords", "resized"]) == 0


def test_a_folder_written_before_the_record_is_checked_by_its_prompts_with_one_warning(qwen25, tmp_path, capsys):
    from train_fixtures import write_trajectories

    old = write_trajectories(tmp_path / "old", n=2, coords="resized", max_pixels=50176, record=False)
    capsys.readouterr()
    assert dry_run("sft", REPO / "recipes" / "tiny-cpu" / "sft.yaml", qwen25, old, tmp_path / "o") == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trajectories.json" in err and "pixel limits cannot be checked" in err
    wrong = write_trajectories(tmp_path / "norm", n=2, coords="norm1000", record=False)
    code = dry_run("sft", REPO / "recipes" / "tiny-cpu" / "sft.yaml", qwen25, wrong, tmp_path / "o")
    assert "prompts ask for norm1000 boxes but qwen2_5_vl models answer in resized" in one_line_error(capsys, code)


@pytest.mark.parametrize("record, reason", [
    ('{"coords": "pixel", "min_pixels": null, "max_pixels": null, "model": null}',
     "the boxes are in pixel coordinates but qwen2_5_vl models answer in resized"),
    ('{"coords": "resized", "min_pixels": 3136', "not valid JSON"),
    ('{"coords": "resized", "min_pixels": 3136, "max_pixels": "big"}', "resized boxes need whole numbers"),
])
def test_a_record_of_another_space_or_a_broken_one_is_refused(qwen25, tmp_path, capsys, record, reason):
    from train_fixtures import write_trajectories

    data = write_trajectories(tmp_path / "t", n=2, coords="resized", max_pixels=50176)
    (data / "trajectories.json").write_text(record)
    capsys.readouterr()
    code = dry_run("grpo", REPO / "recipes" / "tiny-cpu" / "grpo.yaml", qwen25, data, tmp_path / "o")
    assert reason in one_line_error(capsys, code)
