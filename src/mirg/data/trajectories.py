"""Reasoning trajectories for SFT and prompt/target rows for RL, built from a manifest's annotations.

Every trajectory reasons in four steps, then answers:

(a) sums up each image (from its image-level note, else from its annotated objects);
(b) names the reference object and its attributes (from the object-level annotations);
(c) decides the target image, says why, and names it as "image k";
(d) localises the object in that image.

Template mode (here) is deterministic and offline: each step has several phrasings, chosen by a hash
of the sample id, so a model learns the reasoning rather than one string. Teacher mode
(:mod:`mirg.data.teacher`) asks a chat endpoint instead and keeps only replies that
:func:`check_trajectory` accepts.

Boxes in the text are written in the coordinate space the model will speak:

>>> format_box((10, 20, 30, 40), (200, 100), CoordSpace("norm1000"))
[50, 200, 150, 400]
>>> format_box((0.2, 0.2, 0.4, 0.4), (1000, 1000), CoordSpace("norm1"))  # collapsed by rounding: widened
[0.0, 0.0, 0.001, 0.001]

Output folder (TRL reads the files as they are): ``sft.jsonl`` (``id``, ``task``, ``images``,
``image_sizes``, ``prompt``, ``completion``), ``rl.jsonl`` (``id``, ``task``, ``images``, ``prompt``,
``target_image``, ``target_box``, ``image_sizes``), ``trajectories.json`` (the coordinate space of the boxes, the
pixel limits that define it and the model they were written for: what ``mirg sft``/``mirg grpo`` check against
the run's model and recipe) and ``README.md`` with the counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from mirg.answer import AnswerError, check_strict, render_answer, think_block
from mirg.errors import MirgError
from mirg.formats import (
    CHAIN_TARGET, DETAILS, LIST_DETAILS, MIN_IOU, OBJECT_DETAILS, ORDERS, OUTLINE_MARK, README_FILE,
    RECORD_FILE, RL_FILE, SFT_FILE, TARGET_MARK, TRAJECTORY_FILES,
)
from mirg.geometry import CoordSpace, clip_box, iou
from mirg.prompts import user_message
from mirg.schema import QUESTION_BOXES, ObjectAnn, Sample, check_image_files, manifest_path, read_manifest

Warn = Callable[[str], None]
#: How many problems with the image files an error message lists before "... and N more".
SHOWN_PROBLEMS = 5


def stderr_warn(message: str) -> None:
    print(f"mirg: warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class TrajectoryOptions:
    """What the text is written in: the coordinate space of boxes and how much of the scene is listed.

    ``detail="brief"`` names only the reference and the target; ``"full"`` lists every object of every
    image with its box (dense object-level supervision, which small models need to learn to localise);
    ``"answer"`` only names the target image before the answer (the shortest path from the image to the
    box: how a tiny model first learns to localise at all); ``"list"`` first lists every object of every
    image with its box, left to right (what a detector says), then names the target image: choosing the
    described object becomes finding its label in the list and copying its box; ``"box-list"`` is the same
    list with each box before its label (``[x1, y1, x2, y2] red circle``), so that a model first commits to
    an object by its place and then names what it sees there; ``"mark-list"`` is the list with the target
    marked where it is listed (``red circle (the target) [x1, y1, x2, y2]``), so that the answer copies the box
    that follows the mark instead of searching the list for a label; ``"chain"`` reasons in three short steps,
    each one a perception skill: every image's objects by label (outlined ones marked), the target named with
    its image (``The target is the red circle in image 2.``, where the cross-image reasoning happens), then only that
    image listed with boxes and the target marked, so that the answer copies the marked box.
    """

    coords: CoordSpace = field(default_factory=CoordSpace)
    detail: str = "brief"
    #: ``left-to-right`` (by the box's centre) or ``label`` (alphabetically by label, then left to right): the
    #: order of the objects in every list. A small model reads a label order without comparing positions, which
    #: two objects whose centres are a few pixels apart make ambiguous
    #: (docs/lab-notes/embedded-base.md, runs V and W).
    order: str = "left-to-right"
    #: The model the boxes are written for (``--for-model``): its family and the folder as the user named it.
    model: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.detail not in DETAILS:
            raise MirgError(f"unknown --detail {self.detail!r}; choose one of {', '.join(DETAILS)}")
        if self.order not in ORDERS:
            raise MirgError(f"unknown --order {self.order!r}; choose one of {', '.join(ORDERS)}")


@dataclass
class Dataset:
    """A validated manifest whose image files exist and match their recorded sizes."""

    manifest: Path
    samples: list[Sample]

    @property
    def root(self) -> Path:
        return self.manifest.parent


def load_dataset(path: str | Path) -> Dataset:
    """Read ``--data`` and check every image file; raise listing the first few problems."""
    manifest = manifest_path(path)
    samples = read_manifest(manifest)
    if not samples:
        raise MirgError(f"{manifest}: no samples")
    problems = check_image_files(samples, manifest.parent)
    if problems:
        shown = "\n".join(problems[:SHOWN_PROBLEMS])
        more = f"\n... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise MirgError(f"{len(problems)} problem(s) with the image files:\n{shown}{more}")
    return Dataset(manifest=manifest, samples=samples)


def check_detail(samples: Sequence[Sample], detail: str) -> None:
    """Refuse a detail that lists every image's objects for samples that have none, rather than write them
    shorter than asked (a converted benchmark has no object annotations; ``brief`` needs none).

    >>> from mirg.schema import Target
    >>> s = Sample("a", "t", ["1.png"], [(9, 9)], "Where?", Target(1, (1, 1, 5, 5)))
    >>> check_detail([s], "brief")
    >>> check_detail([s], "chain")
    Traceback (most recent call last):
    mirg.errors.MirgError: --detail chain lists every image's objects, but 1 of 1 sample(s) have no ...
    """
    if detail not in OBJECT_DETAILS:
        return
    bare = [s.id for s in samples if s.objects is None]
    if bare:
        raise MirgError(f"--detail {detail} lists every image's objects, but {len(bare)} of {len(samples)} sample(s) "
                        f"have no object annotations (the first: {bare[0]}); use --detail brief, or attach objects "
                        "first (mirg data annotate)")


def check_out_dir(dataset: Dataset, out: Path) -> None:
    """Refuse an output folder that is the dataset's own, or holds files but is no trajectories folder (its
    README.md would be overwritten); an earlier run's folder is rebuilt (teacher mode resumes there)."""
    from mirg.folders import check_output_folder

    if out.resolve() == dataset.root.resolve():
        raise MirgError(f"--out {out}: is the dataset folder; choose another (its README.md would be overwritten)")
    check_output_folder(out, "--out", TRAJECTORY_FILES, f"{SFT_FILE}, {RL_FILE} and a README.md")


