"""The answer format: render, strict check (the format reward) and lenient parse (rewards, scoring).

A model answers::

    <think>free-form reasoning</think><answer>{"image": 2, "bbox_2d": [x1, y1, x2, y2]}</answer>

``image`` is 1-based. Everything here runs in linear time on any input: only ``str.find``/``str.count``
and ``json.loads``, no backtracking regular expressions.

>>> text = render_answer(2, [10, 20, 30, 40], think="The cat is in image 2.")
>>> text
'<think>The cat is in image 2.</think><answer>{"image": 2, "bbox_2d": [10, 20, 30, 40]}</answer>'
>>> is_strict(text, num_images=3)
True
>>> parse_answer('blah <answer>```json\\n[{"image": 1, "bbox_2d": [3, 4, 1, 2]}]\\n```</answer>').bbox
(3.0, 4.0, 1.0, 2.0)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


class AnswerError(ValueError):
    """Why a completion does not parse or is not in the strict format (a short reason)."""


@dataclass(frozen=True)
class Answer:
    """A parsed answer: the chosen image (1-based) and the box as the model wrote it (its own space)."""

    image: int
    bbox: tuple[float, float, float, float]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def render_answer(image: int, bbox: Sequence[float], think: str = "", **extra: Any) -> str:
    """Write a completion in the answer format. Integral coordinates are written as integers."""
    payload = {"image": int(image), "bbox_2d": [_plain_number(v) for v in bbox], **extra}
    return f"{THINK_OPEN}{think}{THINK_CLOSE}{ANSWER_OPEN}{json.dumps(payload)}{ANSWER_CLOSE}"


def _plain_number(value: float) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise AnswerError(f"answer is not valid JSON ({type(exc).__name__})") from None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _read_image(obj: dict, num_images: int | None) -> int:
    image = obj.get("image")
    if isinstance(image, bool) or not isinstance(image, int):
        raise AnswerError('"image" must be a JSON integer')
    if image < 1 or (num_images is not None and image > num_images):
        raise AnswerError(f'"image" {image} is outside 1..{num_images if num_images is not None else "n"}')
    return image


def _read_box(obj: dict) -> tuple[float, float, float, float]:
    box = obj.get("bbox_2d")
    if not isinstance(box, list) or len(box) != 4:
        raise AnswerError('"bbox_2d" must be a list of 4 numbers')
    if not all(_is_number(v) for v in box):
        raise AnswerError('"bbox_2d" must hold 4 finite numbers')
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _to_answer(obj: Any, num_images: int | None) -> Answer:
    if not isinstance(obj, dict):
        raise AnswerError("answer is not a JSON object")
    image = _read_image(obj, num_images)
    box = _read_box(obj)
    extra = {k: v for k, v in obj.items() if k not in ("image", "bbox_2d")}
    return Answer(image=image, bbox=box, extra=extra)


def _strip_fence(content: str) -> str:
    """Remove a Markdown code fence (```json ... ```) around the answer, if there is one."""
    if not content.startswith("```"):
        return content
    newline = content.find("\n")
    body = content[newline + 1 :] if newline != -1 else content[3:]
    if newline == -1 and body.startswith("json"):
        body = body[4:]
    body = body.rstrip()
    if body.endswith("```"):
        body = body[:-3]
    return body.strip()


def answer_block(text: str) -> str:
    """The content of the first ``<answer>...</answer>`` block of ``text``."""
    start = text.find(ANSWER_OPEN)
    if start == -1:
        raise AnswerError("no <answer> tag")
    start += len(ANSWER_OPEN)
    end = text.find(ANSWER_CLOSE, start)
    if end == -1:
        raise AnswerError("no </answer> after <answer>")
    return text[start:end]


def parse_answer(text: str, num_images: int | None = None) -> Answer:
    """Lenient parse: the first ``<answer>`` block, a ```json fence and ``[{...}]`` tolerated.

    The box is returned as written, even when inverted or empty (it then scores IoU 0).
    Raises :class:`AnswerError` with the reason when nothing usable is there.
    """
    content = _strip_fence(answer_block(text).strip())
    obj = _load_json(content)
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    return _to_answer(obj, num_images)


def try_parse_answer(text: str, num_images: int | None = None) -> Answer | None:
    """:func:`parse_answer`, returning ``None`` instead of raising."""
    try:
        return parse_answer(text, num_images)
    except AnswerError:
        return None


def check_strict(text: str, num_images: int) -> Answer:
    """The strict format check behind the format reward; returns the answer or raises the reason.

    The whole completion (outer whitespace trimmed) must be one ``<think>...</think>`` then one
    ``<answer>...</answer>`` with only whitespace between them and no other tag; the answer is one JSON
    object with an integer ``image`` in 1..num_images and a proper ``bbox_2d`` (x1 < x2, y1 < y2).
    """
    body = text.strip()
    for tag in _TAGS:
        if body.count(tag) != 1:
            raise AnswerError(f"{tag} must appear exactly once")
    if not body.startswith(THINK_OPEN):
        raise AnswerError("completion must start with <think>")
    if not body.endswith(ANSWER_CLOSE):
        raise AnswerError("completion must end with </answer>")
    think_end = body.find(THINK_CLOSE)
    answer_start = body.find(ANSWER_OPEN)
    if answer_start < think_end or body[think_end + len(THINK_CLOSE) : answer_start].strip():
        raise AnswerError("only whitespace may stand between </think> and <answer>")
    content = body[answer_start + len(ANSWER_OPEN) : -len(ANSWER_CLOSE)]
    answer = _to_answer(_load_json(content), num_images)
    x1, y1, x2, y2 = answer.bbox
    if not (x1 < x2 and y1 < y2):
        raise AnswerError('"bbox_2d" must have x1 < x2 and y1 < y2')
    return answer


def is_strict(text: str, num_images: int) -> bool:
    """True when ``text`` passes :func:`check_strict`."""
    try:
        check_strict(text, num_images)
    except AnswerError:
        return False
    return True


def think_block(text: str) -> str:
    """The reasoning inside the first ``<think>...</think>`` (empty when there is none)."""
    start = text.find(THINK_OPEN)
    if start == -1:
        return ""
    start += len(THINK_OPEN)
    end = text.find(THINK_CLOSE, start)
    return text[start:] if end == -1 else text[start:end]
