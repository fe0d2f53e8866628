"""The task families of the synthetic benchmark, named as in MIG-Bench, plus ``perception``.

A builder gets a :class:`Plan` (family, number of images, target image, a seeded generator) and
returns a :class:`Built`: the views to draw, the target object, the question, and what the question
says about the target (``key``: the attributes that name it; ``absent_from``: images that must hold
no match), so that :func:`mirg.data.synth.check_built` can prove the answer unique.

Builders never choose the target image: the plan does, so that target positions are balanced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from mirg.data.synth_scene import (
    COLORS,
    KINDS,
    MARK_COLOR,
    SHAPES,
    Canvas,
    Kind,
    Obj,
    Retry,
    View,
    article,
    layout_ok,
    make_view,
    moved,
    place,
    random_background,
    separated,
    viewed,
)

ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth"}


@dataclass
class Plan:
    """What the balancing decided for one sample; the builder decides the rest with ``rng``."""

    task: str
    n_images: int
    target: int  # 1-based
    rng: np.random.Generator
    canvas: Canvas
    max_objects: int = 4  # perception only: objects per image


@dataclass
class Built:
    """One sample before it is drawn: views, the answer and what the question says about it."""

    views: list[View]
    target: int
    target_obj: Obj
    question: str
    rule: str
    key: tuple[str, ...] = ("color", "shape")
    absent_from: tuple[int, ...] = ()
    reference: tuple[int, Obj] | None = None
    solo_image: int | None = None


# --- small shared helpers ---------------------------------------------------------------------------


def between(rng: np.random.Generator, lo: int, hi: int) -> int:
    """A random integer in ``lo..hi`` inclusive."""
    return int(rng.integers(lo, hi + 1))


def choose(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def image_namer(rng: np.random.Generator) -> Callable[[int], str]:
    """How this sample's question names images: ``image 2`` or ``the second image`` (both MIG-Bench styles)."""
    if rng.random() < 0.5:
        return lambda k: f"image {k}"
    return lambda k: f"the {ORDINALS[k]} image"


def pick_kinds(
    rng: np.random.Generator, count: int, avoid: Sequence[Kind] | set = (), near: Kind | None = None
) -> list[Kind]:
    """``count`` distinct kinds not in ``avoid``; each is, half the time, a near miss of ``near``
    (same colour or same shape), so that a model must read both attributes."""
    banned = set(avoid)
    chosen: list[Kind] = []
    for _ in range(count):
        pool = [k for k in KINDS if k not in banned]
        if near is not None and rng.random() < 0.5:
            pool = [k for k in pool if k[0] == near[0] or k[1] == near[1]] or pool
        kind = pool[int(rng.integers(len(pool)))]
        chosen.append(kind)
        banned.add(kind)
    return chosen


def find(view: View, kind: Kind) -> Obj:
    return next(o for o in view.objects if o.kind == kind)


def other_position(rng: np.random.Generator, n: int, target: int) -> int:
    """A reference image other than the target: with two images, whichever one the target is not."""
    return choose(rng, [k for k in range(1, n + 1) if k != target])


def description(rng: np.random.Generator, obj: Obj, canvas: Canvas) -> str:
    """``"red circle"``, or now and then ``"large red circle"``."""
    if rng.random() < 0.3:
        return f"{canvas.size_word(obj.box)} {obj.label}"
    return obj.label


def scene(rng: np.random.Generator, canvas: Canvas, kinds: Sequence[Kind], **view_args) -> View:
    return make_view(rng, place(rng, canvas, kinds), **view_args)


# --- common_object -----------------------------------------------------------------------------------


def build_common_object(p: Plan) -> Built:
    """One kind in every image; no other kind is in all of them."""
    rng, n, t = p.rng, p.n_images, p.target
    shared = pick_kinds(rng, 1)[0]
    in_all: set[Kind] | None = None
    views = []
    for k in range(1, n + 1):
        avoid = {shared} | (in_all if k == n and in_all else set())
        extra = pick_kinds(rng, between(rng, 1 if k == t else 0, 3), avoid, near=shared)
        in_all = set(extra) if in_all is None else in_all & set(extra)
        views.append(scene(rng, p.canvas, [shared] + extra))
    name = image_namer(rng)
    question = choose(rng, [
        "These images share one object in common. Recognize and locate this object in {K}.",
        "One object appears in every image. Find it in {K}.",
        "All {N} images contain the same kind of object. Locate it in {K}.",
    ]).format(K=name(t), N=n)
    target = find(views[t - 1], shared)
    return Built(views, t, target, question, f"the {target.label} is the only object that appears in every image")


