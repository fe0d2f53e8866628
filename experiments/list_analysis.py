"""Where answers in the list format go wrong: listing the objects, labelling them, or copying the box.

Usage: python experiments/list_analysis.py --data DIR --run RUN [--coords norm1000] [--min-objects 2]

For a model that writes every object of every image with its box before the answer (``mirg data
trajectories --detail list``, ``box-list`` or ``mark-list``), reads each response of RUN/predictions.jsonl against the
manifest in DIR and counts, over the samples whose target image holds at least ``--min-objects`` objects:

  target_box_listed        the target image's list has an entry whose box reaches IoU >= 0.5 with the target
  target_listed_and_named  ... and that entry carries the target's colour and shape
  target_label_elsewhere   another entry of that list carries the target's label (a wrong object named so)
  answer_from_list         the answer's box is, to the digit, the box of an entry of the answered image's list
  answer_from_named_entry  ... of an entry carrying the target's label
  correct                  the answer names the target image and reaches IoU >= 0.5
  answer_on_another_object the answer's box reaches IoU >= 0.5 with an object that is not the target

the label precision of all entries (an entry's label is right when an object of its image with IoU >=
0.5 to its box has that label); for the entries whose box is on an object (IoU >= 0.5 with the best-matching
one), how many name its colour and its shape right; and for ``--detail mark-list`` responses
samples_with_a_mark, marked_entries, mark_on_target (a marked entry of the target image reaches IoU >= 0.5
with the target) and answer_from_marked_entry (the answer copies a marked box). Prints one JSON line.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter

from run_reader import read_run, run_parser

_SECTION = re.compile(r"(?:Objects|Image (\d+)):(.*?)(?=Image \d+:|$)", re.S)


def image_lists(think: str) -> dict[int, list[tuple[str, tuple[float, ...]]]]:
    """``{image: [(label, box), ...]}`` from ``Objects: ...`` (one image) or ``Image k: ...`` sections."""
    from mirg.eval.perception import listed_objects

    return {int(m.group(1) or 1): listed_objects(m.group(2)) for m in _SECTION.finditer(think)}


def marked_boxes(think: str) -> list[tuple[int, tuple[float, ...]]]:
    """``(image, box)`` of every entry a ``mark-list`` response marks ``(the target)``, in its own space."""
    from mirg.formats import TARGET_MARK

    marked = re.compile(re.escape(TARGET_MARK) + r" \[(-?[\d.]+), (-?[\d.]+), (-?[\d.]+), (-?[\d.]+)\]")
    return [(int(m.group(1) or 1), tuple(float(v) for v in b.groups()))
            for m in _SECTION.finditer(think) for b in marked.finditer(m.group(2))]


def count_marks(sample, think: str, space, bbox: tuple[float, ...] | None, counts: Counter) -> None:
    """mark-list: how many entries are marked, whether one is the target, whether the answer copies one."""
    from mirg.geometry import clip_box, iou

    marks = [(i, box) for i, box in marked_boxes(think) if 1 <= i <= sample.num_images]
    if not marks:
        return
    size = sample.image_sizes[sample.target.image - 1]
    counts["samples_with_a_mark"] += 1
    counts["marked_entries"] += len(marks)
    counts["mark_on_target"] += any(i == sample.target.image
                                    and iou(clip_box(space.to_pixels(box, size), size), sample.target.bbox) >= 0.5
                                    for i, box in marks)
    counts["answer_from_marked_entry"] += bbox is not None and any(box == bbox for _, box in marks)


def analyse(sample, response: str, space, counts: Counter) -> None:
    from mirg.answer import think_block, try_parse_answer
    from mirg.geometry import clip_box, iou

    k = sample.target.image
    objects = sample.objects[k - 1]
    label = max(objects, key=lambda o: iou(o.bbox, sample.target.bbox)).label
    lists = image_lists(think_block(response))
    pixels = {i: [(name, clip_box(space.to_pixels(box, sample.image_sizes[i - 1]), sample.image_sizes[i - 1]), box)
                  for name, box in entries] for i, entries in lists.items() if 1 <= i <= sample.num_images}
    for i, entries in pixels.items():
        for name, box, _ in entries:
            counts["entries"] += 1
            counts["entries_named_right"] += any(iou(box, o.bbox) >= 0.5 and o.label == name for o in sample.objects[i - 1])
            on = max(sample.objects[i - 1], key=lambda o: iou(box, o.bbox))
            if iou(box, on.bbox) >= 0.5:  # the entry's box is on an object: which half of its label is right?
                words = name.split()
                counts["entries_on_an_object"] += 1
                counts["on_object_colour_right"] += bool(words) and words[0] == on.attributes.get("color")
                counts["on_object_shape_right"] += bool(words) and words[-1] == on.attributes.get("shape")
    listed = pixels.get(k, [])
    on_target = [name for name, box, _ in listed if iou(box, sample.target.bbox) >= 0.5]
    counts["samples"] += 1
    counts["target_box_listed"] += bool(on_target)
    counts["target_listed_and_named"] += label in on_target
    counts["target_label_elsewhere"] += any(name == label and iou(box, sample.target.bbox) < 0.5 for name, box, _ in listed)
    answer = try_parse_answer(response, sample.num_images)
    count_marks(sample, think_block(response), space, None if answer is None else
                tuple(float(v) for v in answer.bbox), counts)
    if answer is None:
        return
    written = [(name, tuple(float(v) for v in raw)) for name, _, raw in pixels.get(answer.image, [])]
    bbox = tuple(float(v) for v in answer.bbox)
    counts["answer_from_list"] += any(box == bbox for _, box in written)
    counts["answer_from_named_entry"] += any(box == bbox and name == label for name, box in written)
    size = sample.image_sizes[answer.image - 1]
    pred = clip_box(space.to_pixels(answer.bbox, size), size)
    counts["correct"] += answer.image == k and iou(pred, sample.target.bbox) >= 0.5
    hit = max(sample.objects[answer.image - 1], key=lambda o: iou(pred, o.bbox))
    counts["answer_on_another_object"] += iou(pred, hit.bbox) >= 0.5 and not (answer.image == k and hit.bbox == sample.target.bbox)


def main() -> int:
    parser = run_parser(__doc__)
    parser.add_argument("--min-objects", type=int, default=2, help="objects in the target image (default 2)")
    opts = parser.parse_args()
    samples, responses, space = read_run(opts, "list_analysis")
    counts: Counter = Counter()
    for sample in samples:
        if sample.objects is None or sample.id not in responses:
            counts["skipped"] += 1
            continue
        if len(sample.objects[sample.target.image - 1]) >= opts.min_objects:
            analyse(sample, responses[sample.id], space, counts)
    result = dict(counts)
    result["label_precision"] = round(counts["entries_named_right"] / counts["entries"], 3) if counts["entries"] else None
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
