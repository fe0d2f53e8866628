"""Turn public grounding data into a manifest: MIG-Bench, Migician's MGrounding-630k, VLM-R1 referring data.

One machinery serves every source. A source reads its file and yields, for each would-be sample, either a
:class:`Candidate` (id, task, the images as the file names them, question, target image, and the box in the
source's own coordinate space) or a :class:`Rejection` (id and reason). The machinery then

- finds the images under the ``--images`` folders, reading each distinct file's size once (header only);
- runs the source's own check against the target image's size (VLM-R1: its two boxes must agree);
- checks the box in the source's space (4 numbers, x1 < x2 and y1 < y2, inside 0-1000 / the image) and
  converts it to pixels of the target image through :class:`mirg.geometry.CoordSpace`;
- writes ``OUT/manifest.jsonl`` (image paths relative to OUT), ``OUT/rejected.jsonl`` (``{"id", "reason"}``
  for every would-be sample not converted) and ``OUT/README.md`` (samples per task, rejections by reason).

The target image is read by one rule for all sources, :func:`mirg.data.mentions.pick_target`. A reason is
``"category: detail"``; the card counts rejections by category. Big files are read as a stream; a file
that breaks off is refused in one line and nothing is written (an earlier complete conversion in OUT is
left as it was), so a truncated download is never presented as a complete conversion.

A MIG-Bench sample keeps the benchmark's position (``source_index``) and its question exactly as the file
states it (``source_question``, trailing space included: MIG-Bench's prompt appends its format line to it).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from mirg.data.jsonstream import stream_json_records
from mirg.geometry import CoordSpace, clip_box, is_proper_box
from mirg.data.migbench import ORIGINAL, Benchmark, target_of
from mirg.data.mentions import pick_target
from mirg.schema import QUESTION_BOXES, Sample, Target

Size = tuple[int, int]

#: Side of the stand-in frame used when image files are absent: boxes are then in 0-1000 units.
VIRTUAL_SIDE = 1000
MANIFEST, REJECTED, CARD = "manifest.jsonl", "rejected.jsonl", "README.md"
#: What a conversion leaves in OUT (``skipped.jsonl``: the name older versions gave ``rejected.jsonl``).
OUTPUT_FILES = (MANIFEST, REJECTED, "skipped.jsonl")
PIXEL, NORM1000 = CoordSpace("pixel"), CoordSpace("norm1000")


# ----- what a source yields ----------------------------------------------------------------------------


@dataclass
class Candidate:
    """A would-be sample as its source states it: images as the file names them, the box in ``space``.

    ``slack``: how far (in ``space`` units) the box may overshoot its frame and still be clipped to it;
    ``None`` clips whatever overshoots (MIG-Bench: some original boxes end at 1.05). ``verify``: the
    source's own check given the target image's ``(width, height)``, returning a reason or ``None``.
    """

    id: str
    task: str
    images: list[str]
    question: str
    target: int
    box: Sequence[Any]
    space: CoordSpace
    slack: float | None = 0.0
    verify: Callable[[Size], str | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """A would-be sample that is not converted; ``reason`` is ``"category: detail"`` or just a category."""

    id: str
    reason: str

    @property
    def category(self) -> str:
        return self.reason.split(":", 1)[0]


@dataclass
class Conversion:
    """An in-memory conversion (``mirg score`` reads MIG-Bench files this way)."""

    samples: list[Sample] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)


# ----- images --------------------------------------------------------------------------------------


def find_image(path: str, roots: list[Path]) -> Path | None:
    """Locate an image path under any of ``roots``, dropping leading folders one at a time.

    ``./MIG-Bench/images/common/x.jpg`` is found as ``ROOT/MIG-Bench/images/common/x.jpg``,
    ``ROOT/images/common/x.jpg``, ... down to ``ROOT/x.jpg``: the longest path that exists wins.
    """
    parts = [p for p in Path(path).parts if p not in (".", "")]
    for root in roots:
        for start in range(len(parts)):
            candidate = root.joinpath(*parts[start:])
            if candidate.is_file():
                return candidate
    return None


def image_size(path: Path) -> Size | None:
    """``(width, height)`` from the file's header (PIL decodes no pixels here); ``None`` if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None


