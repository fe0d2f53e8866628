"""The families `mirg data compose` makes from detection annotations, each one's rule in MIG-Bench's own layout and
wording, and what the families it can't make would need: read by the composer, its card and its ``--help``."""

from __future__ import annotations

from mirg.errors import MirgError

RULES = {
    "common_object": "2-6 photos that share exactly one category (crowd regions count as showing theirs), with "
    "exactly one instance of it in each; the question names the target image (\"Recognize and locate this "
    "object in the 3th image\"); the answer is that image's instance",
    "group_grounding": "2-6 photos; the category the question names (\"...described by: a dog.\") has exactly "
    "one instance in one photo and none, not even a crowd region, in the others; the question names no image; "
    "the answer is that photo and that instance",
    "refer_grounding": "2 images: image 1 is a crop of one instance of a category cut from another photo, image 2 "
    "a photo with exactly one instance of that category (\"Find and locate where does the object in image-1 "
    "locate in the image-2.\"); the answer is image 2 and that instance",
    "region": "2-5 images: image 1 is a photo, images 2.. are crops of distinct annotated objects of it (no other "
    "object of the photo overlaps one at IoU >= 0.5); the question asks for the k-th region picture; the answer "
    "is image 1 and the box that crop was cut from",
}
#: What the families that detection annotations can't express would need.
NEEDS = {
    "diff": "pairs of photos of one scene with one object added, removed or changed",
    "view_diff": "pairs of shots of one scene from different viewpoints with one real difference",
    "reasoning": "questions whose answer takes reasoning about the photos, with those answers",
    "correspondence": "objects of different photos matched by a shared part or function",
    "object_tracking": "video frames with object tracks",
    "multi_view": "views of one scene from several cameras with objects matched across views",
}
COMPOSE_TASKS = tuple(RULES)
GROUP_PHRASES = (  # MIG-Bench's group_grounding questions, in its own words
    "Please find the bounding box coordinates for the area described by: ",
    "Identify the bounding box of the region described by the following expression: ",
    "Please locate the bounding box of the region described in this sentence: ",
    "Please determine the bounding box coordinates for the area described here: ",
    "Please specify the bounding box coordinates for the region indicated by this sentence: ",
    "Provide the bounding box of the region this expression refers to: ",
    "Give the bounding box of the region that this sentence refers to: ",
    "Please provide the bounding box coordinate of the region this sentence describes: ",
    "Provide the bounding box coordinates for the region referred to by this sentence: ",
    "Give the bounding box coordinates of the area mentioned in this sentence: ",
    "Please identify the bounding box coordinates for the area described by this sentence: ",
)


def parse_tasks(text: str | None) -> tuple[str, ...]:
    """``--tasks a,b`` in canonical order; a family detection annotations can't express is refused in one line.

    >>> parse_tasks("region,common_object")
    ('common_object', 'region')
    >>> parse_tasks("diff")
    Traceback (most recent call last):
    mirg.errors.MirgError: --tasks diff: COCO-format annotations can't express it: it needs pairs of photos of ...
    """
    if text is None:
        return COMPOSE_TASKS
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise MirgError("--tasks is empty")
    for name in names:
        if name in NEEDS:
            raise MirgError(f"--tasks {name}: COCO-format annotations can't express it: it needs {NEEDS[name]} "
                            f"(compose makes {', '.join(COMPOSE_TASKS)})")
        if name not in RULES:
            raise MirgError(f"--tasks: unknown task {name!r} (compose makes {', '.join(COMPOSE_TASKS)})")
    return tuple(t for t in COMPOSE_TASKS if t in names)
