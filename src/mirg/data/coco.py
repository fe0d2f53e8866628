"""COCO-format annotations (COCO, Objects365, LVIS): instances and captions, read as a stream.

An instances file is one JSON object: ``images`` (``id``, ``file_name``, ``width``, ``height``),
``annotations`` (``image_id``, ``category_id``, ``bbox`` = ``[x, y, width, height]`` in pixels, ``iscrowd``) and
``categories`` (``id``, ``name``). A captions file has the same ``images`` and ``annotations`` holding
``caption`` strings. Files of hundreds of megabytes are read as a stream, record by record
(:func:`mirg.data.jsonstream.array_items`), so only what is kept (ids, names, boxes) is held, never the whole
document.

What becomes of an annotation:

- a crowd region (``iscrowd`` 1) is not an object: it is counted, and its category still counts as present in
  the image (a question may never treat that image as free of the category);
- a box is converted to ``[x1, y1, x2, y2]`` pixels (:func:`mirg.geometry.xywh_to_xyxy`); one that leaves its
  image by less than :data:`EDGE_TOLERANCE` pixels (float rounding in the published files) is clipped, one
  further out, an empty one, or one naming an unknown image or category is rejected with its reason. Rejected
  boxes, like crowds, still mark their category present.

>>> import tempfile, json
>>> path = Path(tempfile.mkdtemp()) / "instances.json"
>>> _ = path.write_text(json.dumps({
...     "images": [{"id": 1, "file_name": "a.jpg", "width": 900, "height": 616}],
...     "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 0},
...                     {"id": 8, "image_id": 1, "category_id": 3, "bbox": [0, 0, 900, 616], "iscrowd": 1}],
...     "categories": [{"id": 3, "name": "dog"}]}))
>>> coco = read_instances(path)
>>> coco.objects[1], coco.crowd, coco.present(1)
([ObjectAnn(label='dog', bbox=(10.0, 20.0, 40.0, 60.0), attributes={})], 1, {'dog'})
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mirg.data.jsonstream import array_items
from mirg.errors import MirgError
from mirg.geometry import box_inside, clip_box, is_proper_box, xywh_to_xyxy
from mirg.schema import ObjectAnn

#: A COCO box may leave its image by this many pixels (float rounding) and is then clipped; further is rejected.
EDGE_TOLERANCE = 1.0

REASON_BAD_IMAGE = "image record without an integer id, a file_name and positive integer width and height"
REASON_DUPLICATE_IMAGE = "duplicate image id"
REASON_BAD_ANNOTATION = "annotation without an integer image_id and category_id and a bbox of 4 finite numbers"
REASON_UNKNOWN_IMAGE = "image_id names no image of the file"
REASON_UNKNOWN_CATEGORY = "category_id names no category of the file"
REASON_EMPTY = "empty box (width or height 0 or less)"
REASON_OUTSIDE = "box outside its image"


# ----- instances -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CocoImage:
    """One image record: its id, its ``file_name`` as the file writes it and its size ``(width, height)``."""

    id: int
    file_name: str
    size: tuple[int, int]

    @property
    def base_name(self) -> str:
        return PurePosixPath(self.file_name.replace("\\", "/")).name


@dataclass
class CocoSet:
    """What an instances file holds, ready to attach: objects per image id and every rejection with its reason."""

    path: Path
    images: dict[int, CocoImage] = field(default_factory=dict)
    #: image id -> its objects (crowds and rejected boxes left out), in file order
    objects: dict[int, list[ObjectAnn]] = field(default_factory=dict)
    #: image id -> categories shown there only by a crowd region or a rejected box
    hidden: dict[int, set[str]] = field(default_factory=dict)
    annotations: int = 0
    crowd: int = 0
    #: ``{"image": ..., "annotation": ..., "reason": ...}`` for every image or annotation not used
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def present(self, image_id: int) -> set[str]:
        """Every category the image shows: its objects' labels, crowds and rejected boxes included."""
        return {o.label for o in self.objects.get(image_id, ())} | self.hidden.get(image_id, set())

    def reasons(self) -> Counter:
        return Counter(r["reason"] for r in self.rejected)

    @property
    def attached(self) -> int:
        return sum(len(v) for v in self.objects.values())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _image_record(item: Any) -> CocoImage | None:
    if not isinstance(item, dict):
        return None
    ident, name, width, height = (item.get(k) for k in ("id", "file_name", "width", "height"))
    if not (_is_int(ident) and isinstance(name, str) and name and _is_int(width) and _is_int(height)):
        return None
    if width <= 0 or height <= 0:
        return None
    return CocoImage(ident, name, (width, height))


@dataclass
class _Raw:
    """Annotations as compact columns until images and categories (which may come later) are known."""

    ids: array = field(default_factory=lambda: array("q"))
    image_ids: array = field(default_factory=lambda: array("q"))
    category_ids: array = field(default_factory=lambda: array("q"))
    crowd: array = field(default_factory=lambda: array("b"))
    boxes: array = field(default_factory=lambda: array("d"))

    def add(self, ident: int, item: dict) -> None:
        self.ids.append(ident)
        self.image_ids.append(item["image_id"])
        self.category_ids.append(item["category_id"])
        self.crowd.append(1 if item.get("iscrowd") else 0)
        self.boxes.extend(float(v) for v in item["bbox"])