class ImageIndex:
    """Finds the images a source names under ``roots``; each distinct name is looked up and measured once.

    With ``relative_to``, the path written for an image is relative to that folder (the output folder),
    so the dataset keeps working wherever it is moved together with its images.
    """

    def __init__(self, roots: list[Path], relative_to: Path | None = None):
        self.roots = roots
        self.base = relative_to.resolve() if relative_to is not None else None
        self._known: dict[str, tuple[str, Size] | str] = {}

    def lookup(self, name: str) -> tuple[str, Size] | str:
        """``(path to write, (width, height))``, or the reason the image can't be used."""
        while name.startswith("./"):  # "./a.jpg" and "a.jpg" are one file, measured once
            name = name[2:]
        hit = self._known.get(name)
        if hit is None:
            hit = self._known[name] = self._find(name)
        return hit

    def _find(self, name: str) -> tuple[str, Size] | str:
        found = find_image(name, self.roots)
        if found is None:
            return f"image file not found: {name}"
        size = image_size(found)
        if size is None:
            return f"image file unreadable: {found}"
        path = str(found) if self.base is None else os.path.relpath(found.resolve(), self.base)
        return path, size


class VirtualImages:
    """Stand-in images when the files are absent: names kept as written, each a 1000x1000 frame."""

    def lookup(self, name: str) -> tuple[str, Size]:
        return name, (VIRTUAL_SIDE, VIRTUAL_SIDE)


# ----- the machinery -------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(box: Sequence[Any]) -> str:
    return "[" + ", ".join(f"{v:g}" if _is_number(v) else repr(v) for v in box) + "]"


def box_problem(box: Any, space: CoordSpace, size: Size, slack: float | None) -> str | None:
    """Why ``box`` (in ``space``, on an image of ``size``) can't be a target, or ``None`` when it can.

    >>> box_problem([316, 58, 764, 999], NORM1000, (900, 616), 0) is None
    True
    >>> box_problem([316, 58, 764, 1010], NORM1000, (900, 616), 0)
    'box outside the image: [316, 58, 764, 1010] exceeds 0-1000'
    >>> box_problem([500, 58, 300, 999], NORM1000, (900, 616), 0)
    'box inverted or empty: [500, 58, 300, 999] (need x1 < x2 and y1 < y2)'
    """
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)):
        return f"unreadable box: {box!r} is not 4 finite numbers"
    if not is_proper_box(box):
        return f"box inverted or empty: {_show(box)} (need x1 < x2 and y1 < y2)"
    if slack is None:
        return None
    width, height = space.extent(size)
    if box[0] < -slack or box[1] < -slack or box[2] > width + slack or box[3] > height + slack:
        frame = f"the {size[0]}x{size[1]} image" if space.name == "pixel" else f"0-{width:g}"
        return f"box outside the image: {_show(box)} exceeds {frame}"
    return None


def to_sample(c: Candidate, images: ImageIndex | VirtualImages) -> Sample | Rejection:
    """One candidate checked against its image files and converted; the box ends in pixels of the target."""
    if not c.question.strip():
        return Rejection(c.id, "empty question")
    if not c.task.strip():
        return Rejection(c.id, "no task")
    if not 1 <= c.target <= len(c.images):
        return Rejection(c.id, f"image number out of range: names image {c.target} of {len(c.images)}")
    found = []
    for name in c.images:
        hit = images.lookup(name)
        if isinstance(hit, str):
            return Rejection(c.id, hit)
        found.append(hit)
    size = found[c.target - 1][1]
    reason = (c.verify(size) if c.verify else None) or box_problem(c.box, c.space, size, c.slack)
    if reason:
        return Rejection(c.id, reason)
    box = clip_box(c.space.to_pixels(c.box, size), size)
    if not is_proper_box(box):
        return Rejection(c.id, f"box inverted or empty: {_show(c.box)} is empty on the {size[0]}x{size[1]} image")
    return Sample(id=c.id, task=c.task, images=[p for p, _ in found], image_sizes=[s for _, s in found],
                  question=c.question, target=Target(image=c.target, bbox=box), extra=dict(c.extra))


