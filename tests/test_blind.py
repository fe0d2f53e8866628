"""The blind baseline: answers from the question alone, fitted on a training split and scored like a model's."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mirg.answer import check_strict
from mirg.eval.blind import best_box, fit_blind, role_image, target_role
from mirg.schema import Sample, Target, read_manifest


def sample(sid: str, question: str, target: int, n: int = 3, task: str = "refer_grounding",
           box=(10.0, 10.0, 30.0, 30.0)) -> Sample:
    return Sample(id=sid, task=task, images=[f"{i}.png" for i in range(n)], image_sizes=[(100, 100)] * n,
                  question=question, target=Target(image=target, bbox=box))


def test_the_role_of_the_target_carries_over_to_other_image_numbers():
    train = [sample(f"t{i}", f"Locate in image {a} the object outlined in image {b}.", a)
             for i, (a, b) in enumerate([(1, 2), (2, 3), (3, 1), (1, 3)])]
    assert [target_role(s) for s in train] == [("mention", 0)] * 4
    prior = fit_blind(train)
    # The wording was always answered by the first image it names: a new pair of numbers follows the role.
    assert prior.image(sample("q", "Locate in image 2 the object outlined in image 1.", 2)) == 2
    assert prior.image(sample("q", "Locate in image 3 the object outlined in image 2.", 3)) == 3
    assert role_image(("mention", 1), sample("q", "in image 3", 3)) is None  # names one image only


def test_a_wording_seen_too_rarely_falls_back_to_the_task_and_number_of_images():
    train = [sample(f"t{i}", "Find it.", 2, task="region") for i in range(5)]
    train.append(sample("odd", "A rare wording, image 1.", 1, task="region"))
    prior = fit_blind(train)
    assert prior.image(sample("q", "A rare wording, image 1.", 1, task="region")) == 2
    assert prior.image(sample("q", "Never seen.", 1, task="unknown")) == 1


def test_the_blind_box_is_the_training_box_most_others_overlap():
    boxes = [(0.0, 0.0, 0.1, 0.1), (0.4, 0.4, 0.6, 0.6), (0.41, 0.41, 0.61, 0.61), (0.39, 0.4, 0.6, 0.6)]
    assert best_box(boxes) == (0.4, 0.4, 0.6, 0.6)
    assert best_box(boxes, candidates=1) == (0.0, 0.0, 0.1, 0.1)
    with pytest.raises(ValueError):
        best_box([])


def test_blind_answers_on_synthetic_data_read_the_image_from_the_question(tmp_path, mirg):
    for name, n, seed in (("train", 600, 0), ("test", 100, 1)):
        proc = mirg("data", "synth", "--out", str(tmp_path / name), "--samples", str(n), "--seed", str(seed),
                    "--image-size", "64", "--id-prefix", name)
        assert proc.returncode == 0, proc.stderr
    proc = mirg("data", "blind", "--train", str(tmp_path / "train"), "--data", str(tmp_path / "test"),
                "--out", str(tmp_path / "blind"))
    assert proc.returncode == 0, proc.stderr
    assert "task mean (AVG)" in proc.stdout
    metrics = json.loads((tmp_path / "blind" / "metrics.json").read_text())
    test = read_manifest(tmp_path / "test")
    lines = [json.loads(x) for x in (tmp_path / "blind" / "predictions.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == [s.id for s in test]
    for s, x in zip(test, lines):
        check_strict(x["response"], s.num_images)  # every blind answer is in the strict format
    tasks = metrics["tasks"]
    # These families name the target image in every question ("... locate it in image 2").
    for task in ("diff", "view_diff", "common_object", "object_tracking"):
        assert tasks[task]["image_acc"] == 1.0, task
    # group_grounding names no image: nothing to read, about one chance in the number of images.
    assert tasks["group_grounding"]["image_acc"] < 0.7
    # Without the images the box is a guess.
    assert metrics["overall"]["task_mean_acc@0.5"] < 0.15
    per_task = Counter(s.task for s in test)
    assert all(tasks[t]["n"] == c for t, c in per_task.items())


def test_blind_refuses_a_missing_training_set_in_one_line(tmp_path, mirg):
    proc = mirg("data", "blind", "--train", str(tmp_path / "nope"), "--data", str(tmp_path / "nope"),
                "--out", str(tmp_path / "b"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("mirg: error:") and len(proc.stderr.strip().splitlines()) == 1


def test_blind_refuses_a_folder_holding_other_files(tmp_path, mirg):
    assert mirg("data", "synth", "--out", str(tmp_path / "d"), "--samples", "4", "--image-size", "64").returncode == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text("mine")
    proc = mirg("data", "blind", "--train", str(tmp_path / "d"), "--data", str(tmp_path / "d"), "--out", str(mine))
    assert proc.returncode == 2 and "holds other files and none a run leaves" in proc.stderr
    assert (mine / "metrics.json").read_text() == "mine" and len(list(mine.iterdir())) == 1
    assert mirg("data", "blind", "--train", str(tmp_path / "d"), "--data", str(tmp_path / "d"),
                "--out", str(tmp_path / "b")).returncode == 0
    again = mirg("data", "blind", "--train", str(tmp_path / "d"), "--data", str(tmp_path / "d"),
                 "--out", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr  # its own folder is rewritten