# ----- coordinates in the text -------------------------------------------------------------------


def _unit(space: CoordSpace) -> float:
    return 0.001 if space.name == "norm1" else 1.0


def _rounded(value: float, space: CoordSpace) -> float | int:
    return round(value, 3) if space.name == "norm1" else int(round(value))


def _widen(lo: float, hi: float, extent: float, space: CoordSpace) -> tuple[float, float]:
    """Keep ``lo < hi`` after rounding: widen by one unit, inward at the image's far edge."""
    if lo < hi:
        return lo, hi
    unit = _unit(space)
    if lo + unit <= extent:
        return lo, _rounded(lo + unit, space)
    return _rounded(hi - unit, space), hi


def format_box(box: Sequence[float], size: Sequence[int], space: CoordSpace) -> list:
    """``box`` (original pixels of an image of ``size``) in ``space``, rounded as the model writes it.

    Integers for ``pixel``, ``resized`` and ``norm1000``; 3 decimals for ``norm1``. A box that rounding
    collapsed is widened by one unit so that x1 < x2 and y1 < y2 still hold.
    """
    converted = space.from_pixels(box, size)
    x1, y1, x2, y2 = (_rounded(v, space) for v in converted)
    ext_w, ext_h = space.extent(size)
    x1, x2 = _widen(x1, x2, ext_w, space)
    y1, y2 = _widen(y1, y2, ext_h, space)
    return [x1, y1, x2, y2]


def box_text(box: Sequence[float], size: Sequence[int], space: CoordSpace) -> str:
    """The box as it appears in reasoning text, e.g. ``[10, 12, 40, 44]``."""
    return json.dumps(format_box(box, size, space))


# ----- the space the boxes are written in ----------------------------------------------------------