def convert_candidates(
    items: Iterable[Candidate | Rejection], images: ImageIndex | VirtualImages
) -> Iterator[Sample | Rejection]:
    """Every source's items as samples or rejections, in order. An id seen before is rejected as a duplicate:
    the first record to give an id keeps it, whether it was converted or not."""
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Rejection):
            yield item
        elif item.id in seen:
            yield Rejection(item.id, "duplicate id: an earlier record gave the same sample id")
        else:
            seen.add(item.id)
            yield to_sample(item, images)


@dataclass
class Report:
    """What a written conversion did: records read, samples per task, rejections per category."""

    source: str
    path: Path
    records: int = 0
    samples: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)

    def add(self, item: Sample | Rejection) -> None:
        if isinstance(item, Rejection):
            self.rejected[item.category] += 1
        else:
            self.samples[item.task] += 1


def write_conversion(source: "Source", images: ImageIndex | VirtualImages, out: Path) -> Report:
    """Convert ``source`` into ``out``: manifest.jsonl, rejected.jsonl, README.md.

    Written as a stream (the 630k-record MGrounding file never sits in memory whole); the manifest and the
    rejections replace earlier ones only once every record was read, so an error on the way (a file
    that breaks off) leaves ``out`` as it was.
    """
    from mirg.schema import write_manifest

    report = Report(source=source.label, path=source.path)
    out.mkdir(parents=True, exist_ok=True)
    pending = out / (REJECTED + ".tmp")

    def samples(handle) -> Iterator[Sample]:
        for item in convert_candidates(source.candidates(), images):
            report.add(item)
            if isinstance(item, Rejection):
                handle.write(json.dumps({"id": item.id, "reason": item.reason}, ensure_ascii=False) + "\n")
            else:
                yield item

    try:
        with pending.open("w", encoding="utf-8") as handle:
            write_manifest(samples(handle), out / MANIFEST)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    pending.replace(out / REJECTED)
    report.records = source.records
    (out / CARD).write_text(dataset_card(source, report), encoding="utf-8")
    (out / "skipped.jsonl").unlink(missing_ok=True)  # an older run's rejections, under their old name
    return report


def _ordered(counts: Counter) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def dataset_card(source: "Source", report: Report) -> str:
    """The dataset card: where the data came from, how boxes were converted, counts per task and reason."""
    n_samples, n_rejected = sum(report.samples.values()), sum(report.rejected.values())
    lines = [
        f"# {source.label} as a manifest",
        "",
        f"Converted from `{source.path.name}`: {report.records} records gave {n_samples} samples; "
        f"{n_rejected} would-be samples were not converted, each listed with its reason in `{REJECTED}`.",
        "",
        *source.notes,
        "Boxes in `manifest.jsonl` are `[x1, y1, x2, y2]` in pixels of the target image, its size read from "
        "the image file; image paths are relative to this folder.",
        "",
        "| task | samples |",
        "|---|---|",
        *[f"| {task} | {n} |" for task, n in sorted(report.samples.items())],
        "",
    ]
    if report.rejected:
        lines += ["| not converted because | count |", "|---|---|",
                  *[f"| {reason} | {n} |" for reason, n in _ordered(report.rejected)], ""]
    return "\n".join(lines)


# ----- sources -------------------------------------------------------------------------------------