# --- diff and view_diff ------------------------------------------------------------------------------


def _difference(p: Plan) -> tuple[list[Obj], list[Obj], Obj, str]:
    """Objects of the target image and of the other one, the differing object, and why it differs."""
    rng, t = p.rng, p.target
    o = 3 - t
    others = pick_kinds(rng, between(rng, 1, 3))
    if rng.random() < 0.5:  # present in the target image only (added or removed, seen from the other)
        extra = pick_kinds(rng, 1, others, near=others[0])[0]
        objs = place(rng, p.canvas, others + [extra])
        x = objs[-1]
        return objs, objs[:-1], x, f"the {x.label} appears in image {t} but not in image {o}"
    shape = choose(rng, SHAPES)
    free = [c for c in COLORS if (c, shape) not in others]
    c_t, c_o = (free[i] for i in rng.permutation(len(free))[:2])
    objs = place(rng, p.canvas, others + [(c_t, shape)])
    x = objs[-1]
    return objs, objs[:-1] + [replace(x, color=c_o)], x, f"the {shape} is {c_o} in image {o} but {c_t} in image {t}"


def build_diff(p: Plan) -> Built:
    """Two copies of one scene; one object is added, removed or recoloured."""
    rng, t = p.rng, p.target
    objs_t, objs_o, x, rule = _difference(p)
    bg = random_background(rng)
    views = [make_view(rng, objs_t, bg), make_view(rng, objs_o, bg)]
    if t == 2:
        views.reverse()
    question = choose(rng, [
        "Compare these two images carefully and give me the coordinates of their difference in {K}.",
        "The two images differ in one object. Locate it in {K}.",
        "Spot the difference between the two images and locate it in {K}.",
    ]).format(K=image_namer(rng)(t))
    return Built(views, t, x, question, rule, absent_from=(3 - t,))


def _shift_range(lo_edge: int, hi_edge: int, limit: int) -> tuple[int, int]:
    return max(-limit, lo_edge), min(limit, hi_edge)


def _alter(rng: np.random.Generator, canvas: Canvas, objs: list[Obj]) -> tuple[list[Obj], dict]:
    """Shift the whole scene (staying inside), relight it and add noise: the same scene, another shot."""
    side, edge, limit = canvas.side, canvas.edge, round(0.1 * canvas.side)
    lx, hx = _shift_range(edge - min(o.box[0] for o in objs), side - edge - max(o.box[2] for o in objs), limit)
    ly, hy = _shift_range(edge - min(o.box[1] for o in objs), side - edge - max(o.box[3] for o in objs), limit)
    dx, dy = between(rng, lx, hx), between(rng, ly, hy)
    darker = rng.random() < 0.5
    brightness = float(rng.uniform(0.7, 0.85) if darker else rng.uniform(1.12, 1.25))
    effects = {
        "brightness": round(brightness, 3),
        "noise": between(rng, 6, 12),
        "noise_seed": int(rng.integers(2**31)),
        "remark": f"the view is shifted, {'darker' if darker else 'brighter'} and noisy",
    }
    return [moved(o, dx, dy) for o in objs], effects


def build_view_diff(p: Plan) -> Built:
    """As ``diff``, but one of the two images (either) is shifted, relit and noisy."""
    rng, t = p.rng, p.target
    objs_t, objs_o, x, rule = _difference(p)
    bg = random_background(rng)
    by_image = {t: objs_t, 3 - t: objs_o}
    altered = between(rng, 1, 2)
    by_image[altered], effects = _alter(rng, p.canvas, by_image[altered])
    x = by_image[t][-1]  # the differing object is last in both lists, moved or not
    views = [make_view(rng, by_image[k], bg, **(effects if k == altered else {})) for k in (1, 2)]
    question = choose(rng, [
        "Compare these two images carefully and give me the coordinates of their real difference in {K}.",
        "One image is shifted, relit and noisy, but only one object really differs. Locate it in {K}.",
        "Ignoring the change of view, lighting and noise, find the object that differs and locate it in {K}.",
    ]).format(K=image_namer(rng)(t))
    return Built(views, t, x, question, rule, absent_from=(3 - t,))


