"""MIG-Bench's benchmark files: detect and read them, and the target image of each sample.

Two benchmark versions exist: the original (``MIG_data.json``, target boxes as floats 0-1) and the
revised one (``revised_MIG_bench.json``, integers 0-1000, about 300 boxes corrected). Evaluating against them
the way published numbers were made is :mod:`mirg.eval.migbench`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.data.mentions import pick_target
from mirg.errors import MirgError

ORIGINAL, REVISED = "original", "revised"
BENCH_KEYS = {"task", "images", "question", "answer"}


@dataclass
class BenchRecord:
    """One MIG-Bench sample as the benchmark file states it (boxes in the benchmark's own scale)."""

    index: int
    id: str
    task: str
    images: list[str]
    question: str
    answer: list[float]
    additional_info: str


@dataclass
class Benchmark:
    version: str
    records: list[BenchRecord]
    path: Path

    @property
    def scale(self) -> float:
        """Units of a full image side: 1 (original) or 1000 (revised)."""
        return 1.0 if self.version == ORIGINAL else 1000.0


def is_benchmark(data: Any) -> bool:
    """True when ``data`` (parsed JSON) looks like a MIG-Bench file."""
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(r, dict) and BENCH_KEYS <= r.keys() and isinstance(r.get("images"), list) for r in data)
    )


def detect_version(data: list[dict]) -> str:
    """``original`` when the target boxes are fractions, ``revised`` when they are on the 0-1000 scale.

    A few original boxes overshoot 1 slightly (up to ~1.05), so the cut is at 2, not 1.
    """
    for rec in data:
        box = rec["answer"]
        if isinstance(box, list) and any(isinstance(v, (int, float)) and v > 2 for v in box):
            return REVISED
    return ORIGINAL


def _check_box(rec: dict, i: int, path: Path) -> list[float]:
    box = rec.get("answer")
    ok = isinstance(box, list) and len(box) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in box
    )
    if not ok:
        raise MirgError(f"{path}: record {i}: answer: must be a box of 4 numbers, got {box!r}")
    return [float(v) for v in box]


def load_benchmark(data: list[dict], path: Path) -> Benchmark:
    """Build a :class:`Benchmark` from parsed MIG-Bench JSON; ids are ``<task>-<position in task>``."""
    counts: dict[str, int] = {}
    records = []
    for i, rec in enumerate(data):
        task = str(rec["task"])
        k = counts.get(task, 0)
        counts[task] = k + 1
        records.append(
            BenchRecord(
                index=i,
                id=f"{task}-{k:04d}",
                task=task,
                images=[str(p) for p in rec["images"]],
                question=str(rec["question"]),
                answer=_check_box(rec, i, path),
                additional_info=str(rec.get("additional_info") or ""),
            )
        )
    return Benchmark(version=detect_version(data), records=records, path=path)


def target_image(rec: BenchRecord) -> int | None:
    """The 1-based image the question asks about, read from its text; ``None`` when it names none.

    ``region`` asks for a region inside the source image, which is always image 1; ``group_grounding``
    names the image only in ``additional_info`` (the reference answer). Otherwise the last image the
    question mentions. See :func:`pick_target`.
    """
    return target_of(rec)[0]


def target_of(rec: BenchRecord) -> tuple[int | None, str]:
    """:func:`target_image` and, when there is none, why (see :func:`pick_target`)."""
    answer = rec.additional_info if rec.task == "group_grounding" else ""
    question = "" if rec.task == "group_grounding" else rec.question
    return pick_target(len(rec.images), answer=answer, question=question, task=rec.task)
