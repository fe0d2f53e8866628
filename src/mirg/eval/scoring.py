"""Metrics from predictions: per sample, per task and overall.

Default mode is image-aware: the lenient parse gives the predicted image and box; the box is converted
from the model's coordinate space to pixels of the *predicted* image and clipped to it; IoU is 0 when
the predicted image is wrong. ``compat`` mode reproduces MIG-Bench's own evaluation (see
:mod:`mirg.eval.migbench`), which never checks the image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from mirg.answer import AnswerError, check_strict, parse_answer
from mirg.geometry import CoordSpace, clip_box, iou
from mirg.eval.migbench import compat_box, migician_yscale
from mirg.data.migbench import BenchRecord
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
    for t in THRESHOLDS:
        overall[f"task_mean_acc@{t}_se"] = task_mean_se([(m[f"acc@{t}"], m["n"]) for m in tasks.values()])
    return {"tasks": tasks, "overall": overall}


def task_mean_se(rates: Sequence[tuple[float, int]]) -> float | None:
    """The standard error of a task mean of accuracies from the samples drawn: each task's accuracy a binomial
    proportion ``p`` of its ``n`` samples, so ``sqrt(sum(p (1 - p) / n)) / tasks``. On 200 samples in ten tasks
    near 50% it is about 3.5 points, on 2,000 about 1.1: two models measured on the same few samples differ by
    that much by the draw of samples alone."""
    if not rates:
        return None
    return math.sqrt(sum(p * (1 - p) / n for p, n in rates)) / len(rates)


def read_sample_scores(path: str | Path) -> list[SampleScore]:
    """The ``per_sample.jsonl`` that `mirg score` / `mirg eval` write, back as :class:`SampleScore` rows."""
    import json

    from mirg.errors import MirgError
    from mirg.textfiles import open_text

    rows = []
    with open_text(path) as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(SampleScore(**json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise MirgError(f"{path}:{line_no}: not a per-sample score row ({exc})") from None
    return rows


def paired_difference(
    a: Sequence[SampleScore], b: Sequence[SampleScore], threshold: float = 0.5, reps: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Task-mean ``acc@threshold`` of ``a`` minus that of ``b``, two models scored on the same samples, with a
    paired bootstrap: the samples of each task are drawn again with replacement (the same draw for both models)
    ``reps`` times. Returns the difference, its bootstrap standard error, the 95% interval and the draws
    (``diffs``, to combine several seeds). The interval covers the choice of test samples only, not the
    variation between training runs."""
    import numpy as np

    from mirg.errors import MirgError

    by_id = {s.id: s for s in b}
    if len(by_id) != len(b) or len({s.id for s in a}) != len(a) or set(by_id) != {s.id for s in a}:
        raise MirgError(f"a paired comparison needs the same samples, each once, in both runs "
                        f"({len(a)} and {len(b)} rows, {len(set(by_id) & {s.id for s in a})} ids in common)")
    tasks: dict[str, list[tuple[bool, bool]]] = {}
    for s in a:
        other = by_id[s.id]
        if other.task != s.task:
            raise MirgError(f"sample {s.id} is {s.task!r} in one run and {other.task!r} in the other")
        tasks.setdefault(s.task, []).append((s.iou >= threshold, other.iou >= threshold))
    if not tasks:
        raise MirgError("a paired comparison needs at least one sample")
    rng = np.random.default_rng(seed)
    observed, draws = 0.0, np.zeros(reps)
    for pairs in tasks.values():
        delta = np.array([float(x) - float(y) for x, y in pairs])
        observed += delta.mean()
        draws += delta[rng.integers(0, len(delta), size=(reps, len(delta)))].mean(axis=1)
    observed, draws = observed / len(tasks), draws / len(tasks)
    low, high = np.percentile(draws, [2.5, 97.5])
    se = float(draws.std(ddof=1)) if reps > 1 else 0.0
    return {"diff": float(observed), "se": se, "ci95": [float(low), float(high)], "n": len(a), "num_tasks": len(tasks),
            "diffs": draws}


def paired_difference_over_seeds(
    runs: dict[int, tuple[Sequence[SampleScore], Sequence[SampleScore]]], threshold: float = 0.5, reps: int = 2000
) -> dict[str, Any]:
    """:func:`paired_difference` for each seed's pair of runs (``{seed: (a, b)}``, each bootstrapped with its seed)
    and their mean: the difference averaged over seeds, with the seeds' bootstrap draws averaged for its standard
    error and 95% interval. The interval covers the test samples drawn, not the spread between training runs, which
    the per-seed values show. Returns ``{"per_seed": {seed: {...}}, "mean": {"diff", "se", "ci95"}}``, no draws."""
    import numpy as np

    from mirg.errors import MirgError

    if not runs:
        raise MirgError("a paired comparison over seeds needs at least one seed")
    per_seed, draws = {}, []
    for seed, (a, b) in runs.items():
        d = paired_difference(a, b, threshold=threshold, reps=reps, seed=seed)
        draws.append(d.pop("diffs"))
        per_seed[seed] = d
    mean = sum(draws) / len(draws)
    return {"per_seed": per_seed, "mean": {
        "diff": float(np.mean([d["diff"] for d in per_seed.values()])),
        "se": float(mean.std(ddof=1)) if reps > 1 else 0.0,
        "ci95": [float(v) for v in np.percentile(mean, [2.5, 97.5])]}}


def describe_difference(d: dict[str, Any]) -> str:
    """A difference of :func:`paired_difference` in percentage points with its 95% interval: ``+1.3 [+0.1, +2.4]``."""
    low, high = d["ci95"]
    return f"{100 * d['diff']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
