"""The synthetic benchmark generator: determinism, validity, balance, unique answers, bad arguments."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mirg.cli import main
from mirg.data.synth import SynthConfig, build_sample, check_built, parse_tasks, plan_sample, write_dataset
from mirg.data.synth_scene import COLORS, Canvas, Obj
from mirg.data.synth_tasks import DEFAULT_TASKS, FAMILIES, Built, Plan
from mirg.errors import MirgError
from mirg.schema import check_image_files, read_manifest

ALL_TASKS = tuple(FAMILIES)


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def synth(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["data", "synth", "--out", str(out), *args]) == 0
    return out


@pytest.fixture(scope="module")
def every_family(tmp_path_factory) -> Path:
    """Twelve samples of each of the eleven families, 1..6 images, at 112 px."""
    out = tmp_path_factory.mktemp("synth") / "all"
    cfg = SynthConfig(n=12 * len(ALL_TASKS), seed=3, image_size=112, min_images=1, max_images=6, tasks=ALL_TASKS)
    write_dataset(cfg, out)
    return out


# --- determinism ---------------------------------------------------------------------------------------


def test_same_arguments_give_byte_identical_folders(tmp_path):
    args = ["--samples", "30", "--seed", "5", "--image-size", "96"]
    a, b = synth(tmp_path, "a", *args), synth(tmp_path, "b", *args)
    files_a, files_b = folder_bytes(a), folder_bytes(b)
    assert len(files_a) > 60 and files_a == files_b
    other = folder_bytes(synth(tmp_path, "c", "--samples", "30", "--seed", "6", "--image-size", "96"))
    assert other["manifest.jsonl"] != files_a["manifest.jsonl"]
    assert sum(other.get(k) != v for k, v in files_a.items() if k.startswith("images/")) > 30


def test_workers_and_n_do_not_change_samples(tmp_path):
    one = synth(tmp_path, "one", "--samples", "24", "--image-size", "64")
    two = synth(tmp_path, "two", "--samples", "24", "--image-size", "64", "--workers", "2")
    assert folder_bytes(one) == folder_bytes(two)
    longer = synth(tmp_path, "longer", "--samples", "40", "--image-size", "64")
    head = (longer / "manifest.jsonl").read_text().splitlines()[:24]
    assert head == (one / "manifest.jsonl").read_text().splitlines()
    assert (longer / "images" / "000023_2.png").read_bytes() == (one / "images" / "000023_2.png").read_bytes()


def test_task_order_does_not_matter():
    a = SynthConfig(n=10, tasks=("region", "diff"))
    b = SynthConfig(n=10, tasks=("diff", "region", "diff"))
    assert a == b and [plan_sample(a, i) for i in range(10)] == [plan_sample(b, i) for i in range(10)]


# --- validity ------------------------------------------------------------------------------------------


def test_every_family_passes_the_schema_and_image_checks(every_family):
    samples = read_manifest(every_family)
    assert check_image_files(samples, every_family) == []
    assert Counter(s.task for s in samples) == {t: 12 for t in ALL_TASKS}
    for s in samples:
        _, fewest, most, positions = FAMILIES[s.task]
        assert fewest <= s.num_images <= most and s.target.image in positions(s.num_images)
        assert all(len(per_image) >= 1 for per_image in s.objects)
        assert len(s.image_notes) == s.num_images and all(s.image_notes)
        assert s.images == [f"images/{int(s.id.split('-')[1]):06d}_{k}.png" for k in range(1, s.num_images + 1)]


def test_boxes_are_integers_objects_fill_their_boxes_and_targets_are_annotated(every_family):
    lines = (every_family / "manifest.jsonl").read_text().splitlines()
    for line in lines:
        rec = json.loads(line)
        hints = rec["hints"]
        assert set(hints) == {"target_object", "reference", "rule"} and hints["rule"]
        t = rec["target"]["image"]
        assert rec["objects"][t - 1][hints["target_object"]]["bbox"] == rec["target"]["bbox"]
        if hints["reference"] is not None:
            ref = hints["reference"]
            assert ref["image"] != t and 0 <= ref["object"] < len(rec["objects"][ref["image"] - 1])
        for k, per_image in enumerate(rec["objects"]):
            if "shifted" in rec["image_notes"][k]:  # relit and noisy: colours are not exact
                continue
            pixels = np.asarray(Image.open(every_family / rec["images"][k]))
            for obj in per_image:
                assert all(isinstance(v, int) for v in obj["bbox"])
                x1, y1, x2, y2 = obj["bbox"]
                centre = pixels[(y1 + y2) // 2, (x1 + x2) // 2]
                assert tuple(centre) == COLORS[obj["attributes"]["color"]], (rec["id"], obj)
                assert obj["label"] == f'{obj["attributes"]["color"]} {obj["attributes"]["shape"]}'


def test_reference_objects_are_outlined_in_black(every_family):
    for s in read_manifest(every_family):
        ref = s.extra["hints"]["reference"]
        if ref is None or s.task == "reasoning":
            continue
        x1, y1, x2, y2 = (int(v) for v in s.objects[ref["image"] - 1][ref["object"]].bbox)
        pixels = np.asarray(Image.open(every_family / s.images[ref["image"] - 1]))
        ring = pixels[y1 - 3, x1:x2]  # just above the box: the outline (pad 2 px at 112 px, width 2 px)
        assert (ring == 0).all(), s.id
        assert "outlined in black" in s.image_notes[ref["image"] - 1]
        outlined = [(k, i) for k, objs in enumerate(s.objects, 1) for i, o in enumerate(objs)
                    if o.attributes.get("outlined")]
        assert outlined == [(ref["image"], ref["object"])], s.id  # the annotation says which object is marked


def test_some_perception_images_outline_one_object(tmp_path):
    samples = read_manifest(synth(tmp_path, "p", "--samples", "60", "--tasks", "perception", "--min-images", "1",
                                  "--max-images", "1"))
    marked = [s for s in samples if any(o.attributes.get("outlined") for o in s.objects[0])]
    assert 5 < len(marked) < 40
    assert all("outlined in black" in s.image_notes[0] for s in marked)


# --- balance -------------------------------------------------------------------------------------------


def test_tasks_image_counts_and_target_positions_are_balanced():
    cfg = SynthConfig(n=6000, seed=11, min_images=2, max_images=6)
    plans = [plan_sample(cfg, i) for i in range(cfg.n)]
    tasks = Counter(task for task, _, _ in plans)
    assert set(tasks) == set(DEFAULT_TASKS) and max(tasks.values()) - min(tasks.values()) <= 1
    for task in DEFAULT_TASKS:
        sizes = Counter(n for t, n, _ in plans if t == task)
        assert max(sizes.values()) - min(sizes.values()) <= 1
        for n in sizes:
            positions = Counter(k for t, m, k in plans if t == task and m == n)
            assert set(positions) == set(FAMILIES[task][3](n)), (task, n)
            assert max(positions.values()) - min(positions.values()) <= 1, (task, n, positions)


def test_a_blind_guess_does_no_better_than_chance(every_family):
    """Always answering the most common target image for a (task, number of images) wins no more than
    a uniform guess would, up to the one-sample rounding of the balance."""
    samples = read_manifest(every_family)
    groups = Counter((s.task, s.num_images) for s in samples)
    hits = Counter((s.task, s.num_images, s.target.image) for s in samples)
    for (task, n), count in groups.items():
        best = max(v for (t, m, _), v in hits.items() if (t, m) == (task, n))
        assert best <= -(-count // len(FAMILIES[task][3](n)))


def test_two_image_families_put_the_target_in_either_image(every_family):
    for s in read_manifest(every_family):
        ref = s.extra["hints"]["reference"]
        if s.num_images == 2 and ref is not None:
            assert ref["image"] == 3 - s.target.image
    firsts = Counter(s.target.image for s in read_manifest(every_family) if s.num_images == 2)
    assert firsts[1] > 0 and firsts[2] > 0


# --- unique answers ------------------------------------------------------------------------------------


def test_no_look_alike_of_the_target_in_the_target_image(every_family):
    for s in read_manifest(every_family):
        target_image = s.objects[s.target.image - 1]
        target = next(o for o in target_image if o.bbox == s.target.bbox)
        assert [o.label for o in target_image].count(target.label) == 1, s.id
        if s.task == "correspondence":  # the question names only the shape
            assert [o.attributes["shape"] for o in target_image].count(target.attributes["shape"]) == 1
        if s.task == "group_grounding":  # the question names no image: no other image may match
            others = [o.label for k, per in enumerate(s.objects, 1) if k != s.target.image for o in per]
            assert target.label not in others, s.id
        if s.task in ("diff", "view_diff"):
            assert target.label not in [o.label for o in s.objects[2 - s.target.image]], s.id


def _plan(n_images=2, target=1) -> Plan:
    return Plan("group_grounding", n_images, target, np.random.default_rng(0), Canvas(224))


def test_the_check_rejects_a_look_alike_and_an_unannotated_target():
    from mirg.data.synth_scene import make_view

    rng = np.random.default_rng(0)
    red = Obj("red", "circle", (10, 10, 50, 50))
    twin = Obj("red", "circle", (100, 100, 140, 140))
    blue = Obj("blue", "square", (100, 10, 140, 50))
    good = Built([make_view(rng, [red, blue]), make_view(rng, [blue])], 1, red, "q", "r", absent_from=(2,))
    assert check_built(good, _plan()) == []
    twins = Built([make_view(rng, [red, twin]), make_view(rng, [blue])], 1, red, "q", "r")
    assert any("two objects of one kind" in p for p in check_built(twins, _plan()))
    elsewhere = Built([make_view(rng, [red]), make_view(rng, [twin])], 1, red, "q", "r", absent_from=(2,))
    assert check_built(elsewhere, _plan()) == ["image 2 also holds an object matching the question"]
    missing = Built([make_view(rng, [blue]), make_view(rng, [blue])], 1, red, "q", "r")
    assert "the target is not an annotated object of the target image" in check_built(missing, _plan())


def test_builders_pass_their_check_without_rejections():
    for task in ALL_TASKS:
        cfg = SynthConfig(n=1, seed=1, tasks=(task,), min_images=1, max_images=6, image_size=112)
        for i in range(0, 60):
            _, _, draws = build_sample(cfg, i)
            assert draws.rejects == 0, (task, i, draws.reasons)


# --- perception ----------------------------------------------------------------------------------------


def test_perception_makes_one_image_samples_only_when_asked(tmp_path):
    out = synth(tmp_path, "p1", "--samples", "12", "--tasks", "perception", "--min-images", "1", "--max-images", "1")
    samples = read_manifest(out)
    assert {s.num_images for s in samples} == {1} and {s.task for s in samples} == {"perception"}
    assert any(s.question.startswith("List every object") for s in samples)
    several = read_manifest(synth(tmp_path, "p3", "--samples", "8", "--tasks", "perception", "--min-images", "3",
                                  "--max-images", "3"))
    assert all(s.question.startswith("Describe each image in turn") for s in several)
    default = read_manifest(synth(tmp_path, "d", "--samples", "40", "--min-images", "1"))
    assert "perception" not in {s.task for s in default} and min(s.num_images for s in default) == 2


def test_listing_names_no_label_and_its_target_is_the_leftmost_or_rightmost_object(tmp_path):
    from mirg.data.synth_scene import COLORS, SHAPES

    samples = read_manifest(synth(tmp_path, "l", "--samples", "24", "--tasks", "listing", "--min-images", "1",
                                  "--max-images", "1"))
    assert {s.task for s in samples} == {"listing"} and {s.num_images for s in samples} == {1}
    sides = set()
    for s in samples:
        words = set(s.question.lower().rstrip(".").split())
        assert not words & (set(COLORS) | set(SHAPES)), s.question
        objects = s.objects[0]
        centres = sorted((o.bbox[0] + o.bbox[2], o.bbox[1] + o.bbox[3]) for o in objects)
        side = "leftmost" if "leftmost" in words else "rightmost"
        sides.add(side)
        t = s.target.bbox
        assert len(objects) >= 2 and (t[0] + t[2], t[1] + t[3]) == centres[0 if side == "leftmost" else -1]
    assert sides == {"leftmost", "rightmost"}


def test_max_objects_limits_perception_scenes_and_nothing_else(tmp_path, capsys):
    out = synth(tmp_path, "one", "--samples", "30", "--tasks", "perception", "--min-images", "1", "--max-images", "2",
                "--max-objects", "1")
    assert all(len(objs) == 1 for s in read_manifest(out) for objs in s.objects)
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--samples", "5", "--max-objects", "2"]) == 2
    assert "perception families only" in capsys.readouterr().err


# --- the dataset card ----------------------------------------------------------------------------------


def test_card_has_counts_balance_and_one_example_per_task(every_family):
    card = (every_family / "README.md").read_text()
    for task in ALL_TASKS:
        assert f"| {task} | 12 |" in card
        assert f"![{task}](examples/{task}.png)" in card
        with Image.open(every_family / "examples" / f"{task}.png") as img:
            assert img.width > 112
    assert "## Images per sample" in card and "## Target image position" in card


# --- bad arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, says",
    [
        (["--samples", "0"], "--samples must be at least 1"),
        (["--samples", "-3"], "--samples must be at least 1"),
        (["--min-images", "4", "--max-images", "3"], "--min-images 4 is more than --max-images 3"),
        (["--max-images", "7"], "--max-images must be 1..6"),
        (["--min-images", "0"], "--min-images must be 1..6"),
        (["--tasks", "common_object,nonsense"], "unknown task 'nonsense'"),
        (["--tasks", "object_tracking", "--max-images", "2"], "task object_tracking needs 3..6 images"),
        (["--min-images", "3"], "task diff needs exactly 2 images"),
        (["--tasks", "region", "--min-images", "6", "--max-images", "6"], "task region needs 2..5 images"),
        (["--image-size", "8"], "--image-size must be 64..2048"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_arguments_give_a_one_line_error(tmp_path, capsys, args, says):
    out = tmp_path / "out"
    assert main(["data", "synth", "--out", str(out), "--samples", "5", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirg: error: ") and says in err and err.count("\n") == 1
    assert not (out / "manifest.jsonl").exists()


def test_a_non_empty_folder_is_kept_unless_overwrite(tmp_path, capsys):
    out = synth(tmp_path, "ds", "--samples", "12", "--image-size", "64")
    assert main(["data", "synth", "--out", str(out), "--samples", "3"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert len(read_manifest(out)) == 12
    (out / "notes.txt").write_text("mine")
    assert main(["data", "synth", "--out", str(out), "--samples", "3", "--image-size", "64", "--overwrite"]) == 0
    assert len(read_manifest(out)) == 3 and len(list((out / "images").iterdir())) == 6
    assert (out / "notes.txt").read_text() == "mine"
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "thesis.tex").write_text("x")
    assert main(["data", "synth", "--out", str(stranger), "--samples", "3", "--overwrite"]) == 2
    assert (stranger / "thesis.tex").exists()


def test_an_empty_task_list_is_refused():
    with pytest.raises(MirgError, match="--tasks is empty"):
        SynthConfig(n=3, tasks=parse_tasks(" , "))


def test_a_worker_that_dies_gives_a_one_line_error(tmp_path):
    """A drawing worker that dies (here: a ``select.py`` in the working directory shadows the standard
    library in the spawned workers) ends the command with one line, not a traceback."""
    import subprocess
    import sys

    (tmp_path / "select.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
    mirg = Path(sys.executable).with_name("mirg")
    proc = subprocess.run([str(mirg), "data", "synth", "--out", str(tmp_path / "ds"), "--samples", "40", "--image-size",
                           "64", "--workers", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "a drawing worker stopped abruptly" in proc.stderr.strip().splitlines()[-1]


def test_an_interrupted_run_stops_at_once_and_is_replaced_with_overwrite(tmp_path, capsys):
    """Ctrl-C (SIGINT to the process group) during a two-worker run: the command stops within seconds rather than
    drawing every queued range, exits 130, and leaves a folder marked unfinished that --overwrite replaces."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "mirg", "data", "synth", "--out", str(out), "--samples", "200000",
                             "--image-size", "64", "--workers", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(out.glob("images/*.png"))) < 200:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    start = time.monotonic()
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130 and time.monotonic() - start < 30, "the run went on drawing after the interrupt"
    assert "mirg: interrupted" in proc.stderr.read()
    assert (out / ".unfinished").exists() and not (out / "manifest.jsonl").exists()
    assert main(["data", "synth", "--out", str(out), "--samples", "3", "--image-size", "64"]) == 2
    assert "replace a dataset whose run was cut short" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(out), "--samples", "3", "--image-size", "64", "--overwrite"]) == 0
    assert len(read_manifest(out)) == 3 and not (out / ".unfinished").exists()
    assert len(list((out / "images").iterdir())) == 6
