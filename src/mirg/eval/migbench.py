"""MIG-Bench's evaluation, reproduced: its prompt, its box extraction and its result files.

Result files written by the public evaluation script are JSON lists of per-sample records (``task``,
``question``, ``answer`` = raw model text, ...) closed by one summary record; they carry no sample ids, so they
are matched to the benchmark by task and order. The compatible scorer (:func:`compat_box`) reproduces that
script's box extraction exactly: it never looks at the image index, tries six patterns in a fixed order and
scores the first match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mirg.data.migbench import REVISED
from mirg.errors import MirgError

RESULT_KEYS = {"task", "question", "answer"}

# The public script's patterns, in its order: the first pattern with any match wins.
_COMPAT_PATTERNS = [
    (re.compile(r"\((\d+),\s*(\d+)\),\s*\((\d+),\s*(\d+)\)"), False),
    (re.compile(r"\[(\d+\.\d+),\s*(\d+\.\d+),\s*(\d+\.\d+),\s*(\d+\.\d+)\]"), True),
    (re.compile(r"\((\d+\.\d+),(\d+\.\d+)\),\((\d+\.\d+),(\d+\.\d+)\)"), True),
    (re.compile(r"\((\d+\.\d+),\s*(\d+\.\d+),\s*(\d+\.\d+),\s*(\d+\.\d+)\)"), True),
    (re.compile(r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\]"), False),
    (re.compile(r"<box>(\d+)\s+(\d+)\s+(\d+)\s+(\d+)</box>"), False),
]



def is_result_file(data: Any) -> bool:
    """True when ``data`` looks like a MIG-Bench result file (records + a closing summary record)."""
    if not (isinstance(data, list) and len(data) >= 1 and isinstance(data[-1], dict)):
        return False
    summary = data[-1]
    if not summary or not all(isinstance(v, dict) and "TOTAL" in v for v in summary.values()):
        return False
    return all(isinstance(r, dict) and RESULT_KEYS <= r.keys() for r in data[:-1])


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