# --- region ------------------------------------------------------------------------------------------


def _crop_window(rng: np.random.Generator, canvas: Canvas, obj: Obj, others: list[Obj]) -> tuple[int, int, int]:
    """A square window around ``obj`` with some margin, inside the image, touching no other object."""
    side = canvas.side
    x1, y1, x2, _ = obj.box
    size = x2 - x1
    for frac in (float(rng.uniform(0.25, 0.6)), 0.15, 0.05, 0.0):
        margin = round(size * frac)
        w = min(side, size + 2 * margin)
        wx, wy = min(max(x1 - margin, 0), side - w), min(max(y1 - margin, 0), side - w)
        if all(separated((wx, wy, wx + w, wy + w), o.box, 0) for o in others):
            return wx, wy, w
    raise Retry("no crop without a neighbour")


def crop_view(rng: np.random.Generator, canvas: Canvas, full: View, obj: Obj) -> View:
    """A close-up of ``obj``: the window around it scaled to the whole image (redrawn, so it stays sharp)."""
    wx, wy, w = _crop_window(rng, canvas, obj, [o for o in full.objects if o != obj])
    scale = canvas.side / w
    box = tuple(min(canvas.side, max(0, round((v - off) * scale))) for v, off in zip(obj.box, (wx, wy, wx, wy)))
    return View(full.background, full.bg_rgb, [Obj(obj.color, obj.shape, box)], closeup=True)  # type: ignore[arg-type]


def build_region(p: Plan) -> Built:
    """One full scene (the target image, anywhere) and close-ups of distinct objects of it."""
    rng, n, t = p.rng, p.n_images, p.target
    full = scene(rng, p.canvas, pick_kinds(rng, max(n - 1, between(rng, 2, 4))))
    crops_at = [k for k in range(1, n + 1) if k != t]
    views: list[View] = [full] * n
    for k, i in zip(crops_at, rng.permutation(len(full.objects))):
        views[k - 1] = crop_view(rng, p.canvas, full, full.objects[int(i)])
    j = choose(rng, crops_at)
    target = find(full, views[j - 1].objects[0].kind)
    name = image_namer(rng)
    question = choose(rng, [
        "{J} shows a region of one of the other images. Locate that region.",
        "{J} is a close-up of part of another image. Find that part and locate it.",
        "You are given a scene and close-ups of its parts. Locate the region shown in {j} in the image it comes from.",
    ]).format(J=cap(name(j)), j=name(j))
    rule = f"image {t} is the only full scene, and its {target.label} is the object shown in close-up in image {j}"
    return Built(views, t, target, question, rule, absent_from=tuple(k for k in crops_at if k != j))


# --- refer_grounding, group_grounding ---------------------------------------------------------------


def build_refer_grounding(p: Plan) -> Built:
    """An object outlined in image r; the same kind of object, elsewhere, in image k."""
    rng, n, t = p.rng, p.n_images, p.target
    r = other_position(rng, n, t)
    kind = pick_kinds(rng, 1)[0]
    views = []
    for k in range(1, n + 1):
        if k in (r, t):
            kinds = [kind] + pick_kinds(rng, between(rng, 1, 3), {kind}, near=kind if k == t else None)
        else:
            kinds = pick_kinds(rng, between(rng, 1, 4), near=kind)
        views.append(scene(rng, p.canvas, kinds))
    ref = views[r - 1].mark = find(views[r - 1], kind)
    name = image_namer(rng)
    question = choose(rng, [
        "Find and locate where the object outlined in {R} is in {K}.",
        "The object marked with a {m} box in {R} also appears in {K}. Locate it there.",
        "Locate in {K} the same object as the one outlined in {R}.",
    ]).format(R=name(r), K=name(t), m=MARK_COLOR)
    target = find(views[t - 1], kind)
    rule = f"the {kind[0]} {kind[1]} outlined in image {r} appears in image {t}"
    return Built(views, t, target, question, rule, reference=(r, ref))


