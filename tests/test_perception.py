"""Reading back what a model says it sees: image descriptions and full listings scored against annotations."""

from __future__ import annotations

from mirg.eval.perception import listing_summary
from mirg.geometry import CoordSpace
from mirg.schema import ObjectAnn, Sample, Target

PIXEL = CoordSpace("pixel")


def sample(sid: str, labels: list[str]) -> Sample:
    objects = [ObjectAnn(label, (10.0 * i, 10.0 * i, 10.0 * i + 8, 10.0 * i + 8)) for i, label in enumerate(labels)]
    return Sample(sid, "perception", ["a.png"], [(112, 112)], "Locate it.", Target(1, objects[0].bbox),
                  objects=[objects])


def test_descriptions_count_named_objects_and_penalise_wrong_ones():
    samples = [sample("a", ["red circle", "blue star"]), sample("b", ["green square"])]
    responses = {
        # One of two objects named, plus a wrong one; the sought object's sentence does not count.
        "a": "<think>Image 1 shows a small red circle and a large green cross. I am looking for a blue star."
             "</think><answer>{}</answer>",
        "b": "<think>In image 1 I see a large green square on a white background. Objects there: green square "
             "[0, 0, 8, 8].</think><answer>{}</answer>",
    }
    got = listing_summary(samples, responses, PIXEL)
    assert got["objects"] == 3
    assert got["described_recall"] == 2 / 3  # red circle and green square, not the blue star
    assert got["described_precision"] == 2 / 2  # "green cross" is no label of this data: not counted
    assert got["label_recall"] == 1 / 3 and got["box_recall@0.5"] == 1 / 3  # only b lists a box


def test_a_label_of_the_data_named_wrongly_lowers_precision():
    samples = [sample("a", ["red circle"]), sample("b", ["blue star"])]
    responses = {"a": "<think>Image 1: a blue star.</think>", "b": "<think>Image 1: a blue star.</think>"}
    got = listing_summary(samples, responses, PIXEL)
    assert got["described_recall"] == 1 / 2 and got["described_precision"] == 1 / 2