def _annotation_ok(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    box = item.get("bbox")
    return (_is_int(item.get("image_id")) and _is_int(item.get("category_id")) and isinstance(box, list)
            and len(box) == 4 and all(_finite(v) for v in box))


def read_instances(path: str | Path, progress: bool = False) -> CocoSet:
    """Read an instances file: images, categories and every annotation, rejections counted with their reason."""
    path = Path(path)
    coco, raw, categories = CocoSet(path), _Raw(), {}
    for key, item in array_items(path, ("images", "categories", "annotations"), progress):
        if key == "images":
            _add_image(coco, item)
        elif key == "categories":
            if isinstance(item, dict) and _is_int(item.get("id")) and isinstance(item.get("name"), str):
                categories[item["id"]] = item["name"]
        elif _annotation_ok(item):
            ident = item.get("id")
            raw.add(ident if _is_int(ident) else -1, item)
        else:
            ident = item.get("id") if isinstance(item, dict) else None
            coco.rejected.append({"annotation": ident, "reason": REASON_BAD_ANNOTATION})
    if not coco.images and not any(r.get("image") is not None or "image_id" in r for r in coco.rejected):
        raise MirgError(f"{path}: not a COCO instances file (no 'images' list, or an empty one)")
    coco.annotations = len(raw.ids) + sum(1 for r in coco.rejected if r["reason"] == REASON_BAD_ANNOTATION)
    if coco.annotations and not categories:
        raise MirgError(f"{path}: not a COCO instances file (annotations but no 'categories' list: a captions file?)")
    _resolve(coco, raw, categories)
    return coco


def _add_image(coco: CocoSet, item: Any) -> None:
    image = _image_record(item)
    if image is None:
        name = item.get("file_name") if isinstance(item, dict) else None
        coco.rejected.append({"image": name, "reason": REASON_BAD_IMAGE})
    elif image.id in coco.images:
        coco.rejected.append({"image": image.file_name, "image_id": image.id, "reason": REASON_DUPLICATE_IMAGE})
    else:
        coco.images[image.id] = image


def _resolve(coco: CocoSet, raw: _Raw, categories: dict[int, str]) -> None:
    """Turn the raw columns into objects per image: names, pixel boxes, and the rejections."""
    for i, ident in enumerate(raw.ids):
        image = coco.images.get(raw.image_ids[i])
        label = categories.get(raw.category_ids[i])
        reject = REASON_UNKNOWN_IMAGE if image is None else REASON_UNKNOWN_CATEGORY if label is None else None
        box = xywh_to_xyxy(raw.boxes[4 * i:4 * i + 4])
        if reject is None and raw.crowd[i]:
            coco.crowd += 1
            coco.hidden.setdefault(image.id, set()).add(label)
            continue
        if reject is None:
            reject, box = _checked_box(box, image.size)
        if reject is not None:
            row = {"annotation": ident if ident >= 0 else None, "image_id": raw.image_ids[i], "reason": reject}
            coco.rejected.append(row)
            if image is not None and label is not None:
                coco.hidden.setdefault(image.id, set()).add(label)
            continue
        coco.objects.setdefault(image.id, []).append(ObjectAnn(label, box))


def _checked_box(box: tuple, size: tuple[int, int]) -> tuple[str | None, tuple]:
    """``(None, box)`` for a usable box (clipped when within :data:`EDGE_TOLERANCE`), else ``(reason, box)``."""
    if not is_proper_box(box):
        return REASON_EMPTY, box
    if box_inside(box, size):
        return None, box
    width, height = size
    grown = (-EDGE_TOLERANCE, -EDGE_TOLERANCE, width + EDGE_TOLERANCE, height + EDGE_TOLERANCE)
    if not (grown[0] <= box[0] and grown[1] <= box[1] and box[2] <= grown[2] and box[3] <= grown[3]):
        return REASON_OUTSIDE, box
    clipped = clip_box(box, size)
    return (None, clipped) if is_proper_box(clipped) else (REASON_EMPTY, box)


# ----- captions ------------------------------------------------------------------------------------------------


def read_captions(path: str | Path) -> dict[str, str]:
    """``file name -> caption``: each image's first caption in file order (whitespace tidied), from a COCO
    captions file (its own ``images`` list names the files). Keyed by the file's base name, as images are
    matched."""
    path = Path(path)
    names: dict[int, str] = {}
    first: dict[int, str] = {}
    seen: set[str] = set()
    for key, item in array_items(path, ("images", "annotations"), progress=False):
        seen.add(key)
        if not isinstance(item, dict):
            continue
        if key == "images" and _is_int(item.get("id")) and isinstance(item.get("file_name"), str):
            names.setdefault(item["id"], item["file_name"])
        elif key == "annotations" and _is_int(item.get("image_id")) and isinstance(item.get("caption"), str):
            text = " ".join(item["caption"].split())
            if text:
                first.setdefault(item["image_id"], text)
    if not {"images", "annotations"} <= seen:
        raise MirgError(f"{path}: not a COCO captions file (it needs an 'images' and an 'annotations' list, "
                        "neither empty)")
    return {PurePosixPath(names[i].replace("\\", "/")).name: text for i, text in first.items() if i in names}


# ----- image notes -----------------------------------------------------------------------------------------------


def objects_note(objects: list[ObjectAnn]) -> str:
    """The image-level note of a photo without a caption: what its annotations say it shows, most frequent first.

    >>> box = (0, 0, 1, 1)
    >>> objects_note([ObjectAnn("dog", box), ObjectAnn("person", box), ObjectAnn("person", box)])
    'a photo with these annotated objects: person (2), dog'
    >>> objects_note([])
    'a photo with no annotated objects'
    """
    if not objects:
        return "a photo with no annotated objects"
    counts = sorted(Counter(o.label for o in objects).items(), key=lambda item: (-item[1], item[0]))
    return "a photo with these annotated objects: " + ", ".join(f"{label} ({n})" if n > 1 else label
                                                                 for label, n in counts)


def crop_note(label: str) -> str:
    """The image-level note of a crop: ``a close-up of an apple`` (a caption describes the whole photo, not a
    crop of it)."""
    from mirg.data.trajectories import article

    return f"a close-up of {article(label)}"
