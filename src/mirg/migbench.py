"""MIG-Bench: detect and read its files, and reproduce the evaluation behind its published numbers.

Two benchmark versions exist: the original (``MIG_data.json``, target boxes as floats 0-1) and the
revised one (``revised_MIG_bench.json``, integers 0-1000, about 300 boxes corrected). Result files
written by the public evaluation script are JSON lists of per-sample records (``task``, ``question``,
``answer`` = raw model text, ...) closed by one summary record; they carry no sample ids, so they are
matched to the benchmark by task and order.

The compatible scorer (:func:`compat_box`) reproduces that script's box extraction exactly: it never
looks at the image index, tries six patterns in a fixed order and scores the first match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mirg.errors import MirgError

ORIGINAL, REVISED = "original", "revised"
BENCH_KEYS = {"task", "images", "question", "answer"}
RESULT_KEYS = {"task", "question", "answer"}

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10}
_IMAGE_MENTION = re.compile(
    r"(\d+)(?:th|st|nd|rd) (?:image|picture)\b|\b(?:image|picture)[- ]?#?(\d+)|\b("
    + "|".join(_ORDINALS) + r") (?:image|picture)\b",
    re.IGNORECASE,
)

# The public script's patterns, in its order: the first pattern with any match wins.
_COMPAT_PATTERNS = [
    (re.compile(r"\((\d+),\s*(\d+)\),\s*\((\d+),\s*(\d+)\)"), False),
    (re.compile(r"\[(\d+\.\d+),\s*(\d+\.\d+),\s*(\d+\.\d+),\s*(\d+\.\d+)\]"), True),
    (re.compile(r"\((\d+\.\d+),(\d+\.\d+)\),\((\d+\.\d+),(\d+\.\d+)\)"), True),
    (re.compile(r"\((\d+\.\d+),\s*(\d+\.\d+),\s*(\d+\.\d+),\s*(\d+\.\d+)\)"), True),
    (re.compile(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\]"), False),
    (re.compile(r"<box>(\d+)\s+(\d+)\s+(\d+)\s+(\d+)</box>"), False),
]


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


def is_result_file(data: Any) -> bool:
    """True when ``data`` looks like a MIG-Bench result file (records + a closing summary record)."""
    if not (isinstance(data, list) and len(data) >= 1 and isinstance(data[-1], dict)):
        return False
    summary = data[-1]
    if not summary or not all(isinstance(v, dict) and "TOTAL" in v for v in summary.values()):
        return False
    return all(isinstance(r, dict) and RESULT_KEYS <= r.keys() for r in data[:-1])


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


def pick_target(n_images: int, answer: str = "", question: str = "", task: str = "") -> tuple[int | None, str]:
    """The 1-based target image of a sample, and, when there is none, why: ``(k, "")`` or ``(None, reason)``.

    The one rule every converted source follows, first match wins: the image the answer names ("It's in
    the third image."; naming two different images is ambiguous and gives none); image 1 for ``region``
    (the source image its region pictures are cut from); the last image the question names ("... locate
    it in the 2th image."); image 1 when only one image is shown.

    >>> pick_target(4, answer="It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>")
    (3, '')
    >>> pick_target(3, question="For the object in the first image, please locate it in the 2nd image.")
    (2, '')
    >>> pick_target(1, question="Find the dog.")
    (1, '')
    >>> pick_target(2, question="Find the dog.")
    (None, 'no image named: 2 images are shown and neither the answer nor the question names one')
    >>> pick_target(2, answer="the object of image 1 is in image 2")
    (None, 'answer names several images: 1, 2')
    >>> pick_target(4, answer="It is in image 5.")
    (None, 'image number out of range: names image 5 of 4')
    """
    named = list(dict.fromkeys(image_mentions(answer)))
    if len(named) > 1:
        return None, f"answer names several images: {', '.join(map(str, named))}"
    if named:
        k = named[0]
    elif task == "region":
        k = 1
    elif mentions := image_mentions(question):
        k = mentions[-1]
    elif n_images == 1:
        k = 1
    else:
        return None, f"no image named: {n_images} images are shown and neither the answer nor the question names one"
    if not 1 <= k <= n_images:
        return None, f"image number out of range: names image {k} of {n_images}"
    return k, ""


def image_mentions(text: str) -> list[int]:
    """The image numbers a text names, in order: ``image 2``, ``image-2``, ``image #2``, ``2nd image``, ``the
    second image`` (first to tenth), and the same with ``picture``.

    >>> image_mentions("Locate in image 1 the object outlined in the second image.")
    [1, 2]
    >>> image_mentions("It's in the third image."), image_mentions("the 2nd image"), image_mentions("Image-3")
    ([3], [2], [3])
    >>> image_mentions("It is in the seventh picture, not picture #4.")
    [7, 4]
    >>> image_mentions("Locate the 1th region picture in the source image. <image>")
    []
    """
    return [int(m.group(1) or m.group(2) or 0) or _ORDINALS[m.group(3).lower()]
            for m in _IMAGE_MENTION.finditer(text)]


def mention_template(text: str) -> str:
    """``text`` with every image it names replaced by ``<image>``: the wording of a question, whichever images.

    >>> mention_template("Locate in image 1 the object outlined in the second image.")
    'Locate in <image> the object outlined in the <image>.'
    """
    return _IMAGE_MENTION.sub("<image>", text)


# --- the benchmark's prompt ------------------------------------------------------------------------

#: What MIG-Bench's evaluation appends to each question, by style: ``migbench`` is the benchmark's box
#: format line (as sent to Qwen2-VL and Migician), ``migbench-think`` the reasoning variant its published
#: re-evaluation sent to R1-style models (UniVG-R1). Typos and spacing are the originals'.
PROMPT_SUFFIXES = {
    "migbench": "Format:<|box_start|>(x1,y1),(x2,y2)<|box_end|>. Don't generate addtional words.",
    "migbench-think": " First output the thinking process in <think> </think> tags and then output the bounding box "
                      "in <answer> </answer> tags.",
}


def benchmark_prompt(question: str, style: str = "migbench") -> str:
    """The text MIG-Bench's evaluation sends after the images: the question exactly as the benchmark file
    states it (trailing space included), then the format line of ``style``, with nothing between them.

    >>> benchmark_prompt("Find it in image-2. ")
    "Find it in image-2. Format:<|box_start|>(x1,y1),(x2,y2)<|box_end|>. Don't generate addtional words."
    >>> benchmark_prompt("Find it in image-2.", "migbench-think")[:40]
    'Find it in image-2. First output the thi'
    """
    if style not in PROMPT_SUFFIXES:
        raise MirgError(f"unknown MIG-Bench prompt style {style!r}; choose one of {', '.join(PROMPT_SUFFIXES)}")
    return question + PROMPT_SUFFIXES[style]


# --- the compatible scorer -------------------------------------------------------------------------


def _first_match(text: str) -> tuple[list[tuple[str, ...]], bool]:
    for pattern, decimals in _COMPAT_PATTERNS:
        matches = pattern.findall(text)
        if matches:
            return matches, decimals
    return [], False


def compat_box(text: str, version: str) -> list[float] | None:
    """The box MIG-Bench's evaluation reads from a raw response, in the benchmark's scale.

    Revised: integers 0-1000; a decimal match cannot be read as integers and, like no match, gives
    ``None`` (the script substitutes ``[0, 0, 0, 0]``, which scores IoU 0 all the same). Original:
    floats; one match divides values >= 1 by 1000, several matches divide values > 1 by 1000 and take
    the first; no match gives ``None`` (scores 0).

    >>> compat_box("the dog (120,40),(300,220)", "revised")
    [120, 40, 300, 220]
    >>> compat_box("[0.1, 0.2, 0.3, 0.4]", "revised") is None
    True
    >>> compat_box("[120, 40, 300, 220]", "original")
    [0.12, 0.04, 0.3, 0.22]
    """
    matches, decimals = _first_match(text)
    if not matches:
        return None
    if version == REVISED:
        return None if decimals else [int(v) for v in matches[0]]
    values = [float(v) for v in matches[0]]
    if len(matches) == 1:
        return [v / 1000 if v >= 1 else v for v in values]
    return [v / 1000 if v > 1 else v for v in values]


def migician_yscale(box: Sequence[float]) -> list[float]:
    """Migician's published outputs are stretched vertically before scoring (revised benchmark, 0-1000)."""
    out = list(box)
    out[1] = int(round(min(out[1] / 1000 * 1.05, 0.999), 3) * 1000)
    out[3] = int(round(min(out[3] / 1000 * 1.10, 0.999), 3) * 1000)
    return out


# --- result files ----------------------------------------------------------------------------------


@dataclass
class ResultRecord:
    task: str
    question: str
    response: str


def read_result_file(data: list, path: Path) -> list[ResultRecord]:
    """The per-sample records of a result file (its closing summary dropped), checked for shape."""
    out = []
    for i, rec in enumerate(data[:-1]):
        response = rec.get("answer")
        if not isinstance(response, str):
            raise MirgError(f"{path}: record {i}: answer: must be the raw model text, got {type(response).__name__}")
        out.append(ResultRecord(task=str(rec["task"]), question=str(rec["question"]), response=response))
    return out


def match_results(
    bench_by_task: dict[str, list[Any]], results: list[ResultRecord], path: Path
) -> list[tuple[Any, str]]:
    """Pair each result record with the benchmark sample of the same task at the same position.

    ``bench_by_task`` maps a task to its samples in file order (anything with a ``question``). The
    record's question must begin with the sample's question (the script appends its format prompt).
    """
    position: dict[str, int] = {}
    pairs = []
    for i, rec in enumerate(results):
        samples = bench_by_task.get(rec.task)
        if samples is None:
            raise MirgError(f"{path}: record {i}: task {rec.task!r} does not occur in the benchmark data")
        k = position.get(rec.task, 0)
        if k >= len(samples):
            raise MirgError(f"{path}: has more {rec.task!r} records than the benchmark's {len(samples)}")
        sample = samples[k]
        if not rec.question.startswith(sample.question.strip()[:40]):
            raise MirgError(
                f"{path}: record {i} ({rec.task} #{k}) asks a different question than the benchmark: "
                "is this result file from another benchmark version?"
            )
        position[rec.task] = k + 1
        pairs.append((sample, rec.response))
    for task, k in position.items():
        if k != len(bench_by_task[task]):
            raise MirgError(f"{path}: has {k} {task!r} records but the benchmark has {len(bench_by_task[task])}")
    return pairs