def space_record(opts: TrajectoryOptions) -> dict[str, Any]:
    """What ``trajectories.json`` says: the boxes' coordinate space, the pixel limits that define it and the model
    the boxes were written for. Limits are recorded where they define the boxes (``resized``: the same photo's box
    differs with them); the other spaces do not depend on them, and record None.

    >>> space_record(TrajectoryOptions(CoordSpace("resized", 3136, 401408)))
    {'coords': 'resized', 'min_pixels': 3136, 'max_pixels': 401408, 'model': None}
    >>> space_record(TrajectoryOptions(CoordSpace("norm1000"), model=("qwen3_vl", "models/q3")))["min_pixels"] is None
    True
    """
    space = opts.coords
    resized = space.name == "resized"
    model = {"family": opts.model[0], "path": opts.model[1]} if opts.model else None
    return {"coords": space.name, "min_pixels": space.min_pixels if resized else None,
            "max_pixels": space.max_pixels if resized else None, "model": model}


def write_space_record(out: Path, opts: TrajectoryOptions) -> None:
    write_text(out / RECORD_FILE, json.dumps(space_record(opts), indent=2) + "\n")


def read_space_record(folder: Path) -> dict[str, Any] | None:
    """The folder's ``trajectories.json`` (checked), or None for a folder written before there was one."""
    from mirg.geometry import SPACES
    from mirg.textfiles import open_text

    file = folder / RECORD_FILE
    if not file.is_file():
        return None
    with open_text(file) as handle:
        try:
            record = json.load(handle)
        except ValueError as exc:
            raise MirgError(f"{file}: not valid JSON ({exc}); rebuild the folder with `mirg data trajectories`") \
                from None
    problem = _record_problem(record, SPACES)
    if problem:
        raise MirgError(f"{file}: {problem}; rebuild the folder with `mirg data trajectories`")
    return record


def _record_problem(record: Any, spaces: Sequence[str]) -> str | None:
    if not isinstance(record, dict) or record.get("coords") not in spaces:
        return f"'coords' must be one of {', '.join(spaces)}"
    if record["coords"] != "resized":
        return None
    low, high = record.get("min_pixels"), record.get("max_pixels")
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
    if not whole or not 0 < low <= high:
        return "resized boxes need whole numbers 0 < min_pixels <= max_pixels"
    return None