class Source:
    """A file of some public format, read into candidates. ``records`` counts what was read so far;
    ``notes`` are the card's lines on the format and its coordinates."""

    label = "data"
    notes: list[str] = []

    def __init__(self, path: Path):
        self.path = path
        self.records = 0

    def candidates(self) -> Iterator[Candidate | Rejection]:
        raise NotImplementedError


class MigBenchSource(Source):
    """MIG-Bench (original: boxes 0-1; revised: 0-1000). Target image: :func:`mirg.data.migbench.target_of`."""

    def __init__(self, bench: Benchmark):
        super().__init__(bench.path)
        self.bench = bench
        self.label = f"MIG-Bench ({bench.version})"
        self.space = CoordSpace("norm1" if bench.version == ORIGINAL else "norm1000")
        self.notes = [f"Boxes were `{self.space.name}` (relative to each image's width and height), clipped to "
                      "the image where they overshoot it; the target image is the one the question names "
                      "(`additional_info` for group_grounding, image 1 for region).", ""]

    def candidates(self) -> Iterator[Candidate | Rejection]:
        for rec in self.bench.records:
            self.records += 1
            k, why = target_of(rec)
            if k is None:
                yield Rejection(rec.id, why)
                continue
            yield Candidate(id=rec.id, task=rec.task, images=rec.images, question=rec.question.strip(), target=k,
                            box=rec.answer, space=self.space, slack=None,
                            extra={"source_index": rec.index, "source_question": rec.question})


def convert_benchmark(bench: Benchmark, image_roots: list[Path], virtual: bool = False) -> Conversion:
    """Convert every record of ``bench`` in memory. With ``virtual``, images are not looked up and each
    counts as a 1000x1000 frame (IoU is unchanged by that scaling, so scores stay exact)."""
    images = VirtualImages() if virtual else ImageIndex(image_roots)
    out = Conversion()
    for item in convert_candidates(MigBenchSource(bench).candidates(), images):
        if isinstance(item, Rejection):
            out.skipped.append((item.id, item.reason))
        else:
            out.samples.append(item)
    return out


# --- MGrounding-630k ---

#: MGrounding ``type`` -> task; any other type is kept as its own task name.
MGROUNDING_TASKS = {
    "common_train": "common_object", "diff_train": "diff", "gg_train": "group_grounding",
    "ot_train": "object_tracking", "refer_train": "refer_grounding", "region_train": "region",
}
PLACEHOLDER, REF_START, REF_END, BOX_START = "<image>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>"
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_ANSWER_BOX = re.compile(rf"<\|box_start\|>\s*\({_NUM},{_NUM}\)\s*,\s*\({_NUM},{_NUM}\)\s*<\|box_end\|>")
_PLACEHOLDERS = re.compile(r"<image>[ \t]*\n?")
_HUMAN, _GPT = {"human", "user"}, {"gpt", "assistant"}


class _Malformed(Exception):
    """A record that is not in the format at all (no pairs can be read from it)."""