def build_group_grounding(p: Plan) -> Built:
    """A text description that matches an object of exactly one image; the question names no image."""
    rng, n, t = p.rng, p.n_images, p.target
    kind = pick_kinds(rng, 1)[0]
    views = []
    for k in range(1, n + 1):  # 2-4 objects in every image: the count must not point at the target image
        if k == t:
            kinds = [kind] + pick_kinds(rng, between(rng, 1, 3), {kind}, near=kind)
        else:
            kinds = pick_kinds(rng, between(rng, 2, 4), {kind}, near=kind)
        view = scene(rng, p.canvas, kinds)
        if rng.random() < OUTLINE_SHARE:  # outlines are part of seeing: the cross-image families mark objects
            view.mark = view.objects[int(rng.integers(len(view.objects)))]
        views.append(view)
    target = find(views[t - 1], kind)
    desc = description(rng, target, p.canvas)
    question = choose(rng, [
        "Please find the bounding box of the object described by: {a} {d}.",
        "Locate the {d}: it is in one of these images.",
        "One of these images contains {a} {d}. Find it and locate it.",
    ]).format(a=article(desc), d=desc)
    rule = f"image {t} is the only image with a {target.label}"
    return Built(views, t, target, question, rule, absent_from=tuple(k for k in range(1, n + 1) if k != t))


# --- reasoning, correspondence -----------------------------------------------------------------------


def build_reasoning(p: Plan) -> Built:
    """Image r holds one object; its colour (or shape) decides which object to find in image k."""
    rng, n, t = p.rng, p.n_images, p.target
    r = other_position(rng, n, t)
    clue = pick_kinds(rng, 1)[0]
    by_color = rng.random() < 0.5
    if by_color:
        want: Kind = (clue[0], choose(rng, [s for s in SHAPES if s != clue[1]]))
    else:
        want = (choose(rng, [c for c in COLORS if c != clue[0]]), clue[1])
    views = []
    for k in range(1, n + 1):
        if k == r:
            kinds = [clue]
        elif k == t:
            kinds = [want] + pick_kinds(rng, between(rng, 1, 3), {want}, near=want)
        else:
            kinds = pick_kinds(rng, between(rng, 1, 4), near=want)
        views.append(scene(rng, p.canvas, kinds))
    name = image_namer(rng)
    if by_color:
        question = choose(rng, [
            "Find the {s} in {K} whose colour matches the object in {R}.",
            "Locate the {s} in {K} that has the same colour as the object in {R}.",
        ])
        rule = f"the object in image {r} is {clue[0]}, so the target is the {want[0]} {want[1]} in image {t}"
    else:
        question = choose(rng, [
            "Find the {c} object in {K} that has the same shape as the object in {R}.",
            "Locate in {K} the {c} object shaped like the object in {R}.",
        ])
        rule = f"the object in image {r} is a {clue[1]}, so the target is the {want[0]} {want[1]} in image {t}"
    question = question.format(s=want[1], c=want[0], K=name(t), R=name(r))
    return Built(views, t, find(views[t - 1], want), question, rule,
                 reference=(r, views[r - 1].objects[0]), solo_image=r)


def build_correspondence(p: Plan) -> Built:
    """An outlined object in image r; in image k, the one object with the same shape (other colour)."""
    rng, n, t = p.rng, p.n_images, p.target
    r = other_position(rng, n, t)
    ref_kind = pick_kinds(rng, 1)[0]
    shape = ref_kind[1]
    match: Kind = (choose(rng, [c for c in COLORS if c != ref_kind[0]]), shape)
    same_shape = {(c, shape) for c in COLORS}
    views = []
    for k in range(1, n + 1):
        if k == r:
            kinds = [ref_kind] + pick_kinds(rng, between(rng, 1, 3), {ref_kind})
        elif k == t:
            kinds = [match] + pick_kinds(rng, between(rng, 1, 3), same_shape, near=ref_kind)
        else:
            kinds = pick_kinds(rng, between(rng, 1, 4), near=ref_kind)
        views.append(scene(rng, p.canvas, kinds))
    ref = views[r - 1].mark = find(views[r - 1], ref_kind)
    name = image_namer(rng)
    question = choose(rng, [
        "For the object outlined in {R}, find the corresponding object in {K}: the one with the same shape, "
        "whatever its colour or size.",
        "Objects correspond when they share a shape. Locate in {K} the object that corresponds to the one "
        "marked in {R}.",
    ]).format(R=name(r), K=name(t))
    rule = (f"the {match[0]} {shape} is the only {shape} in image {t}, like the outlined {ref_kind[0]} {shape} "
            f"in image {r}")
    return Built(views, t, find(views[t - 1], match), question, rule, key=("shape",), reference=(r, ref))


