"""The synthetic multi-image grounding benchmark: ``mirg data synth``.

A dataset folder in the manifest format (``manifest.jsonl``, ``images/``, ``README.md``) of simple
coloured shapes, in the task families of MIG-Bench (see :mod:`mirg.data.synth_tasks`). Contracts:

- **Deterministic**: sample ``i`` depends only on the seed, ``i`` and the options, never on ``--n`` or
  ``--workers``; the same arguments give byte-identical files.
- **Balanced**: tasks take turns; within a task the number of images takes turns; within each
  (task, number of images) the target image goes through every allowed position once per block (in a
  seeded order), so counts are equal to within one and a blind model gains nothing from position.
- **Unique answers**: every sample is checked (:func:`check_built`): the target box is an annotated object
  of the target image, nothing else there matches what the question says, and images the question rules
  out hold no match. A draw that fails is redrawn from the same generator and counted.

>>> cfg = SynthConfig(n=20, tasks=("diff", "region"))
>>> [plan_sample(cfg, i)[:2] for i in range(4)]
[('diff', 2), ('region', 2), ('diff', 2), ('region', 3)]
>>> sorted(plan_sample(cfg, i)[2] for i in range(0, 8, 2))  # diff: target image 1 and 2 equally often
[1, 1, 2, 2]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mirg.data.synth_scene import Canvas, Retry, separated
from mirg.data.synth_tasks import DEFAULT_TASKS, FAMILIES, PERCEPTION_TASKS, Built, Plan
from mirg.errors import MirgError
from mirg.folders import UNFINISHED, finish_dataset_folder, start_dataset_folder
from mirg.schema import ObjectAnn, Sample, Target

MAX_IMAGES = 6
#: Most objects per image in a scene (perception samples can ask for fewer).
MAX_OBJECTS = 4
MAX_DRAWS = 50
IMAGE_SIZE_RANGE = (64, 2048)
_FAMILY_IDS = {name: i for i, name in enumerate(FAMILIES)}


@dataclass(frozen=True)
class SynthConfig:
    """Options of one generated dataset; validated on creation (a bad one raises ``MirgError``).

    ``tasks`` is kept in the canonical family order, so the order given does not change the output.
    """

    n: int
    seed: int = 0
    image_size: int = 224
    min_images: int = 2
    max_images: int = 4
    tasks: tuple[str, ...] = DEFAULT_TASKS
    id_prefix: str = "synth"
    max_objects: int = MAX_OBJECTS

    def command_line(self) -> str:
        """The options that made the dataset (``--out`` and ``--workers`` don't change it)."""
        return (f"mirg data synth --out DIR --samples {self.n} --seed {self.seed} --image-size {self.image_size} "
                f"--min-images {self.min_images} --max-images {self.max_images} --tasks {','.join(self.tasks)} "
                f"--id-prefix {self.id_prefix}")

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise MirgError(f"--samples must be at least 1, got {self.n}")
        if self.seed < 0:
            raise MirgError(f"--seed must be 0 or more, got {self.seed}")
        lo, hi = IMAGE_SIZE_RANGE
        if not lo <= self.image_size <= hi:
            raise MirgError(f"--image-size must be {lo}..{hi} pixels, got {self.image_size}")
        for flag, value in (("--min-images", self.min_images), ("--max-images", self.max_images)):
            if not 1 <= value <= MAX_IMAGES:
                raise MirgError(f"{flag} must be 1..{MAX_IMAGES}, got {value}")
        if self.min_images > self.max_images:
            hint = ""
            if self.max_images == 1:
                hint = " (one-image samples: --tasks perception --min-images 1 --max-images 1)"
            raise MirgError(f"--min-images {self.min_images} is more than --max-images {self.max_images}{hint}")
        if not self.id_prefix or any(ch.isspace() or ch in "/\\" for ch in self.id_prefix):
            raise MirgError(f"--id-prefix must be a non-empty word without spaces or slashes, got {self.id_prefix!r}")
        if not 1 <= self.max_objects <= MAX_OBJECTS:
            raise MirgError(f"--max-objects must be 1..{MAX_OBJECTS}, got {self.max_objects}")
        object.__setattr__(self, "tasks", _canonical_tasks(self.tasks))
        if self.max_objects < MAX_OBJECTS and not set(self.tasks) <= set(PERCEPTION_TASKS):
            raise MirgError("--max-objects applies to the perception families only (--tasks perception,listing)")
        for task in self.tasks:
            self.image_range(task)

    def image_range(self, task: str) -> tuple[int, int]:
        """The numbers of images ``task`` gets: its own range cut to ``min_images..max_images``."""
        _, fewest, most, _ = FAMILIES[task]
        return family_image_range(task, fewest, most, self.min_images, self.max_images)


def family_image_range(task: str, fewest: int, most: int, min_images: int, max_images: int) -> tuple[int, int]:
    """A family's own range of images (``fewest..most``) cut to ``--min-images..--max-images``; one line when
    nothing is left."""
    lo, hi = max(fewest, min_images), min(most, max_images)
    if lo > hi:
        need = f"exactly {fewest}" if fewest == most else f"{fewest}..{most}"
        raise MirgError(
            f"task {task} needs {need} images, but --min-images {min_images} --max-images "
            f"{max_images} allow none of them (change the image range or leave {task} out of --tasks)"
        )
    return lo, hi


def _canonical_tasks(tasks) -> tuple[str, ...]:
    names = [t.strip() for t in tasks if t.strip()]
    if not names:
        raise MirgError("--tasks is empty")
    unknown = [t for t in names if t not in FAMILIES]
    if unknown:
        raise MirgError(f"unknown task {unknown[0]!r} (known: {', '.join(FAMILIES)})")
    return tuple(name for name in FAMILIES if name in names)


def parse_tasks(text: str | None) -> tuple[str, ...]:
    """``--tasks a,b`` as a tuple; ``None`` gives the ten MIG-Bench families."""
    return DEFAULT_TASKS if text is None else tuple(text.split(","))


def plan_sample(cfg: SynthConfig, index: int) -> tuple[str, int, int]:
    """``(task, number of images, target image)`` of sample ``index``, decided by the balancing rules."""
    return balanced_plan(cfg.tasks, index, cfg.seed, cfg.image_range, lambda task, n: FAMILIES[task][3](n),
                         _FAMILY_IDS)


def balanced_plan(tasks: tuple[str, ...], index: int, seed: int, image_range: Callable[[str], tuple[int, int]],
                  positions: Callable[[str, int], list[int]], family_ids: dict[str, int]) -> tuple[str, int, int]:
    """``(task, number of images, position)`` of sample ``index``: tasks take turns, then numbers of images, and
    within each (task, number of images) the position goes through all of ``positions(task, n)`` once per block,
    in an order seeded by ``(seed, family id, n, block)``. Depends only on ``index``, never on how many are made.

    >>> [balanced_plan(("a",), i, 0, lambda t: (2, 2), lambda t, n: [1, 2], {"a": 0})[2] for i in range(6)]
    [2, 1, 2, 1, 1, 2]
    """
    task = tasks[index % len(tasks)]
    nth = index // len(tasks)
    lo, hi = image_range(task)
    n_images = lo + nth % (hi - lo + 1)
    within = nth // (hi - lo + 1)
    allowed = positions(task, n_images)
    block, slot = divmod(within, len(allowed))
    order = np.random.default_rng([seed, family_ids[task], n_images, block]).permutation(len(allowed))
    return task, n_images, allowed[int(order[slot])]


# --- checking a sample ------------------------------------------------------------------------------


def _view_problems(built: Built, canvas: Canvas) -> list[str]:
    problems = []
    for k, view in enumerate(built.views, start=1):
        boxes = [o.box for o in view.objects]
        for b in boxes:
            if not (0 <= b[0] < b[2] <= canvas.side and 0 <= b[1] < b[3] <= canvas.side):
                problems.append(f"image {k}: box {b} is empty or outside the image")
            elif min(b[2] - b[0], b[3] - b[1]) < canvas.min_side:
                problems.append(f"image {k}: box {b} is smaller than {canvas.min_side} px")
        if len({o.kind for o in view.objects}) != len(view.objects):
            problems.append(f"image {k}: two objects of one kind")
        if any(not separated(a, b, 0) for i, a in enumerate(boxes) for b in boxes[:i]):
            problems.append(f"image {k}: objects overlap")
        if view.mark is not None and view.mark not in view.objects:
            problems.append(f"image {k}: the outlined object is not one of its objects")
    return problems


def check_built(built: Built, plan: Plan) -> list[str]:
    """Every reason ``built`` is not a valid, unambiguous sample for ``plan`` (empty when it is)."""
    problems = _view_problems(built, plan.canvas)
    if len(built.views) != plan.n_images or built.target != plan.target:
        return problems + ["the sample does not follow its plan (number of images, target image)"]
    target_view = built.views[built.target - 1]
    if built.target_obj not in target_view.objects:
        problems.append("the target is not an annotated object of the target image")

    def matches(view) -> list:
        return [o for o in view.objects if all(getattr(o, a) == getattr(built.target_obj, a) for a in built.key)]

    if len(matches(target_view)) != 1:
        problems.append(f"the target image holds {len(matches(target_view))} objects matching the question")
    for k in built.absent_from:
        if matches(built.views[k - 1]):
            problems.append(f"image {k} also holds an object matching the question")
    if built.reference is not None:
        r, obj = built.reference
        if r == built.target or obj not in built.views[r - 1].objects:
            problems.append("the reference object is not an object of another image")
    if built.solo_image is not None and len(built.views[built.solo_image - 1].objects) != 1:
        problems.append(f"image {built.solo_image} must hold exactly one object")
    return problems


@dataclass
class Draws:
    """Why draws of one sample were thrown away: no room to place (``retries``), failed check (``rejects``)."""

    retries: int = 0
    rejects: int = 0
    reasons: list[str] = field(default_factory=list)


def build_sample(cfg: SynthConfig, index: int) -> tuple[str, Built, Draws]:
    """Draw sample ``index`` until it passes :func:`check_built`; returns its task, the sample and the
    draws thrown away. Raises ``MirgError`` if no draw passes (a generator bug, not a user error)."""
    task, n_images, target = plan_sample(cfg, index)
    plan = Plan(task, n_images, target, np.random.default_rng([cfg.seed, index]), Canvas(cfg.image_size),
                cfg.max_objects)
    builder = FAMILIES[task][0]
    draws = Draws()
    for _ in range(MAX_DRAWS):
        try:
            built = builder(plan)
        except Retry as exc:
            draws.retries += 1
            draws.reasons.append(str(exc))
            continue
        problems = check_built(built, plan)
        if not problems:
            return task, built, draws
        draws.rejects += 1
        draws.reasons.append(problems[0])
    raise MirgError(
        f"sample {index} ({task}, {n_images} images at {cfg.image_size} px): no valid draw in {MAX_DRAWS} "
        f"tries ({draws.reasons[-1]})"
    )


# --- from a built sample to files --------------------------------------------------------------------


def image_paths(index: int, n_images: int) -> list[str]:
    return [f"images/{index:06d}_{k}.png" for k in range(1, n_images + 1)]


def object_attributes(obj, canvas: Canvas, outlined: bool) -> dict:
    """Colour, shape and size word; ``outlined: true`` on the object an outline marks."""
    attributes = {"color": obj.color, "shape": obj.shape, "size": canvas.size_word(obj.box)}
    if outlined:
        attributes["outlined"] = True
    return attributes


def to_sample(built: Built, cfg: SynthConfig, index: int, task: str) -> Sample:
    """The manifest record of ``built``: annotations of every image, notes and the ``hints`` for trajectories."""
    from mirg.data.synth_scene import note

    canvas = Canvas(cfg.image_size)
    objects = [
        [ObjectAnn(o.label, tuple(float(v) for v in o.box),  # type: ignore[arg-type]
                   object_attributes(o, canvas, o == view.mark)) for o in view.objects]
        for view in built.views
    ]
    reference = None
    if built.reference is not None:
        r, obj = built.reference
        reference = {"image": r, "object": built.views[r - 1].index_of(obj)}
    hints = {
        "target_object": built.views[built.target - 1].index_of(built.target_obj),
        "reference": reference,
        "rule": built.rule,
    }
    n = len(built.views)
    return Sample(
        id=f"{cfg.id_prefix}-{index:06d}",
        task=task,
        images=image_paths(index, n),
        image_sizes=[(cfg.image_size, cfg.image_size)] * n,
        question=built.question,
        target=Target(image=built.target, bbox=tuple(float(v) for v in built.target_obj.box)),  # type: ignore[arg-type]
        objects=objects,
        image_notes=[note(v, canvas) for v in built.views],
        extra={"hints": hints},
    )


def generate_one(cfg: SynthConfig, index: int, out: Path) -> tuple[Sample, Draws]:
    """Build sample ``index``, write its images under ``out`` and return its record."""
    from mirg.data.synth_draw import render, save_png

    task, built, draws = build_sample(cfg, index)
    sample = to_sample(built, cfg, index, task)
    canvas = Canvas(cfg.image_size)
    for view, rel in zip(built.views, sample.images):
        save_png(render(view, canvas), out / rel)
    return sample, draws


def generate_range(cfg: SynthConfig, out: Path, start: int, stop: int) -> list[tuple[Sample, Draws]]:
    """Samples ``start..stop-1`` (a worker's share)."""
    return [generate_one(cfg, i, out) for i in range(start, stop)]


# --- the dataset folder ------------------------------------------------------------------------------

OUTPUTS = ("manifest.jsonl", "README.md", "images", "examples")


def prepare_output(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready: refuse a non-empty folder unless ``overwrite``, and then remove only what this
    generator writes there (``manifest.jsonl``, ``README.md``, ``images/``, ``examples/``)."""
    if out.exists() and not out.is_dir():
        raise MirgError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        unfinished = (out / UNFINISHED).exists()
        if not overwrite:
            what = "a dataset whose run was cut short" if unfinished else "the dataset there"
            raise MirgError(f"--out {out} is not empty; pass --overwrite to replace {what}")
        if not unfinished and not (out / "manifest.jsonl").is_file():
            raise MirgError(f"--out {out} holds no manifest.jsonl: not a dataset folder, not overwriting it")
    start_dataset_folder(out, OUTPUTS, "mirg data synth")


@dataclass
class SynthResult:
    samples: list[Sample]
    retries: int
    rejects: int
    seconds: float

    @property
    def images(self) -> int:
        return sum(s.num_images for s in self.samples)


def _run_samples(cfg: SynthConfig, out: Path, workers: int, tick: Callable[[int], None]) -> list[tuple[Sample, Draws]]:
    if workers <= 1:
        results = []
        for i in range(cfg.n):
            results.append(generate_one(cfg, i, out))
            tick(1)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunk = max(1, min(100, cfg.n // (workers * 4) or 1))
    ranges = [(s, min(cfg.n, s + chunk)) for s in range(0, cfg.n, chunk)]
    results = []
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    futures = []
    try:
        futures.extend(pool.submit(generate_range, cfg, out, s, e) for s, e in ranges)
        for future in futures:
            try:
                part = future.result()
            except BrokenProcessPool as err:
                raise MirgError(f"a drawing worker stopped abruptly ({err.__class__.__name__}: out of memory, killed, "
                                "or a module in the working directory shadows the standard library); "
                                "rerun with --workers 1 to see why") from None
            results.extend(part)
            tick(len(part))
    except BaseException:  # an interrupt or a failure: the queued ranges are not drawn; the workers finish the
        for future in futures:  # ranges in hand and exit. Each is cancelled here: shutdown(cancel_futures=True)
            future.cancel()  # alone left them to a pool thread that could miss it and draw every range first
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def write_dataset(cfg: SynthConfig, out: Path, workers: int = 1, overwrite: bool = False,
                  progress: bool = False) -> SynthResult:
    """Generate the dataset of ``cfg`` into ``out``: images, ``manifest.jsonl`` and the ``README.md`` card.

    The files do not depend on ``workers``. ``progress`` shows a bar on stderr (when it is a terminal).
    """
    from tqdm import tqdm

    from mirg.data.synth_card import write_card
    from mirg.schema import write_manifest

    if workers < 1:
        raise MirgError(f"--workers must be at least 1, got {workers}")
    start = time.perf_counter()
    prepare_output(out, overwrite)
    with tqdm(total=cfg.n, unit="sample", disable=None if progress else True, leave=False) as bar:
        results = _run_samples(cfg, out, workers, bar.update)
    samples = [s for s, _ in results]
    write_manifest(samples, out / "manifest.jsonl")
    write_card(out, samples, cfg.tasks, cfg.image_size, cfg.command_line())
    finish_dataset_folder(out)
    return SynthResult(samples, sum(d.retries for _, d in results), sum(d.rejects for _, d in results),
                       time.perf_counter() - start)
