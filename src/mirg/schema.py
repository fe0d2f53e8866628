"""The manifest: one JSON sample per line, boxes in pixels of the original image.

>>> s = Sample(id="a", task="common_object", images=["1.png", "2.png"], image_sizes=[(64, 48), (64, 48)],
...            question="Find the cat in image 2.", target=Target(image=2, bbox=(1.0, 2.0, 30.0, 40.0)))
>>> sample_from_dict(sample_to_dict(s)) == s
True

A bad record is reported with file, line, field and reason; nothing is dropped silently::

    manifest.jsonl:7: target.bbox: box [10, 5, 4, 20] is inverted (need x1 < x2 and y1 < y2)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mirg.errors import ManifestError, MirgError
from mirg.textfiles import open_text

Box = tuple[float, float, float, float]

_KNOWN_KEYS = {"id", "task", "images", "image_sizes", "question", "target", "objects", "image_notes"}
#: An optional key: the coordinate space of boxes written as text in the question (a converted MGrounding tracking
#: question gives the object's first box in 0-1000); trajectories in another space count such samples.
QUESTION_BOXES = "question_boxes"


@dataclass(frozen=True)
class ObjectAnn:
    """One annotated object of one image: a label, free-form attributes and a pixel box."""

    label: str
    bbox: Box
    attributes: dict[str, Any] = field(default_factory=dict, compare=True, hash=False)


@dataclass(frozen=True)
class Target:
    """The answer: the 1-based image index and the object's pixel box in that image."""

    image: int
    bbox: Box


@dataclass
class Sample:
    """One multi-image grounding sample. ``image_sizes`` are ``(width, height)`` per image."""

    id: str
    task: str
    images: list[str]
    image_sizes: list[tuple[int, int]]
    question: str
    target: Target
    objects: list[list[ObjectAnn]] | None = None
    image_notes: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_images(self) -> int:
        return len(self.images)

    def target_size(self) -> tuple[int, int]:
        return self.image_sizes[self.target.image - 1]


class _RecordProblem(Exception):
    def __init__(self, field_name: str, reason: str):
        super().__init__(f"{field_name}: {reason}")


def _need(record: dict, key: str) -> Any:
    if key not in record:
        raise _RecordProblem(key, "missing field")
    return record[key]


def _number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _read_box(value: Any, field_name: str, size: tuple[int, int] | None) -> Box:
    if not (isinstance(value, list) and len(value) == 4 and all(_number(v) for v in value)):
        raise _RecordProblem(field_name, f"must be [x1, y1, x2, y2] of 4 finite numbers, got {value!r}")
    box = (float(value[0]), float(value[1]), float(value[2]), float(value[3]))
    if not (box[0] < box[2] and box[1] < box[3]):
        raise _RecordProblem(field_name, f"box {value} is inverted or empty (need x1 < x2 and y1 < y2)")
    if size is not None:
        width, height = size
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            raise _RecordProblem(field_name, f"box {value} is outside the {width}x{height} image")
    return box


def _read_sizes(record: dict, n_images: int) -> list[tuple[int, int]]:
    sizes = _need(record, "image_sizes")
    if not isinstance(sizes, list):
        raise _RecordProblem("image_sizes", "must be a list of [width, height]")
    if len(sizes) != n_images:
        raise _RecordProblem("image_sizes", f"has {len(sizes)} entries but there are {n_images} images")
    out = []
    for i, size in enumerate(sizes):
        ok = isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size
        )
        if not ok:
            raise _RecordProblem(f"image_sizes[{i}]", f"must be [width, height] of positive integers, got {size!r}")
        out.append((size[0], size[1]))
    return out


def _read_images(record: dict) -> list[str]:
    images = _need(record, "images")
    if not (isinstance(images, list) and images and all(isinstance(p, str) and p for p in images)):
        raise _RecordProblem("images", "must be a non-empty list of image paths")
    return images


def _read_target(record: dict, sizes: list[tuple[int, int]]) -> Target:
    target = _need(record, "target")
    if not isinstance(target, dict):
        raise _RecordProblem("target", 'must be {"image": k, "bbox": [x1, y1, x2, y2]}')
    image = target.get("image")
    if isinstance(image, bool) or not isinstance(image, int):
        raise _RecordProblem("target.image", f"must be an integer 1..{len(sizes)}, got {image!r}")
    if not 1 <= image <= len(sizes):
        raise _RecordProblem("target.image", f"{image} is out of range 1..{len(sizes)}")
    if "bbox" not in target:
        raise _RecordProblem("target.bbox", "missing field")
    return Target(image=image, bbox=_read_box(target["bbox"], "target.bbox", sizes[image - 1]))


def _read_objects(record: dict, sizes: list[tuple[int, int]]) -> list[list[ObjectAnn]] | None:
    objects = record.get("objects")
    if objects is None:
        return None
    if not isinstance(objects, list) or len(objects) != len(sizes):
        raise _RecordProblem("objects", f"must be a list with one list of objects per image ({len(sizes)})")
    out = []
    for i, per_image in enumerate(objects):
        if not isinstance(per_image, list):
            raise _RecordProblem(f"objects[{i}]", "must be a list of objects")
        anns = []
        for j, obj in enumerate(per_image):
            where = f"objects[{i}][{j}]"
            if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
                raise _RecordProblem(f"{where}.label", "missing field (a string)")
            if "bbox" not in obj:
                raise _RecordProblem(f"{where}.bbox", "missing field")
            attrs = obj.get("attributes", {})
            if not isinstance(attrs, dict):
                raise _RecordProblem(f"{where}.attributes", "must be an object")
            anns.append(ObjectAnn(obj["label"], _read_box(obj["bbox"], f"{where}.bbox", sizes[i]), attrs))
        out.append(anns)
    return out