# --- object_tracking, multi_view ---------------------------------------------------------------------


def _velocity_range(lo_room: int, hi_room: int, steps: int, vmax: int) -> tuple[int, int]:
    return max(-vmax, math.ceil(lo_room / steps)), min(vmax, math.floor(hi_room / steps))


def _tracks(rng: np.random.Generator, canvas: Canvas, objs: list[Obj], frames: int) -> list[list[Obj]]:
    """Each object moving at its own constant small velocity; every frame keeps objects inside and apart."""
    side, edge, steps = canvas.side, canvas.edge, frames - 1
    vmax = max(2, round(0.05 * side))
    for _ in range(40):
        vel = []
        for o in objs:
            lx, hx = _velocity_range(edge - o.box[0], side - edge - o.box[2], steps, vmax)
            ly, hy = _velocity_range(edge - o.box[1], side - edge - o.box[3], steps, vmax)
            vel.append((between(rng, lx, hx), between(rng, ly, hy)))
        out = [[moved(o, f * vx, f * vy) for o, (vx, vy) in zip(objs, vel)] for f in range(frames)]
        if all(layout_ok([o.box for o in frame], canvas) for frame in out):
            return out
    raise Retry("objects collide while moving")


def build_object_tracking(p: Plan) -> Built:
    """A sequence of frames with moving objects; the object outlined in frame 1 is found in frame k."""
    rng, n, t = p.rng, p.n_images, p.target
    kinds = pick_kinds(rng, between(rng, 2, 4))
    frames = _tracks(rng, p.canvas, place(rng, p.canvas, kinds), n)
    bg = random_background(rng)
    views = [make_view(rng, objs, bg) for objs in frames]
    kind = kinds[int(rng.integers(len(kinds)))]
    ref = views[0].mark = find(views[0], kind)
    question = choose(rng, [
        "These are a sequence of images containing moving objects. For the object in the first image marked "
        "with a {m} box, please locate it in {K}.",
        "The images are frames of one sequence. Track the object outlined in image 1 and locate it in {K}.",
    ]).format(K=image_namer(rng)(t), m=MARK_COLOR)
    rule = f"the {ref.label} outlined in image 1 moves through the sequence to this place in image {t}"
    return Built(views, t, find(views[t - 1], kind), question, rule, reference=(1, ref))


def _camera(rng: np.random.Generator, canvas: Canvas, objs: list[Obj]) -> list[Obj]:
    """The scene seen through a random camera: mirrored or not, zoomed a little, shifted a little."""
    limit = round(0.1 * canvas.side)
    for _ in range(40):
        zoom = float(rng.uniform(0.85, 1.15))
        mirror = bool(rng.random() < 0.3)
        dx, dy = (int(v) for v in rng.integers(-limit, limit + 1, size=2))
        out = [viewed(o, canvas.side, zoom, dx, dy, mirror) for o in objs]
        if layout_ok([o.box for o in out], canvas):
            return out
    raise Retry("no camera keeps the scene inside")


def build_multi_view(p: Plan) -> Built:
    """One scene seen by several cameras (shift, zoom, mirror); outlined in image r, found in image k."""
    rng, n, t = p.rng, p.n_images, p.target
    r = other_position(rng, n, t)
    kinds = pick_kinds(rng, between(rng, 2, 4))
    world = place(rng, p.canvas, kinds)
    bg = random_background(rng)
    remark = "one view of the scene the other images show"
    views = [make_view(rng, _camera(rng, p.canvas, world), bg, remark=remark) for _ in range(n)]
    kind = kinds[int(rng.integers(len(kinds)))]
    ref = views[r - 1].mark = find(views[r - 1], kind)
    name = image_namer(rng)
    question = choose(rng, [
        "These images share one object in common (the object marked with a {m} box in {R}). Recognize and "
        "locate this object in {K}.",
        "These images show one scene from different viewpoints. Locate in {K} the object outlined in {R}.",
    ]).format(R=name(r), K=name(t), m=MARK_COLOR)
    rule = f"image {t} shows the scene of image {r} from another viewpoint, and its {ref.label} is the outlined object"
    return Built(views, t, find(views[t - 1], kind), question, rule, reference=(r, ref))


