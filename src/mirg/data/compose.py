"""Multi-image samples from real photos and their COCO-format annotations: ``mirg data compose``.

Detection annotations (categories and boxes) can express four of MIG-Bench's families: ``common_object``,
``group_grounding``, ``refer_grounding`` and ``region`` (:data:`mirg.data.compose_rules.RULES` states each one's
rule; ``--help`` and the dataset card print them). Each is laid out and worded as MIG-Bench lays out and words it, its "1th"/"2th"
included, so that a model trained here meets the benchmark's own phrasing; the ``<|object_ref_start|>`` tokens
of its group_grounding questions are left out, as model-specific. The other families need annotations of
another kind (:data:`mirg.data.compose_rules.NEEDS`) and are refused in one line.

Contracts, as for the synthetic generator (:mod:`mirg.data.synth`):

- **Deterministic**: sample ``i`` depends only on the seed, ``i``, the options and the annotations.
- **Balanced**: tasks take turns, then numbers of images; the target image (for ``region``, the region picture
  asked for: its target is always the source photo, image 1) goes through every allowed position once per block
  (:func:`mirg.data.synth.balanced_plan`).
- **Unique answers**: every draw is checked (:func:`answer_problems`) against every category the photos show,
  crowd regions and rejected boxes included; a draw that fails is redrawn and counted.

Photos stay where they are (the manifest points at them); crops are written to ``OUT/images``. An object
smaller than ``min_size`` pixels on a side is never cut out or asked for (counted in the card).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mirg.data.coco import CocoSet, crop_note, objects_note
from mirg.data.compose_rules import COMPOSE_TASKS, GROUP_PHRASES, parse_tasks
from mirg.errors import MirgError
from mirg.folders import UNFINISHED, finish_dataset_folder, start_dataset_folder
from mirg.geometry import box_in_window, iou, pixel_window
from mirg.schema import ObjectAnn, Sample, Target

if TYPE_CHECKING:  # numpy and the synthetic generator load when samples are drawn: `mirg --help` stays light
    import numpy as np

MAX_IMAGES = 6
MAX_DRAWS = 50
#: Two objects of one photo overlapping at least this much make a crop of either ambiguous.
DISTINCT_IOU = 0.5


@dataclass(frozen=True)
class ComposeConfig:
    """Options of one composed dataset; validated on creation (a bad one raises ``MirgError``)."""

    n: int
    seed: int = 0
    tasks: tuple[str, ...] = COMPOSE_TASKS
    min_images: int = 2
    max_images: int = 4
    min_size: int = 32
    id_prefix: str = "coco"

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise MirgError(f"--samples must be at least 1, got {self.n}")
        if self.seed < 0:
            raise MirgError(f"--seed must be 0 or more, got {self.seed}")
        for flag, value in (("--min-images", self.min_images), ("--max-images", self.max_images)):
            if not 2 <= value <= MAX_IMAGES:
                raise MirgError(f"{flag} must be 2..{MAX_IMAGES}, got {value}")
        if self.min_images > self.max_images:
            raise MirgError(f"--min-images {self.min_images} is more than --max-images {self.max_images}")
        if self.min_size < 1:
            raise MirgError(f"--min-size must be at least 1 pixel, got {self.min_size}")
        if not self.id_prefix or any(ch.isspace() or ch in "/\\" for ch in self.id_prefix):
            raise MirgError(f"--id-prefix must be a non-empty word without spaces or slashes, got {self.id_prefix!r}")
        object.__setattr__(self, "tasks", parse_tasks(",".join(self.tasks)))
        for task in self.tasks:
            self.image_range(task)

    def image_range(self, task: str) -> tuple[int, int]:
        from mirg.data.synth import family_image_range

        _, fewest, most, _ = FAMILIES[task]
        return family_image_range(task, fewest, most, self.min_images, self.max_images)

    def plan(self, index: int) -> tuple[str, int, int]:
        """``(task, number of images, position)``: the target image, or for ``region`` the region asked for."""
        from mirg.data.synth import balanced_plan

        return balanced_plan(self.tasks, index, self.seed, self.image_range, lambda t, n: FAMILIES[t][3](n),
                             {t: i for i, t in enumerate(COMPOSE_TASKS)})

    def command_line(self) -> str:
        return (f"mirg data compose --coco INSTANCES.json --images DIR --out DIR --samples {self.n} --seed {self.seed} "
                f"--tasks {','.join(self.tasks)} --min-images {self.min_images} --max-images {self.max_images} "
                f"--min-size {self.min_size} --id-prefix {self.id_prefix}")


# ----- the photos and what can be asked of them ------------------------------------------------------------------


@dataclass
class Pool:
    """The usable photos (file found, size as annotated) and, per category, what a sample may ask for."""

    coco: CocoSet
    files: dict[int, Path]
    min_size: int
    ids: list[int] = field(default_factory=list)
    #: category -> photos holding exactly one instance of it and no crowd region or rejected box of it
    singles: dict[str, list[int]] = field(default_factory=dict)
    #: category -> (photo, object index) of a sole instance large enough to be asked for
    targets: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    #: category -> (photo, object index) of every instance large enough to cut out
    crops: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    #: photo -> its objects large enough to cut out that no other object of it overlaps at IoU >= 0.5
    distinct: dict[int, list[int]] = field(default_factory=dict)
    too_small: int = 0
    rejected: list[dict] = field(default_factory=list)
    _cache: dict = field(default_factory=dict)

    def objects(self, image_id: int) -> list[ObjectAnn]:
        return self.coco.objects.get(image_id, [])

    def count(self, image_id: int, label: str) -> int:
        return sum(1 for o in self.objects(image_id) if o.label == label)

    def sole(self, image_id: int, label: str) -> bool:
        """True when the photo shows exactly one instance of ``label`` and no crowd region or rejected box of it."""
        return self.count(image_id, label) == 1 and label not in self.coco.hidden.get(image_id, ())

    def cached(self, key: tuple, make: Callable[[], list]) -> list:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def large_enough(obj: ObjectAnn, min_size: int) -> bool:
    return min(obj.bbox[2] - obj.bbox[0], obj.bbox[3] - obj.bbox[1]) >= min_size


def usable_photos(coco: CocoSet, images_dir: Path, progress: bool = False) -> tuple[dict[int, Path], list[dict]]:
    """Every image whose file is under ``images_dir`` and has the size the annotations give (one header read
    each); the others listed with the reason. Sizes are never rescaled: a disagreement is reported. A
    ``file_name`` with folders (Objects365's ``images/v1/patch0/...``) is looked up as written under
    ``images_dir``, then with its leading folders dropped (:func:`mirg.data.convert.find_image`)."""
    from tqdm import tqdm

    from mirg.data.convert import find_image, image_size

    files, rejected = {}, []
    for image_id in tqdm(sorted(coco.images), unit=" images", desc="image headers", disable=None if progress else True,
                         leave=False):
        image = coco.images[image_id]
        path = find_image(image.file_name.replace("\\", "/"), [images_dir])
        size = image_size(path) if path is not None else None
        if path is None:
            rejected.append({"image": image.file_name, "reason": "image file missing"})
        elif size is None:
            rejected.append({"image": image.file_name, "reason": "image file unreadable"})
        elif tuple(size) != image.size:
            rejected.append({"image": image.file_name, "reason": "size disagrees with the file",
                             "detail": f"annotations say {image.size[0]}x{image.size[1]}, the file is "
                                       f"{size[0]}x{size[1]}"})
        else:
            files[image_id] = path
    return files, rejected


def build_pool(coco: CocoSet, images_dir: Path, min_size: int, progress: bool = False) -> Pool:
    """Index the usable photos by what a sample may ask of them."""
    files, rejected = usable_photos(coco, images_dir, progress)
    pool = Pool(coco, files, min_size, ids=sorted(files), rejected=rejected)
    for image_id in pool.ids:
        objects = pool.objects(image_id)
        big = [i for i, o in enumerate(objects) if large_enough(o, min_size)]
        pool.too_small += len(objects) - len(big)
        for label in sorted({o.label for o in objects}):
            if pool.sole(image_id, label):
                pool.singles.setdefault(label, []).append(image_id)
        for i in big:
            label = objects[i].label
            pool.crops.setdefault(label, []).append((image_id, i))
            if pool.sole(image_id, label):
                pool.targets.setdefault(label, []).append((image_id, i))
        pool.distinct[image_id] = [i for i in big if all(
            iou(objects[i].bbox, o.bbox) < DISTINCT_IOU for j, o in enumerate(objects) if j != i)]
    return pool


# ----- one sample ------------------------------------------------------------------------------------------------


class Retry(Exception):
    """No photos fit this draw; draw again with the same generator."""


@dataclass
class Composed:
    """One drawn sample: per image a photo ``(id, None)`` or a crop ``(id, object index)``, and the answer."""

    views: list[tuple[int, int | None]]
    target: int
    target_object: int  # index into the target image's objects
    category: str
    question: str
    rule: str
    reference: tuple[int, int] | None = None  # (image k, object index) of the object the question points at


def choose(rng: np.random.Generator, options: list):
    return options[int(rng.integers(len(options)))]


def _need(options: list, task: str, n: int, what: str) -> list:
    if not options:
        raise MirgError(f"{task} with {n} images: {what} among the usable photos (use fewer images, more photos, "
                        f"or leave {task} out of --tasks)")
    return options


def _others(rng: np.random.Generator, candidates: list[int], count: int, keep: Callable[[int], bool]) -> list[int]:
    """``count`` distinct photos of ``candidates`` that ``keep`` accepts, found by random tries (never a full scan)."""
    chosen: list[int] = []
    for _ in range(20 * count + 20):
        if len(chosen) == count:
            break
        image_id = choose(rng, candidates)
        if image_id not in chosen and keep(image_id):
            chosen.append(image_id)
    if len(chosen) < count:
        raise Retry("not enough photos fit")
    return chosen


def build_common_object(rng: np.random.Generator, pool: Pool, n: int, t: int) -> Composed:
    labels = pool.cached(("common", n), lambda: sorted(
        c for c, photos in pool.singles.items() if len(photos) >= n and pool.targets.get(c)))
    label = choose(rng, _need(labels, "common_object", n, "no category has exactly one instance in that many photos"))
    target_id, index = choose(rng, pool.targets[label])
    others = _others(rng, pool.singles[label], n - 1, lambda i: i != target_id)
    views = [(i, None) for i in others]
    views.insert(t - 1, (target_id, None))
    question = f"These images share one object in common. Recognize and locate this object in the {t}th image."
    rule = f"the {label} is the only kind of object every image shows, once in each"
    return Composed(views, t, index, label, question, rule)


def build_group_grounding(rng: np.random.Generator, pool: Pool, n: int, t: int) -> Composed:
    from mirg.data.trajectories import article

    labels = pool.cached(("group",), lambda: sorted(pool.targets))
    label = choose(rng, _need(labels, "group_grounding", n, "no category has a sole instance large enough"))
    target_id, index = choose(rng, pool.targets[label])
    others = _others(rng, pool.ids, n - 1, lambda i: i != target_id and label not in pool.coco.present(i))
    views = [(i, None) for i in others]
    views.insert(t - 1, (target_id, None))
    question = choose(rng, list(GROUP_PHRASES)) + article(label) + "."
    return Composed(views, t, index, label, question, f"image {t} is the only image with {article(label)}")


def build_refer_grounding(rng: np.random.Generator, pool: Pool, n: int, t: int) -> Composed:
    from mirg.data.trajectories import article

    labels = pool.cached(("refer",), lambda: sorted(
        c for c in pool.targets if len({image for image, _ in pool.crops.get(c, [])}) >= 2))
    label = choose(rng, _need(labels, "refer_grounding", n, "no category has a sole instance in one photo and "
                                                              "another instance to cut out of a second photo"))
    target_id, index = choose(rng, pool.targets[label])
    source_id, source_index = choose(rng, pool.crops[label])
    if source_id == target_id:
        raise Retry("the crop would come from the target photo")
    question = "Find and locate where does the object in image-1 locate in the image-2."
    rule = f"image 1 shows {article(label)} cut from another photo, and image 2 holds exactly one {label}"
    return Composed([(source_id, source_index), (target_id, None)], 2, index, label, question, rule,
                    reference=(1, 0))


def build_region(rng: np.random.Generator, pool: Pool, n: int, asked: int) -> Composed:
    photos = pool.cached(("region", n), lambda: [i for i in pool.ids if len(pool.distinct[i]) >= n - 1])
    photo = choose(rng, _need(photos, "region", n, f"no photo has {n - 1} distinct objects large enough to cut out"))
    picks = [int(v) for v in rng.permutation(pool.distinct[photo])[:n - 1]]
    index = picks[asked - 1]
    label = pool.objects(photo)[index].label
    question = (f"You are given a source image followed by its several regions. Please locate the {asked}th region "
                "picture in the source image.")
    rule = f"image 1 is the source photo, and its {label} here is what region picture {asked} (image {asked + 1}) shows"
    return Composed([(photo, None)] + [(photo, i) for i in picks], 1, index, label, question, rule,
                    reference=(asked + 1, 0))


def _all(n: int) -> list[int]:
    return list(range(1, n + 1))


#: name -> (builder, fewest images, most images, positions allowed with n images: target, or region asked)
FAMILIES: dict[str, tuple[Callable[..., Composed], int, int, Callable[[int], list[int]]]] = {
    "common_object": (build_common_object, 2, 6, _all),
    "group_grounding": (build_group_grounding, 2, 6, _all),
    "refer_grounding": (build_refer_grounding, 2, 2, lambda n: [2]),
    "region": (build_region, 2, 5, lambda n: list(range(1, n))),
}


def answer_problems(c: Composed, pool: Pool, task: str) -> list[str]:
    """Every reason ``c`` is not a valid sample with one right answer (empty when it is)."""
    problems = []
    photos = [image for image, crop in c.views if crop is None]
    if len(set(photos)) != len(photos):
        problems.append("a photo appears twice")
    image, crop = c.views[c.target - 1]
    target = pool.objects(image)[c.target_object]
    if crop is not None or target.label != c.category or not large_enough(target, pool.min_size):
        problems.append("the target is not a large enough instance of the category in a photo")
    if task in ("common_object", "group_grounding", "refer_grounding") and not pool.sole(image, c.category):
        problems.append(f"the target photo does not hold exactly one {c.category}")
    if task == "common_object":
        shared = set.intersection(*(pool.coco.present(i) for i in photos))
        if shared != {c.category} or not all(pool.sole(i, c.category) for i in photos):
            problems.append(f"the photos share {sorted(shared)}, not exactly one {c.category} each")
    if task == "group_grounding" and any(c.category in pool.coco.present(i) for i in photos if i != image):
        problems.append(f"another photo shows a {c.category}")
    if task == "region":
        crops = [cut for _, cut in c.views[1:]]
        asked = c.views[c.reference[0] - 1] if c.reference else None
        if any(i != image for i, _ in c.views) or len(set(crops)) != len(crops) or asked != (image, c.target_object):
            problems.append("the crops are not distinct objects of the source photo, the asked one the target")
        elif c.target_object not in pool.distinct[image]:
            problems.append("another object of the photo overlaps the asked region")
    return problems


@dataclass
class Draws:
    """Draws of one sample thrown away: no fitting photos (``retries``) or a failed answer check (``rejects``)."""

    retries: int = 0
    rejects: int = 0
    last: str = ""


def draw_sample(cfg: ComposeConfig, pool: Pool, index: int) -> tuple[str, int, Composed, Draws]:
    """Draw sample ``index`` until it passes :func:`answer_problems`; ``(task, position, sample, draws)``."""
    import numpy as np

    task, n, position = cfg.plan(index)
    rng = np.random.default_rng([cfg.seed, index])
    draws = Draws()
    for _ in range(MAX_DRAWS):
        try:
            composed = FAMILIES[task][0](rng, pool, n, position)
        except Retry as exc:
            draws.retries += 1
            draws.last = str(exc)
            continue
        problems = answer_problems(composed, pool, task)
        if not problems:
            return task, position, composed, draws
        draws.rejects += 1
        draws.last = problems[0]
    raise MirgError(f"sample {index} ({task}, {n} images): no valid draw in {MAX_DRAWS} tries ({draws.last}); use "
                    f"fewer images, more photos, or leave {task} out of --tasks")


# ----- from a drawn sample to a manifest record and files -----------------------------------------------------


def view_objects(pool: Pool, view: tuple[int, int | None]) -> tuple[list[ObjectAnn], tuple[int, int]]:
    """The objects and size of one image of a sample: a photo's annotations, or a crop's one object."""
    image_id, crop = view
    size = pool.coco.images[image_id].size
    if crop is None:
        return list(pool.objects(image_id)), size
    obj = pool.objects(image_id)[crop]
    window = pixel_window(obj.bbox, size)
    return [ObjectAnn(obj.label, box_in_window(obj.bbox, window))], (window[2] - window[0], window[3] - window[1])


def to_sample(c: Composed, cfg: ComposeConfig, index: int, task: str, pool: Pool, out: Path,
              captions: dict[str, str] | None) -> Sample:
    """The manifest record: photos by their path relative to ``out``, crops under ``images/``, every image's
    objects and note, and the ``hints`` trajectories read (target object, reference, rule)."""
    sample_id = f"{cfg.id_prefix}-{index:06d}"
    images, sizes, objects, notes = [], [], [], []
    for k, view in enumerate(c.views, start=1):
        objs, size = view_objects(pool, view)
        image = pool.coco.images[view[0]]
        if view[1] is None:
            images.append(os.path.relpath(os.path.abspath(pool.files[view[0]]), os.path.abspath(out)))
            notes.append((captions or {}).get(image.base_name) or objects_note(objs))
        else:
            images.append(f"images/{sample_id}_{k}.jpg")
            notes.append(crop_note(objs[0].label))
        sizes.append(size)
        objects.append(objs)
    reference = {"image": c.reference[0], "object": c.reference[1]} if c.reference else None
    hints = {"target_object": c.target_object, "reference": reference, "rule": c.rule}
    return Sample(
        id=sample_id, task=task, images=images, image_sizes=sizes, question=c.question,
        target=Target(c.target, objects[c.target - 1][c.target_object].bbox), objects=objects, image_notes=notes,
        extra={"hints": hints, "coco_images": [view[0] for view in c.views]},
    )


def write_crops(c: Composed, sample: Sample, pool: Pool, out: Path) -> int:
    """Cut the sample's crops out of their photos and save them (JPEG, quality 95); returns how many."""
    from PIL import Image

    written = 0
    for view, rel, size in zip(c.views, sample.images, sample.image_sizes):
        image_id, crop = view
        if crop is None:
            continue
        obj = pool.objects(image_id)[crop]
        window = pixel_window(obj.bbox, pool.coco.images[image_id].size)
        with Image.open(pool.files[image_id]) as photo:
            piece = photo.crop(window).convert("RGB")  # converts the crop, not the whole photo
        if piece.size != tuple(size):
            raise MirgError(f"{pool.files[image_id]}: the crop came out {piece.size}, expected {size}")
        piece.save(out / rel, format="JPEG", quality=95)
        written += 1
    return written


# ----- the dataset folder --------------------------------------------------------------------------------------


@dataclass
class ComposeResult:
    samples: list[Sample]
    positions: Counter  # (task, n images, position) -> samples
    pool: Pool
    crops: int = 0
    retries: int = 0
    rejects: int = 0
    captioned: int = 0
    seconds: float = 0.0


OUTPUTS = ("manifest.jsonl", "README.md", "rejected.jsonl", "images", "examples")


def check_output(out: Path, images_dir: Path) -> None:
    """Refuse an ``out`` that is someone else's folder, or whose replaced parts would hold the photos."""
    from mirg.folders import check_output_folder

    check_output_folder(out, "--out", ["manifest.jsonl", UNFINISHED], "manifest.jsonl, README.md, rejected.jsonl, "
                        "images/ and examples/")
    for name in ("images", "examples"):
        if images_dir.resolve().is_relative_to((out / name).resolve()):
            raise MirgError(f"--images {images_dir} is inside --out {out}/{name}, which a run replaces; keep the "
                            "photos elsewhere")


def compose_dataset(cfg: ComposeConfig, coco: CocoSet, images_dir: Path, out: Path,
                    captions: dict[str, str] | None = None, progress: bool = False) -> ComposeResult:
    """Compose ``cfg.n`` samples into ``out``: crops, ``manifest.jsonl``, ``rejected.jsonl`` and the card."""
    from tqdm import tqdm

    from mirg.data.compose_card import write_card
    from mirg.schema import write_manifest

    start = time.perf_counter()
    if not images_dir.is_dir():
        raise MirgError(f"--images {images_dir}: no such folder")
    check_output(out, images_dir)
    pool = build_pool(coco, images_dir, cfg.min_size, progress)
    if not pool.ids:
        first = f" (the first, {pool.rejected[0]['image']}: {pool.rejected[0]['reason']})" if pool.rejected else ""
        raise MirgError(f"--images {images_dir}: none of the {len(coco.images)} annotated images is there with the "
                        f"size the annotations give{first}")
    drawn = [draw_sample(cfg, pool, i)  # all drawn before anything is written: a refusal leaves OUT as it was
             for i in tqdm(range(cfg.n), unit=" samples", desc="drawing", disable=None if progress else True,
                           leave=False)]
    start_dataset_folder(out, OUTPUTS, "mirg data compose")
    result = ComposeResult([], Counter(), pool)
    for index, (task, position, composed, draws) in enumerate(tqdm(
            drawn, unit=" samples", desc="writing", disable=None if progress else True, leave=False)):
        sample = to_sample(composed, cfg, index, task, pool, out, captions)
        result.crops += write_crops(composed, sample, pool, out)
        result.retries += draws.retries
        result.rejects += draws.rejects
        result.positions[(task, sample.num_images, position)] += 1
        result.captioned += sum(1 for v in composed.views
                                if v[1] is None and (captions or {}).get(coco.images[v[0]].base_name))
        result.samples.append(sample)
    write_manifest(result.samples, out / "manifest.jsonl")
    write_rejected(out / "rejected.jsonl", coco.rejected + pool.rejected)
    result.seconds = time.perf_counter() - start
    write_card(cfg, result, out, captions is not None)
    finish_dataset_folder(out)
    return result


def write_rejected(path: Path, rows: list[dict]) -> None:
    """Every image or annotation not used, one JSON line each with its reason."""
    import json

    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