def _read_notes(record: dict, n_images: int) -> list[str] | None:
    notes = record.get("image_notes")
    if notes is None:
        return None
    if not (isinstance(notes, list) and len(notes) == n_images and all(isinstance(n, str) for n in notes)):
        raise _RecordProblem("image_notes", f"must be a list of {n_images} strings, one per image")
    return notes


def _read_text(record: dict, key: str) -> str:
    value = _need(record, key)
    if not isinstance(value, str) or not value:
        raise _RecordProblem(key, "must be a non-empty string")
    return value


def sample_from_dict(record: Any) -> Sample:
    """Validate one manifest record and build a :class:`Sample`; raises ``MirgError`` on the first problem."""
    try:
        return _sample_from_dict(record)
    except _RecordProblem as exc:
        raise MirgError(str(exc)) from None


def _sample_from_dict(record: Any) -> Sample:
    if not isinstance(record, dict):
        raise _RecordProblem("(record)", "must be a JSON object")
    sample_id = _need(record, "id")
    if not isinstance(sample_id, str) or not sample_id:
        raise _RecordProblem("id", "must be a non-empty string")
    images = _read_images(record)
    sizes = _read_sizes(record, len(images))
    return Sample(
        id=sample_id,
        task=_read_text(record, "task"),
        images=images,
        image_sizes=sizes,
        question=_read_text(record, "question"),
        target=_read_target(record, sizes),
        objects=_read_objects(record, sizes),
        image_notes=_read_notes(record, len(images)),
        extra={k: v for k, v in record.items() if k not in _KNOWN_KEYS},
    )


def _box_json(box: Box) -> list[float | int]:
    return [int(v) if float(v).is_integer() else v for v in box]


def sample_to_dict(sample: Sample) -> dict[str, Any]:
    """The manifest record of ``sample`` (integral coordinates written as integers)."""
    record: dict[str, Any] = {
        "id": sample.id,
        "task": sample.task,
        "images": list(sample.images),
        "image_sizes": [list(s) for s in sample.image_sizes],
        "question": sample.question,
        "target": {"image": sample.target.image, "bbox": _box_json(sample.target.bbox)},
    }
    if sample.objects is not None:
        record["objects"] = [
            [_object_json(o) for o in per_image] for per_image in sample.objects
        ]
    if sample.image_notes is not None:
        record["image_notes"] = list(sample.image_notes)
    record.update(sample.extra)
    return record


def _object_json(obj: ObjectAnn) -> dict[str, Any]:
    out: dict[str, Any] = {"label": obj.label, "bbox": _box_json(obj.bbox)}
    if obj.attributes:
        out["attributes"] = obj.attributes
    return out


def parse_manifest_lines(lines: Iterable[str], source: str) -> list[Sample]:
    """Parse manifest lines; collect every problem as ``source:line: field: reason`` and raise them together."""
    samples: list[Sample] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            problems.append(f"{source}:{lineno}: (record): unreadable JSON ({exc.msg})")
            continue
        try:
            sample = _sample_from_dict(record)
        except _RecordProblem as exc:
            problems.append(f"{source}:{lineno}: {exc}")
            continue
        if sample.id in seen:
            problems.append(f"{source}:{lineno}: id: duplicate id {sample.id!r} (first on line {seen[sample.id]})")
            continue
        seen[sample.id] = lineno
        samples.append(sample)
    if problems:
        raise ManifestError(problems)
    return samples


def manifest_path(path: str | Path) -> Path:
    """``path`` itself when it is a file; ``path/manifest.jsonl`` when it is a dataset folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise MirgError(f"{path}: no such manifest file")
    return path


def read_manifest(path: str | Path) -> list[Sample]:
    """Read and validate a manifest (a ``.jsonl`` file or a dataset folder holding ``manifest.jsonl``)."""
    path = manifest_path(path)
    with open_text(path) as handle:
        return parse_manifest_lines(handle, str(path))


def write_manifest(samples: Iterable[Sample], path: str | Path) -> int:
    """Write samples as JSONL, each validated before it is written; returns the count.

    ``samples`` may be a generator of any length: lines go to ``PATH.tmp`` as they come, which replaces
    ``path`` only once all are written. An invalid sample, or any error the generator raises, leaves
    ``path`` as it was and no ``.tmp`` behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for sample in samples:
                record = sample_to_dict(sample)
                sample_from_dict(record)
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return count


def check_image_files(samples: Iterable[Sample], root: str | Path) -> list[str]:
    """Problems with the image files behind ``samples``: missing, unreadable, or a size that disagrees.

    Paths are relative to ``root`` (the folder holding the manifest). Reads image headers only.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    problems = []
    for sample in samples:
        for i, (rel, size) in enumerate(zip(sample.images, sample.image_sizes)):
            path = root / rel
            try:
                with Image.open(path) as img:
                    actual = img.size
            except FileNotFoundError:
                problems.append(f"{sample.id}: images[{i}]: {path} does not exist")
                continue
            except (UnidentifiedImageError, OSError) as exc:
                problems.append(f"{sample.id}: images[{i}]: {path} is not a readable image ({exc})")
                continue
            if tuple(actual) != tuple(size):
                problems.append(
                    f"{sample.id}: image_sizes[{i}]: manifest says {size[0]}x{size[1]} but {path} is {actual[0]}x{actual[1]}"
                )
    return problems
