"""Metrics from predictions: per sample, per task and overall.

Default mode is image-aware: the lenient parse gives the predicted image and box; the box is converted
from the model's coordinate space to pixels of the *predicted* image and clipped to it; IoU is 0 when
the predicted image is wrong. ``compat`` mode reproduces MIG-Bench's own evaluation (see
:mod:`mirg.migbench`), which never checks the image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from mirg.answer import AnswerError, check_strict, parse_answer
from mirg.geometry import CoordSpace, clip_box, iou
from mirg.migbench import BenchRecord, compat_box, migician_yscale
from mirg.schema import Sample

THRESHOLDS = (0.3, 0.5, 0.7)


@dataclass
class SampleScore:
    """How one response scored. ``None`` marks what a mode cannot tell (e.g. the image in compat mode)."""

    id: str
    task: str
    format_ok: bool | None
    parse_ok: bool
    pred_image: int | None
    image_correct: bool | None
    iou: float
    pred_box_pixels: list[float] | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def score_response(sample: Sample, response: str, space: CoordSpace) -> SampleScore:
    """Score one raw response against ``sample`` (image-aware IoU in original pixels)."""
    n = sample.num_images
    try:
        check_strict(response, n)
        format_ok = True
    except AnswerError:
        format_ok = False
    try:
        answer = parse_answer(response, n)
    except AnswerError:
        return SampleScore(sample.id, sample.task, format_ok, False, None, False, 0.0, None)
    size = sample.image_sizes[answer.image - 1]
    box = clip_box(space.to_pixels(answer.bbox, size), size)
    correct = answer.image == sample.target.image
    value = iou(box, sample.target.bbox) if correct else 0.0
    return SampleScore(sample.id, sample.task, format_ok, True, answer.image, correct, value, list(box))


def score_compat(
    record: BenchRecord, response: str, version: str, scale_y: bool = False
) -> SampleScore:
    """Score one raw response the way MIG-Bench's evaluation does (box only, benchmark scale)."""
    box = compat_box(response, version)
    if box is not None and scale_y:
        box = migician_yscale(box)
    value = 0.0 if box is None else iou(record.answer, box)
    return SampleScore(record.id, record.task, None, box is not None, None, None, value, box)


def _rate(values: Sequence[bool | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return sum(1 for v in values if v) / len(values)


def _task_metrics(scores: Sequence[SampleScore]) -> dict[str, Any]:
    n = len(scores)
    ious = [s.iou for s in scores]
    counts = {f"iou@{t}": sum(1 for v in ious if v >= t) for t in THRESHOLDS}
    iou_sum = 0.0
    for v in ious:  # in order, as MIG-Bench sums them, so sums match to the last bit
        iou_sum += v
    metrics: dict[str, Any] = {"n": n, "counts": counts, "iou_sum": iou_sum}
    for t in THRESHOLDS:
        metrics[f"acc@{t}"] = counts[f"iou@{t}"] / n
    metrics["mean_iou"] = iou_sum / n
    metrics["image_acc"] = _rate([s.image_correct for s in scores])
    metrics["format_rate"] = _rate([s.format_ok for s in scores])
    metrics["parse_rate"] = _rate([s.parse_ok for s in scores])
    return metrics


def _mean(values: Iterable[float | None]) -> float | None:
    values = list(values)
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def summarize(scores: Sequence[SampleScore]) -> dict[str, Any]:
    """``metrics.json``: per-task metrics and the overall task mean (MIG-Bench's AVG) and pooled values."""
    by_task: dict[str, list[SampleScore]] = {}
    for s in scores:
        by_task.setdefault(s.task, []).append(s)
    tasks = {task: _task_metrics(group) for task, group in sorted(by_task.items())}
    pooled = _task_metrics(scores) if scores else None
    overall: dict[str, Any] = {"n": len(scores), "num_tasks": len(tasks)}
    for key in [f"acc@{t}" for t in THRESHOLDS] + ["mean_iou", "image_acc", "format_rate", "parse_rate"]:
        overall[f"task_mean_{key}"] = _mean(m[key] for m in tasks.values())
        overall[f"pooled_{key}"] = pooled[key] if pooled else None
    return {"tasks": tasks, "overall": overall}