def recipe_pixel_limits(recipe: str | Path) -> tuple[int | None, int | None]:
    """``min_pixels``/``max_pixels`` of a training recipe (None where it leaves them to the model folder)."""
    import yaml

    from mirg.textfiles import open_text

    with open_text(recipe) as handle:
        try:
            values = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise MirgError(f"recipe {recipe}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise MirgError(f"recipe {recipe}: must be a mapping of option: value")
    limits = values.get("min_pixels"), values.get("max_pixels")
    if any(v is not None and (not isinstance(v, int) or isinstance(v, bool)) for v in limits):
        raise MirgError(f"recipe {recipe}: min_pixels and max_pixels must be whole numbers, got {limits}")
    return limits


def space_for(coords: str | None = None, min_pixels: int | None = None, max_pixels: int | None = None,
              model: str | None = None, recipe: str | Path | None = None) -> tuple[CoordSpace, tuple[str, str] | None]:
    """The space trajectories are written in, and the model it was taken from.

    Without ``model``: ``coords`` (default ``pixel``) and the given limits (default Qwen's published ones). With
    ``model`` (a folder or ``embedded``): its family's space, and the pixel limits its run will use: the folder's
    saved processor's, replaced by the ``recipe``'s, replaced by ``min_pixels``/``max_pixels``. A ``coords`` that
    disagrees with the model's is refused.
    """
    from mirg.geometry import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS

    if model is None:
        if recipe is not None:
            raise MirgError("--config takes the pixel limits of a model's run: it needs --for-model")
        low = QWEN_MIN_PIXELS if min_pixels is None else min_pixels
        high = QWEN_MAX_PIXELS if max_pixels is None else max_pixels
        return CoordSpace(coords or "pixel", low, high), None
    from mirg.models import adapter_for, resolve_model_path

    adapter = adapter_for(resolve_model_path(model))
    if coords is not None and coords != adapter.coords:
        raise MirgError(f"--coords {coords} disagrees with --for-model {model}: {adapter.family} models answer in "
                        f"{adapter.coords}; leave --coords out")
    low, high = recipe_pixel_limits(recipe) if recipe is not None else (None, None)
    adapter = adapter.with_pixels(low, high).with_pixels(min_pixels, max_pixels)
    return adapter.coord_space(), (adapter.family, str(model))


# ----- annotations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The object the question refers to: its (1-based) image and its annotation."""

    image: int
    obj: ObjectAnn


@dataclass(frozen=True)
class Plan:
    """What a trajectory says, read from the annotations (hints first, fallbacks otherwise)."""

    target: ObjectAnn | None
    reference: Reference | None
    rule: str


def _object_at(sample: Sample, image: Any, index: Any, what: str) -> ObjectAnn:
    objects = sample.objects or []
    ok = isinstance(image, int) and isinstance(index, int) and 1 <= image <= len(objects)
    if ok and 0 <= index < len(objects[image - 1]):
        return objects[image - 1][index]
    raise MirgError(f"sample {sample.id}: hints.{what} names no annotated object (image {image!r}, object {index!r})")


def best_match(sample: Sample) -> ObjectAnn | None:
    """The annotated object of the target image that overlaps the target box most (None if none does)."""
    if not sample.objects:
        return None
    candidates = sample.objects[sample.target.image - 1]
    scored = [(iou(o.bbox, sample.target.bbox), i) for i, o in enumerate(candidates)]
    scored = [(v, i) for v, i in scored if v > 0]
    if not scored:
        return None
    return candidates[max(scored, key=lambda t: (t[0], -t[1]))[1]]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def restated_rule(sample: Sample) -> str:
    """The fallback "why" when no rule is annotated: the question itself."""
    return f"The question says: {_sentence(sample.question)}"


def make_plan(sample: Sample) -> Plan:
    """Read ``hints`` (target object, reference, rule) where present; fall back where not."""
    hints = sample.extra.get("hints")
    if hints is not None and not isinstance(hints, dict):
        raise MirgError(f"sample {sample.id}: hints must be an object")
    hints = hints or {}
    target = best_match(sample)
    if hints.get("target_object") is not None and sample.objects is not None:
        target = _object_at(sample, sample.target.image, hints["target_object"], "target_object")
    reference = None
    ref = hints.get("reference")
    if isinstance(ref, dict) and sample.objects is not None:
        reference = Reference(ref.get("image"), _object_at(sample, ref.get("image"), ref.get("object"), "reference"))
    rule = hints.get("rule")
    rule = _capitalized(_sentence(rule)) if isinstance(rule, str) and rule.strip() else restated_rule(sample)
    return Plan(target=target, reference=reference, rule=rule)


def article(label: str) -> str:
    """``label`` with "a"/"an" in front (``"an orange square"``)."""
    return ("an " if label[:1].lower() in "aeiou" and label[:1] else "a ") + label


def attributes_text(obj: ObjectAnn) -> str:
    """``" (color red, shape circle)"`` or ``""`` when the object has no attributes; a true flag is
    written as its name alone (``outlined``)."""
    if not obj.attributes:
        return ""
    parts = [k if v is True else f"{k} {v}" for k, v in obj.attributes.items() if v is not False]
    return " (" + ", ".join(parts) + ")"


def note_text(note: str) -> str:
    """An image note ready to follow "shows": no final period, lower-case start unless an acronym."""
    note = note.strip().rstrip(".").strip()
    if len(note) > 1 and note[0].isupper() and not note[1].isupper():
        note = note[0].lower() + note[1:]
    return note


def objects_summary(objects: list[ObjectAnn]) -> str:
    """A note made from object labels when there is no image note: ``a red circle and a blue square``."""
    labels = [article(o.label) for o in objects]
    if not labels:
        return "no annotated objects"
    if len(labels) == 1:
        return labels[0]
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def objects_with_boxes(objects: list[ObjectAnn], size: Sequence[int], space: CoordSpace, box_first: bool = False,
                       mark: ObjectAnn | None = None) -> str:
    """Every object of one image with its box: ``red circle [1, 2, 9, 9]; ...``, or with ``box_first``
    ``[1, 2, 9, 9] red circle; ...``; the object ``mark`` (if listed) gets ``(the target)`` before its box."""
    entries = [(f"{o.label} {TARGET_MARK}" if o is mark else o.label, box_text(o.bbox, size, space)) for o in objects]
    return "; ".join(f"{box} {label}" if box_first else f"{label} {box}" for label, box in entries) or "none"


# ----- template phrasing ---------------------------------------------------------------------------

INTRO = (
    "Let me look at each image first.",
    "First, what each image shows.",
    "I go through the images one by one.",
)
SUMMARY = ("Image {k} shows {note}.", "In image {k} I see {note}.", "Image {k}: {note}.")
LISTING = ("Its objects: {objects}.", "Objects there: {objects}.", "With boxes: {objects}.")
REFERENCE = (
    "The reference object is the {label} in image {r}{attrs}{box}.",
    "The question refers to the {label} in image {r}{attrs}{box}.",
    "Reference: the {label} of image {r}{attrs}{box}.",
)
SOUGHT = (
    "The object to find is {label}{attrs}.",
    "I am looking for {label}{attrs}.",
    "What I need to find: {label}{attrs}.",
)
DECIDE = (
    "{rule} So the target image is image {k}.",
    "{rule} That points to image {k}.",
    "{rule} Therefore the answer is in image {k}.",
)
LOCATE = (
    "In image {k}, {the_label} is at {box}.",
    "{The_label} in image {k} spans {box}.",
    "Locating it in image {k}: {the_label} at {box}.",
)


def pick(options: Sequence[str], sample_id: str, step: str) -> str:
    """One of ``options``, chosen by a stable hash of the sample id and the step (same every run)."""
    digest = hashlib.sha256(f"{sample_id}\x00{step}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def summary_step(sample: Sample, opts: TrajectoryOptions) -> list[str]:
    """(a): one sentence per image, plus every object's box in ``full`` detail."""
    if sample.image_notes is None and sample.objects is None:
        return []
    parts = [pick(INTRO, sample.id, "intro")]
    for k in range(1, sample.num_images + 1):
        objects = sample.objects[k - 1] if sample.objects is not None else None
        note = note_text(sample.image_notes[k - 1]) if sample.image_notes is not None else objects_summary(objects)
        parts.append(pick(SUMMARY, sample.id, f"summary{k}").format(k=k, note=note))
        if opts.detail == "full" and objects is not None:
            listed = objects_with_boxes(objects, sample.image_sizes[k - 1], opts.coords)
            parts.append(pick(LISTING, sample.id, f"listing{k}").format(objects=listed))
    return parts


def reference_step(sample: Sample, plan: Plan, opts: TrajectoryOptions) -> list[str]:
    """(b): the reference object (or, with none annotated, the sought object) and its attributes."""
    if plan.reference is not None:
        ref = plan.reference
        box = ""
        if opts.detail == "full":
            box = " at " + box_text(ref.obj.bbox, sample.image_sizes[ref.image - 1], opts.coords)
        template = pick(REFERENCE, sample.id, "reference")
        return [template.format(label=ref.obj.label, r=ref.image, attrs=attributes_text(ref.obj), box=box)]
    if plan.target is not None:
        template = pick(SOUGHT, sample.id, "sought")
        return [template.format(label=article(plan.target.label), attrs=attributes_text(plan.target))]
    return []


def decide_step(sample: Sample, plan: Plan) -> list[str]:
    """(c): why the target image is the one, naming it as "image k"."""
    return [pick(DECIDE, sample.id, "decide").format(rule=plan.rule, k=sample.target.image)]


def locate_step(sample: Sample, plan: Plan, opts: TrajectoryOptions) -> list[str]:
    """(d): the target's box in the target image."""
    the_label = f"the {plan.target.label}" if plan.target is not None else "the object"
    box = box_text(sample.target.bbox, sample.target_size(), opts.coords)
    template = pick(LOCATE, sample.id, "locate")
    k = sample.target.image
    return [template.format(k=k, the_label=the_label, The_label=the_label[0].upper() + the_label[1:], box=box)]


def listing_step(sample: Sample, opts: TrajectoryOptions, target: ObjectAnn | None = None) -> list[str]:
    """``list`` detail: every object of each image with its box, in ``opts.order`` (by default left to right).

    One image: ``Objects: red circle [..]; blue star [..].``; several: ``Image 1: ... Image 2: ...``;
    ``box-list`` writes each box before its label; ``mark-list`` marks ``target`` (in the target image).
    """
    if sample.objects is None:
        return []
    parts = []
    for k, objects in enumerate(sample.objects, start=1):
        ordered = in_order(objects, opts.order)
        mark = target if opts.detail == "mark-list" and k == sample.target.image else None
        listed = objects_with_boxes(ordered, sample.image_sizes[k - 1], opts.coords, opts.detail == "box-list", mark)
        parts.append(f"{'Objects' if sample.num_images == 1 else f'Image {k}'}: {listed}.")
    return parts


def left_to_right(objects: Sequence[ObjectAnn]) -> list[ObjectAnn]:
    """Objects ordered by the box's centre, left to right (then top to bottom)."""
    return sorted(objects, key=lambda o: (o.bbox[0] + o.bbox[2], o.bbox[1] + o.bbox[3]))


def in_order(objects: Sequence[ObjectAnn], order: str = "left-to-right") -> list[ObjectAnn]:
    """Objects as a list writes them: ``left-to-right``, or by ``label`` (alphabetically; equal labels left to right).

    >>> objs = [ObjectAnn("red star", (60, 0, 80, 20)), ObjectAnn("blue circle", (0, 0, 20, 20)),
    ...         ObjectAnn("red star", (30, 0, 50, 20))]
    >>> [(o.label, o.bbox[0]) for o in in_order(objs)]
    [('blue circle', 0), ('red star', 30), ('red star', 60)]
    >>> [(o.label, o.bbox[0]) for o in in_order(objs[:2], "label")]
    [('blue circle', 0), ('red star', 60)]
    """
    spatial = left_to_right(objects)
    if order == "label":
        return sorted(spatial, key=lambda o: o.label)  # stable: equal labels stay left to right
    return spatial


def labels_text(objects: Sequence[ObjectAnn], order: str = "left-to-right") -> str:
    """One image's objects by label, in ``order``, an outlined one marked: ``red circle outlined; blue star``."""
    entries = [f"{o.label} {OUTLINE_MARK}" if o.attributes.get("outlined") is True else o.label
               for o in in_order(objects, order)]
    return "; ".join(entries) or "none"


def chain_steps(sample: Sample, opts: TrajectoryOptions, target: ObjectAnn | None) -> list[str]:
    """``chain`` detail: what every image holds, the target named, then the target image with boxes.

    ``Image 1: red circle outlined; blue star. Image 2: red circle. The target is the red circle in image 2.
    In image 2: red circle (the target) [x1, y1, x2, y2].`` Without object annotations only the target is named.
    """
    k = sample.target.image
    label = target.label if target is not None else "object"
    named = CHAIN_TARGET.format(label=label, k=k)
    if sample.objects is None:
        return [named]
    parts = [f"Image {i}: {labels_text(objects, opts.order)}." for i, objects in enumerate(sample.objects, start=1)]
    listed = objects_with_boxes(in_order(sample.objects[k - 1], opts.order), sample.image_sizes[k - 1], opts.coords,
                                mark=target)
    return parts + [named, f"In image {k}: {listed}."]


def template_think(sample: Sample, opts: TrajectoryOptions) -> str:
    """The reasoning of a template trajectory: steps (a)-(d), those the annotations allow."""
    plan = make_plan(sample)
    if opts.detail == "chain":
        return " ".join(chain_steps(sample, opts, plan.target))
    if opts.detail in ("answer", *LIST_DETAILS):
        the_label = f"the {plan.target.label}" if plan.target is not None else "the object"
        named = f"{the_label[0].upper() + the_label[1:]} is in image {sample.target.image}."
        listing = listing_step(sample, opts, plan.target) if opts.detail in LIST_DETAILS else []
        return " ".join(listing + [named])
    parts = summary_step(sample, opts) + reference_step(sample, plan, opts)
    parts += decide_step(sample, plan) + locate_step(sample, plan, opts)
    return " ".join(parts)


def template_completion(sample: Sample, opts: TrajectoryOptions) -> str:
    """The whole completion text: ``<think>...</think><answer>{...}</answer>``."""
    box = format_box(sample.target.bbox, sample.target_size(), opts.coords)
    return render_answer(sample.target.image, box, think=template_think(sample, opts))


# ----- verification (shared with teacher mode) -----------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """Why a trajectory was not kept: a short ``kind`` to count by and the ``detail``."""

    kind: str
    detail: str


def names_image(text: str, k: int) -> bool:
    """True when ``text`` says "image k" (any case), not as part of "image 12" for k = 1.

    >>> names_image("So it is Image 2.", 2), names_image("see image 21", 2), names_image("the image2", 2)
    (True, False, False)
    """
    low, needle = text.lower(), f"image {k}"
    start = low.find(needle)
    while start != -1:
        end = start + len(needle)
        before_ok = start == 0 or not low[start - 1].isalnum()
        if before_ok and (end == len(low) or not low[end].isdigit()):
            return True
        start = low.find(needle, start + 1)
    return False


def check_trajectory(sample: Sample, text: str, space: CoordSpace) -> Rejection | None:
    """Verify a completion against the annotations; ``None`` when it may be kept.

    The answer must pass the strict format check, name the target image, reach IoU >= 0.5 (original
    pixels, the box clipped to the image) and the reasoning must name that image as "image k".
    """
    try:
        answer = check_strict(text, sample.num_images)
    except AnswerError as exc:
        return Rejection("format", str(exc))
    k = sample.target.image
    if answer.image != k:
        return Rejection("wrong image", f"answered image {answer.image}, the target is image {k}")
    size = sample.target_size()
    value = iou(clip_box(space.to_pixels(answer.bbox, size), size), sample.target.bbox)
    if value < MIN_IOU:
        return Rejection("low iou", f"IoU {value:.2f} < {MIN_IOU}")
    if not names_image(think_block(text), k):
        return Rejection("reasoning", f'the reasoning never names "image {k}"')
    return None


# ----- rows and files ------------------------------------------------------------------------------


def image_paths(sample: Sample, root: Path, out: Path) -> list[str]:
    """The sample's image paths relative to the output folder (which may be anywhere)."""
    out_abs = os.path.abspath(out)
    return [os.path.relpath(os.path.abspath(root / rel), out_abs) for rel in sample.images]


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def sft_row(sample: Sample, images: list[str], coords: str, text: str) -> dict[str, Any]:
    """One ``sft.jsonl`` row: the prompt conversation and one assistant message (and the images' sizes, so that a
    run counts their tokens without opening them)."""
    return {
        "id": sample.id,
        "task": sample.task,
        "images": images,
        "image_sizes": [list(s) for s in sample.image_sizes],
        "prompt": user_message(sample.question, sample.num_images, coords),
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": text}]}],
    }


def rl_row(sample: Sample, images: list[str], coords: str) -> dict[str, Any]:
    """One ``rl.jsonl`` row: the prompt and what the rewards need (target in original pixels)."""
    return {
        "id": sample.id,
        "task": sample.task,
        "images": images,
        "prompt": user_message(sample.question, sample.num_images, coords),
        "target_image": sample.target.image,
        "target_box": [_plain(v) for v in sample.target.bbox],
        "image_sizes": [list(s) for s in sample.image_sizes],
    }


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (a temporary file, then rename): a failed run leaves the old file intact."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def annotation_gaps(samples: Sequence[Sample]) -> dict[str, int]:
    """How many samples lack object-level and image-level annotations."""
    return {
        "without objects": sum(1 for s in samples if s.objects is None),
        "without image_notes": sum(1 for s in samples if s.image_notes is None),
    }


def warn_question_boxes(report: BuildReport, warn: Warn) -> None:
    """Count, note and say the samples whose question holds boxes written (as text) in another space than the
    trajectories' own: a model trained on them sees two spaces."""
    space = report.opts.coords.name
    mixed = sum(1 for s in report.samples if s.extra.get(QUESTION_BOXES, space) != space)
    if mixed:
        report.notes.append(f"{mixed} sample(s) hold boxes in their question in another space than {space} "
                            "(written as the source gave them)")
        warn(report.notes[-1] + ": the model sees two spaces; use the question's space, or leave those samples out")


def warn_gaps(gaps: dict[str, int], total: int, warn: Warn) -> None:
    """Say once per kind of gap how many samples get the shorter trajectory."""
    for what, n in gaps.items():
        if n:
            warn(f"{n} of {total} sample(s) {what}: their trajectories skip what those annotations would say")


# ----- README --------------------------------------------------------------------------------------


@dataclass
class BuildReport:
    """What a run built, for the folder's README.md and the command's summary."""

    mode: str
    opts: TrajectoryOptions
    source: Path
    samples: list[Sample]
    accepted: Counter = field(default_factory=Counter)  # task -> sft rows
    rejected: dict[str, Counter] = field(default_factory=dict)  # task -> kind -> count
    unanswered: Counter = field(default_factory=Counter)  # task -> samples the teacher never answered
    gaps: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def reject(self, task: str, kind: str) -> None:
        self.rejected.setdefault(task, Counter())[kind] += 1

    def rejections_by_kind(self) -> Counter:
        """Rejections over all tasks, by kind (``wrong image``, ``low iou``, ...)."""
        total: Counter = Counter()
        for per_task in self.rejected.values():
            total.update(per_task)
        return total


def coords_text(space: CoordSpace) -> str:
    if space.name != "resized":
        return space.name
    return f"resized (min_pixels {space.min_pixels}, max_pixels {space.max_pixels})"


def _task_table(report: BuildReport) -> list[str]:
    tasks = Counter(s.task for s in report.samples)
    teacher = report.mode == "teacher"
    head = "| task | samples | sft rows | rl rows |" + (" rejected | unanswered |" if teacher else "")
    lines = [head, "|---|---:|---:|---:|" + ("---:|---:|" if teacher else "")]
    for task in sorted(tasks):
        row = f"| {task} | {tasks[task]} | {report.accepted[task]} | {tasks[task]} |"
        if teacher:
            row += f" {sum(report.rejected.get(task, Counter()).values())} | {report.unanswered[task]} |"
        lines.append(row)
    total = f"| **all** | {len(report.samples)} | {sum(report.accepted.values())} | {len(report.samples)} |"
    if teacher:
        total += f" {sum(sum(c.values()) for c in report.rejected.values())} | {sum(report.unanswered.values())} |"
    return lines + [total]


def _rejection_table(report: BuildReport) -> list[str]:
    if not report.rejected:
        return []
    lines = ["", "## Rejections", "", "| task | reason | count |", "|---|---|---:|"]
    for task in sorted(report.rejected):
        for kind, n in sorted(report.rejected[task].items()):
            lines.append(f"| {task} | {kind} | {n} |")
    return lines


def readme_text(report: BuildReport) -> str:
    """The output folder's README.md: settings, counts per task and, for teacher mode, rejections."""
    model = report.opts.model
    lines = [
        "# Trajectories",
        "",
        f"Built by `mirg data trajectories` from `{report.source}`.",
        "",
        f"- mode: {report.mode}",
        f"- coords: {coords_text(report.opts.coords)} (recorded in `{RECORD_FILE}`)",
        f"- for model: {f'{model[0]} (`{model[1]}`)' if model else 'not named (no --for-model)'}",
        f"- detail: {report.opts.detail}",
        f"- `{SFT_FILE}`: {sum(report.accepted.values())} rows; `{RL_FILE}`: {len(report.samples)} rows",
    ]
    lines += [f"- {n} sample(s) {what}" for what, n in report.gaps.items() if n]
    lines += [f"- {note}" for note in report.notes]
    lines += ["", "## Counts per task", ""] + _task_table(report) + _rejection_table(report)
    return "\n".join(lines) + "\n"


# ----- template mode -------------------------------------------------------------------------------


def build_template(dataset: Dataset, out: Path, opts: TrajectoryOptions, warn: Warn = stderr_warn) -> BuildReport:
    """Write ``sft.jsonl``, ``rl.jsonl`` and ``README.md`` for every sample, offline and deterministic."""
    check_detail(dataset.samples, opts.detail)
    report = BuildReport("template", opts, dataset.manifest, dataset.samples, gaps=annotation_gaps(dataset.samples))
    warn_gaps(report.gaps, len(dataset.samples), warn)
    warn_question_boxes(report, warn)
    sft, rl = [], []
    lost = 0
    for sample in dataset.samples:
        paths = image_paths(sample, dataset.root, out)
        text = template_completion(sample, opts)
        if check_trajectory(sample, text, opts.coords) is not None:
            lost += 1  # only rounding of a very small box in a coarse space can do this
        sft.append(sft_row(sample, paths, opts.coords.name, text))
        rl.append(rl_row(sample, paths, opts.coords.name))
        report.accepted[sample.task] += 1
    if lost:
        report.notes.append(f"{lost} answer(s) reach IoU < {MIN_IOU} after rounding to {opts.coords.name}")
        warn(report.notes[-1] + " (boxes too small for that coordinate space)")
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / SFT_FILE, sft)
    write_jsonl(out / RL_FILE, rl)
    write_space_record(out, opts)
    write_text(out / README_FILE, readme_text(report))
    return report
