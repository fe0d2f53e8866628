"""Where answers in the chain format go wrong: seeing, deciding, or locating.

Usage: python experiments/chain_analysis.py --data DIR --run RUN [--coords norm1000] [--markdown]

For a model that writes ``mirg data trajectories --detail chain`` reasoning (each image's objects by label,
the outlined one marked; ``The target is the X in image K.``; then image K's objects with boxes, the target
marked), reads each response of RUN/predictions.jsonl against the manifest in DIR and counts, per task:

  n               samples
  seen            every image's label list names exactly its annotated objects (as a multiset)
  outline_seen    of the samples with an outlined object: the object marked ``outlined`` is that one
  image_right     the decision names the target image
  label_right     the decision names the target's colour and shape
  decided         both
  mark_on_target  the final list marks an entry whose box reaches IoU >= 0.5 with the target (target image)
  mark_shape_only the one marked entry names another object of the target's shape (the colour differs)
  mark_colour_only the one marked entry names another object of the target's colour (the shape differs)
  copied          the answer's box is, to the digit, the box after the mark
  correct         the answer names the target image and reaches IoU >= 0.5 (what acc@0.5 counts)
  objects         annotated objects, of which
  listed          listed by colour and shape (``mirg.eval.perception.score_listing``: a model card's listing)
  listed_boxed    listed with a box of IoU >= 0.5 too

so that a family's failures can be told apart: perception (``seen``), the cross-image decision (``decided``,
which SFT and GRPO must teach), and the localisation after it (``mark_on_target``, ``copied``). Prints one
JSON line, or with ``--markdown`` a table.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict

from run_reader import read_run, run_parser

_NUM = r"(-?\d+(?:\.\d+)?)"
_LABELS = re.compile(r"Image (\d+): ([^.\[]*)\.")  # "[": never a box list
_FINAL = re.compile(r"In image (\d+): (.*)$", re.S)
COLUMNS = ("n", "seen", "outline_seen", "image_right", "label_right", "decided", "mark_on_target", "mark_shape_only",
           "mark_colour_only", "copied", "correct", "objects", "listed", "listed_boxed")


def label_lists(think: str) -> dict[int, list[str]]:
    """``{image: [label, ...]}`` from the ``Image k: a; b outlined; c.`` sentences (``outlined`` kept)."""
    return {int(m.group(1)): [e.strip() for e in m.group(2).split(";") if e.strip()] for m in _LABELS.finditer(think)}


def decision(think: str) -> tuple[str, int] | None:
    """The label and image of the ``The target is the X in image K.`` sentence."""
    from mirg.formats import CHAIN_TARGET

    pattern = re.escape(CHAIN_TARGET).replace(r"\{label\}", "([a-z]+ [a-z]+)").replace(r"\{k\}", r"(\d+)")
    m = re.search(pattern, think)
    return (m.group(1), int(m.group(2))) if m else None


def final_list(think: str) -> tuple[int, list[tuple[str, tuple[float, ...], bool]]] | None:
    """The image of the ``In image K: ...`` list and its ``(label, box, marked)`` entries."""
    from mirg.formats import TARGET_MARK

    m = _FINAL.search(think)
    if not m:
        return None
    entry = re.compile(rf"([a-z]+ [a-z]+)( {re.escape(TARGET_MARK)})? \[{_NUM}, {_NUM}, {_NUM}, {_NUM}\]")
    entries = [(e.group(1), tuple(float(e.group(i)) for i in range(3, 7)), bool(e.group(2)))
               for e in entry.finditer(m.group(2))]
    return int(m.group(1)), entries


def analyse(sample, response: str, space, counts: Counter, vocabulary: set[str]) -> None:
    from mirg.answer import think_block, try_parse_answer
    from mirg.eval.perception import score_listing
    from mirg.geometry import clip_box, iou

    listing = score_listing(sample, response, space, vocabulary)
    counts["objects"] += listing.objects
    counts["listed"] += listing.labels_found
    counts["listed_boxed"] += listing.boxes_found

    think, k = think_block(response), sample.target.image
    target = max(sample.objects[k - 1], key=lambda o: iou(o.bbox, sample.target.bbox))
    counts["n"] += 1
    lists = label_lists(think)
    written = {i: sorted(e.removesuffix(" outlined") for e in lists.get(i, [])) for i in range(1, sample.num_images + 1)}
    counts["seen"] += all(written[i] == sorted(o.label for o in objs) for i, objs in enumerate(sample.objects, 1))
    outlined = [(i, o.label) for i, objs in enumerate(sample.objects, 1) for o in objs if o.attributes.get("outlined")]
    if outlined:
        said = [(i, e.removesuffix(" outlined")) for i, entries in lists.items() for e in entries if e.endswith(" outlined")]
        counts["outlined_samples"] += 1
        counts["outline_seen"] += said == outlined
    decided = decision(think)
    counts["image_right"] += decided is not None and decided[1] == k
    counts["label_right"] += decided is not None and decided[0] == target.label
    counts["decided"] += decided == (target.label, k)
    final = final_list(think)
    answer = try_parse_answer(response, sample.num_images)
    if final is not None and final[0] == k:
        size = sample.image_sizes[k - 1]
        marks = [box for _, box, marked in final[1] if marked]
        labels = [label for label, _, marked in final[1] if marked]
        if len(labels) == 1 and labels[0] != target.label:  # which half of the label the mark went by
            (colour, shape), (want_colour, want_shape) = labels[0].split(), target.label.split()
            counts["mark_shape_only"] += shape == want_shape
            counts["mark_colour_only"] += colour == want_colour
        counts["mark_on_target"] += any(iou(clip_box(space.to_pixels(b, size), size), sample.target.bbox) >= 0.5
                                        for b in marks)
        counts["copied"] += answer is not None and tuple(float(v) for v in answer.bbox) in marks
    if answer is not None and answer.image == k:
        size = sample.image_sizes[k - 1]
        counts["correct"] += iou(clip_box(space.to_pixels(answer.bbox, size), size), sample.target.bbox) >= 0.5


def markdown(per_task: dict[str, Counter]) -> str:
    rows = ["| task | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for task, c in per_task.items():
        cells = [str(c["n"])] + [f"{c[name]}" + (f"/{c['outlined_samples']}" if name == "outline_seen" else "")
                                 for name in COLUMNS[1:]]
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    parser = run_parser(__doc__)
    parser.add_argument("--markdown", action="store_true", help="print a table instead of JSON")
    opts = parser.parse_args()
    samples, responses, space = read_run(opts, "chain_analysis")
    per_task: dict[str, Counter] = defaultdict(Counter)
    vocabulary = {o.label for sample in samples for objects in (sample.objects or []) for o in objects}
    for sample in samples:
        if sample.objects is not None and sample.id in responses:
            analyse(sample, responses[sample.id], space, per_task[sample.task], vocabulary)
    per_task = dict(sorted(per_task.items()))
    per_task["all"] = sum(per_task.values(), Counter())
    as_json = {t: {**dict.fromkeys(COLUMNS, 0), **c} for t, c in per_task.items()}  # zero counts too
    print(markdown(per_task) if opts.markdown else json.dumps(as_json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
