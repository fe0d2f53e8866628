"""The blind baseline: how far an answer gets that never looks at the images.

A benchmark whose questions give the answer away scores a blind model well; this measures by how much.
The blind answer is fitted on a training split and read from the question alone:

- the image: what training questions like it most often asked for, from the most alike to the least (the
  first level that saw at least ``MIN_VOTES`` training questions answers): the same task, number of images,
  wording (the images it names masked: ``"Locate in <image> the object outlined in <image>."``) and named
  images; the same task, number of images and wording, the answer taken as a role (the image the question
  names first, second, ..., or a fixed image number); the same task, number of images and named images
  (``(1, 2)``); the same task and number of images; else image 1;
- the box: the training box of the task (in 0-1 of its image) that the most training targets of the task
  overlap at IoU >= 0.5, drawn onto the chosen image.

The answers are scored like any model's (image-aware: IoU 0 on the wrong image), so the numbers sit in the
same table as the models'. No images are read.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from mirg.answer import render_answer
from mirg.geometry import CoordSpace, iou, round_box
from mirg.data.mentions import image_mentions, mention_template
from mirg.eval.predictions import append_prediction
from mirg.schema import Sample
from mirg.eval.scoring import score_response, summarize

NORM = CoordSpace("norm1")
PIXEL = CoordSpace("pixel")
#: How many of a task's training boxes are tried as its blind box (the first ones, in manifest order).
BOX_CANDIDATES = 200
#: What a blind answer says in its reasoning.
BLIND_THINK = "The images are not looked at."


def named_images(sample: Sample) -> tuple[int, ...]:
    return tuple(image_mentions(sample.question))


def target_role(sample: Sample) -> tuple[str, int]:
    """Where the question puts the target: ``("mention", j)``, the j-th image it names (0-based), or
    ``("image", k)`` when it names the target nowhere."""
    mentions = named_images(sample)
    if sample.target.image in mentions:
        return "mention", mentions.index(sample.target.image)
    return "image", sample.target.image


def target_number(sample: Sample) -> tuple[str, int]:
    return "image", sample.target.image


#: The levels of likeness, most alike first: what a question is matched on, and how its answer is recorded.
LEVELS: tuple[tuple[Callable[[Sample], tuple], Callable[[Sample], tuple[str, int]]], ...] = (
    (lambda s: (s.task, s.num_images, mention_template(s.question), named_images(s)), target_number),
    (lambda s: (s.task, s.num_images, mention_template(s.question)), target_role),
    (lambda s: (s.task, s.num_images, named_images(s)), target_number),
    (lambda s: (s.task, s.num_images), target_number),
)
#: The fewest training questions a level must have seen to answer.
MIN_VOTES = 3


def role_image(role: tuple[str, int], sample: Sample) -> int | None:
    """The image number a role stands for in ``sample``, or None where the question names too few images."""
    kind, value = role
    if kind == "mention":
        mentions = named_images(sample)
        return mentions[value] if value < len(mentions) else None
    return value


def normalized_target(sample: Sample) -> tuple[float, float, float, float]:
    return tuple(NORM.from_pixels(sample.target.bbox, sample.target_size()))


def most_common(votes: Counter) -> tuple[str, int]:
    """The most frequent answer; ties go to the smallest, so the choice does not depend on order."""
    best = max(votes.values())
    return min(k for k, c in votes.items() if c == best)


def best_box(boxes: Sequence[Sequence[float]], candidates: int = BOX_CANDIDATES) -> tuple[float, ...]:
    """Of the first ``candidates`` boxes, the one that the most of ``boxes`` overlap at IoU >= 0.5 (ties: the
    first). Boxes in 0-1 of their image: IoU does not change when both axes are scaled, so this is the box
    that would have been right most often in pixels too."""
    if not boxes:
        raise ValueError("no boxes to choose from")
    scored = [(sum(1 for b in boxes if iou(c, b) >= 0.5), -i) for i, c in enumerate(boxes[:candidates])]
    return tuple(boxes[-max(scored)[1]])


@dataclass
class BlindPrior:
    """The answers a blind model would give, fitted on training samples: votes per level of ``LEVELS``."""

    votes: list[dict[tuple, Counter]]
    boxes: dict[str, tuple[float, ...]] = field(default_factory=dict)
    any_box: tuple[float, ...] = (0.25, 0.25, 0.75, 0.75)

    def image(self, sample: Sample) -> int:
        for (key, _), level in zip(LEVELS, self.votes):
            counter = level.get(key(sample))
            if counter and sum(counter.values()) >= MIN_VOTES:
                image = role_image(most_common(counter), sample)
                if image is not None and 1 <= image <= sample.num_images:
                    return image
        return 1

    def box(self, sample: Sample, image: int) -> list[float]:
        """The task's blind box in pixels of ``image``."""
        norm = self.boxes.get(sample.task, self.any_box)
        return round_box(NORM.to_pixels(norm, sample.image_sizes[image - 1]), 2)

    def response(self, sample: Sample) -> str:
        image = self.image(sample)
        return render_answer(image, self.box(sample, image), think=BLIND_THINK)


def fit_blind(train: Sequence[Sample]) -> BlindPrior:
    """The blind answers of ``train``'s questions (see the module's text)."""
    if not train:
        raise ValueError("no training samples to fit a blind baseline on")
    votes: list[dict[tuple, Counter]] = [defaultdict(Counter) for _ in LEVELS]
    boxes: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for s in train:
        for (key, outcome), level in zip(LEVELS, votes):
            level[key(s)][outcome(s)] += 1
        boxes[s.task].append(normalized_target(s))
    task_boxes = {task: best_box(b) for task, b in boxes.items()}
    every = [b for group in boxes.values() for b in group]
    return BlindPrior([dict(v) for v in votes], task_boxes, best_box(every[::max(1, len(every) // BOX_CANDIDATES)]))


def run_blind(train: Sequence[Sample], samples: Sequence[Sample], out: str | Path) -> dict[str, Any]:
    """Fit on ``train``, answer ``samples`` blind into ``out/predictions.jsonl``, score them into
    ``out/metrics.json`` (and ``per_sample.jsonl``); returns the metrics."""
    from mirg.folders import check_output_folder
    from mirg.eval.score_files import write_outputs

    out = Path(out)
    check_output_folder(out, "--out", ["blind_boxes.json", "predictions.jsonl"],
                        "predictions.jsonl, metrics.json and per_sample.jsonl")
    prior = fit_blind(train)
    out.mkdir(parents=True, exist_ok=True)
    scores = []
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for s in samples:
            response = prior.response(s)
            append_prediction(handle, s.id, response)
            scores.append(score_response(s, response, PIXEL))
    metrics = summarize(scores)
    metrics["overall"].update({"model": "blind", "coords": PIXEL.name, "train_samples": len(train),
                               "missing_predictions": 0})
    write_outputs(metrics, scores, out / "metrics.json", out / "per_sample.jsonl")
    (out / "blind_boxes.json").write_text(json.dumps({"boxes_norm1": prior.boxes}, indent=2) + "\n",
                                          encoding="utf-8")
    return metrics