def question_text(human: str) -> str:
    """A human turn as a manifest question: ``<image>`` placeholders and the ref tokens dropped, the
    phrase itself kept.

    >>> question_text("<image>\\n<image>\\nFind <|object_ref_start|>a statue<|object_ref_end|>.")
    'Find a statue.'
    """
    text = _PLACEHOLDERS.sub("", human).replace(REF_START, "").replace(REF_END, "")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _turn_pairs(turns: Any) -> list[tuple[str, str]]:
    """The (human, gpt) texts of a ShareGPT conversation, in order; a leading system turn is ignored."""
    if not (isinstance(turns, list) and turns):
        raise _Malformed("conversations must be a non-empty list of turns")
    if all(isinstance(t, dict) for t in turns) and turns[0].get("from") == "system":
        turns = turns[1:]
    roles = []
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and isinstance(turn.get("value"), str)):
            raise _Malformed(f"turn {i + 1} is not {{\"from\": ..., \"value\": text}}")
        roles.append("human" if turn.get("from") in _HUMAN else "gpt" if turn.get("from") in _GPT else "?")
    if len(roles) % 2 or roles != ["human", "gpt"] * (len(roles) // 2):
        raise _Malformed("turns do not alternate human, gpt")
    return [(turns[i]["value"], turns[i + 1]["value"]) for i in range(0, len(turns), 2)]


def _image_list(images: Any) -> list[str]:
    if not (isinstance(images, list) and images and all(isinstance(p, str) and p for p in images)):
        raise _Malformed("images must be a non-empty list of paths")
    return images


def _record_id(record: dict) -> str | None:
    rid = record.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
        return None
    return str(rid)


def mgrounding_pair(sid: str, task: str, images: list[str], human: str, gpt: str) -> Candidate | Rejection:
    """One (human, gpt) pair: one box in the answer, in 0-1000 of the image the answer or question names."""
    n_boxes = gpt.count(BOX_START)
    if n_boxes != 1:
        return Rejection(sid, "no box in the answer" if not n_boxes else f"several boxes in the answer: {n_boxes}")
    match = _ANSWER_BOX.search(gpt)
    if match is None:
        return Rejection(sid, f"unreadable box: {gpt[gpt.index(BOX_START):][:80]!r}")
    question = question_text(human)
    if not question:
        return Rejection(sid, "empty question: the human turn holds only placeholders")
    answer = gpt[:match.start()] + gpt[match.end():]
    k, why = pick_target(len(images), answer=answer, question=question, task=task)
    if k is None:
        return Rejection(sid, why)
    # A box in the question (a tracked object's first position) stays text in 0-1000: said on the sample, so
    # that trajectories written in another space count it instead of mixing two spaces silently.
    extra = {QUESTION_BOXES: NORM1000.name} if BOX_START in human else {}
    return Candidate(id=sid, task=task, images=images, question=question, target=k,
                     box=[float(v) for v in match.groups()], space=NORM1000, extra=extra)


def mgrounding_record(record: Any, position: int) -> Iterator[Candidate | Rejection]:
    """Every (human, gpt) pair of one MGrounding record, as ``RECORDID-K`` (K = the pair's number)."""
    rid = _record_id(record) if isinstance(record, dict) else None
    if rid is None:
        yield Rejection(f"record {position}", "malformed record: not a JSON object with an id")
        return
    try:
        images, pairs = _image_list(record.get("images")), _turn_pairs(record.get("conversations"))
        kind = record.get("type")
        if not (isinstance(kind, str) and kind):
            raise _Malformed("type must be a task type such as gg_train")
    except _Malformed as exc:
        yield Rejection(rid, f"malformed record: {exc}")
        return
    task = MGROUNDING_TASKS.get(kind, kind)
    placeholders = sum(human.count(PLACEHOLDER) for human, _ in pairs)
    for k, (human, gpt) in enumerate(pairs, start=1):
        sid = f"{rid}-{k}"
        if placeholders != len(images):
            yield Rejection(sid, f"placeholder count: {placeholders} <image> placeholders for {len(images)} images")
        else:
            yield mgrounding_pair(sid, task, images, human, gpt)


class MGroundingSource(Source):
    """Migician's MGrounding-630k (the combined file or a per-task file), JSON list or JSON Lines."""

    label = "MGrounding-630k"
    notes = [
        "Every (human, gpt) pair whose answer holds exactly one `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` is one "
        "sample `RECORDID-K`. Answer boxes were `norm1000` (0-1000 of the image's width and height). Target "
        "image: the one the answer names, else image 1 for region, else the one the question names, else "
        "image 1 when there is one image. Tasks from `type`: "
        + ", ".join(f"{k} -> {v}" for k, v in MGROUNDING_TASKS.items()) + "; other types keep their name.",
        "",
    ]

    def candidates(self) -> Iterator[Candidate | Rejection]:
        for position, record in stream_json_records(self.path):
            self.records += 1
            yield from mgrounding_record(record, position)


# --- VLM-R1 referring expressions ---

#: How far (0-1000 units) ``normalized_solution`` may differ from ``solution`` scaled by the image's size:
#: its values are truncated to integers, so a record made from this very image differs by less than 1.
NORMALIZED_TOLERANCE = 10.0


def _agreement(solution: list[float], normalized: list[float]) -> Callable[[Size], str | None]:
    """VLM-R1's check: ``solution`` (pixels) and ``normalized_solution`` (0-1000) must describe the same box on
    the image file at hand. A clear disagreement is what a width/height mix-up looks like."""

    def fits(size: Size) -> bool:
        expected = NORM1000.from_pixels(solution, size)
        return max(abs(e - n) for e, n in zip(expected, normalized)) <= NORMALIZED_TOLERANCE

    def check(size: Size) -> str | None:
        if fits(size):
            return None
        swapped = (f"; it fits a {size[1]}x{size[0]} image: width and height swapped?"
                   if fits((size[1], size[0])) else "")
        return (f"solution and normalized_solution disagree: {_show(solution)} on the {size[0]}x{size[1]} image "
                f"is {_show([round(v) for v in NORM1000.from_pixels(solution, size)])} in 0-1000, not "
                f"{_show(normalized)}{swapped}")

    return check


def _numbers(value: Any) -> list[float] | None:
    if isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value):
        return [float(v) for v in value]
    return None