# --- perception (only on request) -------------------------------------------------------------------

#: Share of perception images with one object outlined (as the marked families outline a reference).
OUTLINE_SHARE = 1 / 3


def build_perception(p: Plan) -> Built:
    """Seeing without cross-image reasoning: list or describe, then locate a named object."""
    rng, n, t = p.rng, p.n_images, p.target
    kind = pick_kinds(rng, 1)[0]
    views = []
    for k in range(1, n + 1):
        if k == t:
            kinds = [kind] + pick_kinds(rng, between(rng, 0, p.max_objects - 1), {kind}, near=kind)
        else:
            kinds = pick_kinds(rng, between(rng, 1, p.max_objects), near=kind)
        view = scene(rng, p.canvas, kinds)
        if rng.random() < OUTLINE_SHARE:  # outlines are part of seeing: the cross-image families mark objects
            view.mark = view.objects[int(rng.integers(len(view.objects)))]
        views.append(view)
    target = find(views[t - 1], kind)
    desc = description(rng, target, p.canvas)
    if n == 1:
        question = choose(rng, [
            "List every object with its box, then locate the {d}.",
            "Locate the {d}.",
            "Find the {d} in the image.",
        ]).format(d=desc)
        rule = f"the image holds one {target.label}"
    else:
        question = f"Describe each image in turn, then locate the {desc} in {image_namer(rng)(t)}."
        rule = f"the question names image {t}, which holds one {target.label}"
    return Built(views, t, target, question, rule)


def build_listing(p: Plan) -> Built:
    """One image of two or more objects: list them all, then locate the leftmost or the rightmost one.

    The question names no colour or shape, so every label in the answer must be read from the image
    (where a question that names the target lets a small model copy its label onto every object).
    Left to right is by the box's centre, as ``mirg data trajectories --detail list`` orders its list.
    """
    rng = p.rng
    view = scene(rng, p.canvas, pick_kinds(rng, between(rng, 2, max(2, p.max_objects))))
    side = choose(rng, ["leftmost", "rightmost"])
    ordered = sorted(view.objects, key=lambda o: (o.box[0] + o.box[2], o.box[1] + o.box[3]))
    target = ordered[0] if side == "leftmost" else ordered[-1]
    question = f"List every object with its box, then locate the {side} one."
    return Built([view], 1, target, question, f"the {side} object of the image is the {target.label}")


def _all(n: int) -> list[int]:
    return list(range(1, n + 1))


def _after_first(n: int) -> list[int]:
    return list(range(2, n + 1))


#: name -> (builder, fewest images, most images, target positions allowed with n images)
FAMILIES: dict[str, tuple[Callable[[Plan], Built], int, int, Callable[[int], list[int]]]] = {
    "common_object": (build_common_object, 2, 6, _all),
    "diff": (build_diff, 2, 2, _all),
    "view_diff": (build_view_diff, 2, 2, _all),
    "region": (build_region, 2, 5, _all),
    "refer_grounding": (build_refer_grounding, 2, 6, _all),
    "group_grounding": (build_group_grounding, 2, 6, _all),
    "reasoning": (build_reasoning, 2, 6, _all),
    "correspondence": (build_correspondence, 2, 6, _all),
    "object_tracking": (build_object_tracking, 3, 6, _after_first),
    "multi_view": (build_multi_view, 2, 6, _all),
    "perception": (build_perception, 1, 6, _all),
    "listing": (build_listing, 1, 1, _all),
}
#: The families that teach seeing (made only when named): none of MIG-Bench's cross-image tasks.
PERCEPTION_TASKS = ("perception", "listing")
#: The ten MIG-Bench families, generated when no task list is given.
DEFAULT_TASKS = tuple(name for name in FAMILIES if name not in PERCEPTION_TASKS)
