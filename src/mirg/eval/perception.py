"""How well a model lists the objects it sees: labels (colour and shape) and boxes in its reasoning.

Every trajectory describes each image in one sentence (``Image 2 shows a small red circle and a large
blue star on a gray background.``); full- and list-detail ones also list every object as
``<label> [x1, y1, x2, y2]`` (mark-list ones ``<label> (the target) [x1, y1, x2, y2]`` for the target), box-list
ones as ``[x1, y1, x2, y2] <label>``. This reads them back from a response and matches them to the annotations
(as multisets per sample).

>>> listed_objects("Objects there: red square [1, 2, 30, 40]; green star [5, 6, 7, 8]. It is at [1, 2, 3, 4].")
[('red square', (1.0, 2.0, 30.0, 40.0)), ('green star', (5.0, 6.0, 7.0, 8.0))]
>>> listed_objects("Objects: [1, 2, 30, 40] red square; [5, 6, 7, 8] green star. The red square is in image 1.")
[('red square', (1.0, 2.0, 30.0, 40.0)), ('green star', (5.0, 6.0, 7.0, 8.0))]
>>> listed_objects("Objects: red square [1, 2, 30, 40]; green star (the target) [5, 6, 7, 8].")
[('red square', (1.0, 2.0, 30.0, 40.0)), ('green star', (5.0, 6.0, 7.0, 8.0))]
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from mirg.answer import think_block
from mirg.formats import TARGET_MARK
from mirg.geometry import CoordSpace, iou
from mirg.schema import Sample

# Two lower-case words (then, in mark-list, the target's mark) then a bracketed box: no nested quantifiers,
# so matching stays linear.
_NUM = r"(-?\d+(?:\.\d+)?)"
_ENTRY = re.compile(rf"\b([a-z]+ [a-z]+)(?: {re.escape(TARGET_MARK)})? \[{_NUM}, {_NUM}, {_NUM}, {_NUM}\]")
# The box-list order: a box, one space, then two lower-case words (not followed by a third).
_BOX_FIRST = re.compile(rf"\[{_NUM}, {_NUM}, {_NUM}, {_NUM}\] ([a-z]+ [a-z]+)\b(?! [a-z])")
_NOT_LABELS = {"is at", "spans at", "at at"}


# The per-image sentence of the templates (mirg.data.trajectories.SUMMARY), up to its full stop.
_DESCRIPTION = re.compile(r"(?:Image \d+ shows|In image \d+ I see|Image \d+:) ([^.<]*)")


def described_text(text: str) -> str:
    """The per-image description sentences of ``text`` joined (the part that says what each image holds).

    >>> described_text("Image 1 shows a small red square on a white background. The red square is at [1, 2, 3, 4].")
    'a small red square on a white background'
    """
    return " | ".join(m.group(1) for m in _DESCRIPTION.finditer(text))


def count_labels(text: str, labels: set[str]) -> Counter:
    """How often each of ``labels`` (two-word ``colour shape`` labels) occurs in ``text`` as whole words."""
    words = re.findall(r"[a-z]+", text.lower())
    pairs = Counter(f"{a} {b}" for a, b in zip(words, words[1:]))
    return Counter({label: pairs[label] for label in labels if pairs[label]})


def listed_objects(text: str) -> list[tuple[str, tuple[float, float, float, float]]]:
    """``(label, box)`` for every ``label [x1, y1, x2, y2]`` or ``[x1, y1, x2, y2] label`` entry of ``text``,
    in order of where the box stands."""
    found = []
    for m in _ENTRY.finditer(text):
        label = m.group(1)
        if label in _NOT_LABELS or label.endswith((" is", " at", " spans")):
            continue
        found.append((m.start(2), label, tuple(float(m.group(i)) for i in range(2, 6))))
    taken = {start for start, _, _ in found}
    for m in _BOX_FIRST.finditer(text):
        if m.start(1) not in taken:
            found.append((m.start(1), m.group(5), tuple(float(m.group(i)) for i in range(1, 5))))
    return [(label, box) for _, label, box in sorted(found)]


@dataclass
class ListingScore:
    objects: int = 0
    labels_found: int = 0
    boxes_found: int = 0
    described_found: int = 0  # objects whose colour and shape the image descriptions name
    described_total: int = 0  # label mentions in the descriptions (precision's denominator)

    @property
    def label_recall(self) -> float:
        return self.labels_found / self.objects if self.objects else 0.0

    @property
    def box_recall(self) -> float:
        return self.boxes_found / self.objects if self.objects else 0.0


def score_listing(sample: Sample, response: str, space: CoordSpace, vocabulary: set[str] | frozenset = frozenset()) -> ListingScore:
    """Annotated objects whose label is listed, and those listed with a box of IoU >= 0.5 too.

    With one image, boxes are read in that image's frame; with several, a listed box is matched against
    each object in its own image (entries carry no image number). ``vocabulary`` — every label the data
    uses — lets wrong labels in the descriptions count against their precision.
    """
    think = think_block(response)
    entries = listed_objects(think)
    score = ListingScore()
    annotated = Counter(o.label for objects in (sample.objects or []) for o in objects)
    described = count_labels(described_text(think), set(annotated) | set(vocabulary))
    score.described_found = sum(min(n, described[label]) for label, n in annotated.items())
    score.described_total = sum(described.values())
    available = Counter(label for label, _ in entries)
    for k, objects in enumerate(sample.objects or [], start=1):
        size = sample.image_sizes[k - 1]
        for obj in objects:
            score.objects += 1
            if available[obj.label] > 0:
                available[obj.label] -= 1
                score.labels_found += 1
            if any(label == obj.label and iou(space.to_pixels(box, size), obj.bbox) >= 0.5 for label, box in entries):
                score.boxes_found += 1
    return score


def listing_summary(samples: Sequence[Sample], responses: dict[str, str], space: CoordSpace) -> dict[str, float]:
    """Label and box recall over every annotated object of ``samples``."""
    vocabulary = {o.label for sample in samples for objects in (sample.objects or []) for o in objects}
    total = ListingScore()
    for sample in samples:
        s = score_listing(sample, responses.get(sample.id, ""), space, vocabulary)
        for name in ("objects", "labels_found", "boxes_found", "described_found", "described_total"):
            setattr(total, name, getattr(total, name) + getattr(s, name))
    return {"objects": total.objects, "label_recall": total.label_recall, "box_recall@0.5": total.box_recall,
            "described_recall": total.described_found / total.objects if total.objects else 0.0,
            "described_precision": total.described_found / total.described_total if total.described_total else 0.0}