def vlm_r1_record(record: Any, position: int, stem: str) -> Candidate | Rejection:
    """One referring-expression record: a one-image sample, task refer_grounding, box in pixels."""
    sid = f"{stem}-{position}"
    if not isinstance(record, dict):
        return Rejection(sid, "malformed record: not a JSON object")
    sid = _record_id(record) or sid
    image = record.get("image")
    if isinstance(image, list) and len(image) == 1:
        image = image[0]
    problem = record.get("problem")
    if not (isinstance(image, str) and image):
        return Rejection(sid, "malformed record: image must be one path")
    if not (isinstance(problem, str) and problem.strip()):
        return Rejection(sid, "malformed record: problem must be the question text")
    solution = _numbers(record.get("solution"))
    if solution is None:
        return Rejection(sid, f"unreadable box: solution {record.get('solution')!r} is not 4 finite numbers")
    verify = None
    if record.get("normalized_solution") is not None:
        normalized = _numbers(record["normalized_solution"])
        if normalized is None:
            return Rejection(sid, f"unreadable box: normalized_solution {record['normalized_solution']!r} is not "
                                  "4 finite numbers")
        verify = _agreement(solution, normalized)
    return Candidate(id=sid, task="refer_grounding", images=[image], question=problem.strip(), target=1,
                     box=solution, space=PIXEL, slack=1.0, verify=verify)


class VlmR1Source(Source):
    """VLM-R1's referring-expression (REC) records, JSON list or JSON Lines."""

    label = "VLM-R1 REC"
    notes = [
        "One-image samples, task `refer_grounding`, question = `problem`. Boxes were `solution`, in pixels of "
        "the image (overshoots of up to 1 pixel clipped); where `normalized_solution` (0-1000) is given it must "
        f"agree with `solution` on the image file within {NORMALIZED_TOLERANCE:g} units, which catches a "
        "swapped width and height. Ids: the record's `id`, else FILE-N (N = the record's position).",
        "",
    ]

    def candidates(self) -> Iterator[Candidate | Rejection]:
        for position, record in stream_json_records(self.path):
            self.records += 1
            yield vlm_r1_record(record, position, self.path.stem)


SOURCES: dict[str, type[Source]] = {"mgrounding": MGroundingSource, "vlm-r1": VlmR1Source}
