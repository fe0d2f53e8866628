"""The image-aware rewards of stage 2, with TRL's reward signature.

``f(completions, **kwargs) -> list[float | None]``: dataset columns arrive as keyword lists, one entry
per completion. The columns used here are those of ``rl.jsonl``: ``target_image`` (1-based),
``target_box`` (pixels of the original target image) and ``image_sizes`` (``[width, height]`` per image).

- ``format``: 1.0 when the completion passes the strict format check, else 0.0.
- ``image``: 1.0 when the lenient parse names the target image, else 0.0.
- ``object``: when the image is right, a function of the IoU in original pixels (mode ``iou``,
  ``iou@T`` or ``piecewise``), else 0.0.

Parse failures are counted and reported through TRL's ``log_metric`` when it is passed.

>>> good = '<think>It is in image 2.</think><answer>{"image": 2, "bbox_2d": [10, 10, 50, 50]}</answer>'
>>> cols = dict(target_image=[2, 2], target_box=[[10, 10, 50, 50]] * 2, image_sizes=[[[64, 64]] * 2] * 2)
>>> format_reward([good, "no answer"], **cols)
[1.0, 0.0]
>>> image_reward([good, good.replace('"image": 2', '"image": 1')], **cols)
[1.0, 0.0]
>>> make_object_reward("iou@0.5")([good, "no answer"], **cols)
[1.0, 0.0]
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from mirg.answer import AnswerError, check_strict, parse_answer
from mirg.errors import MirgError
from mirg.geometry import CoordSpace, clip_box, iou

RewardFunc = Callable[..., list]


def completion_text(completion: Any) -> str:
    """The text of a completion as TRL passes it: a string, or a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(_message_text(m) for m in completion)
    if isinstance(completion, dict):
        return _message_text(completion)
    return str(completion)


def _message_text(message: Any) -> str:
    content = message.get("content", "") if isinstance(message, dict) else message
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def _num_images(i: int, image_sizes: Sequence | None, images: Sequence | None) -> int | None:
    if image_sizes is not None:
        return len(image_sizes[i])
    if images is not None:
        return len(images[i])
    return None


def _log(log_metric: Callable | None, name: str, failures: int, total: int) -> None:
    if log_metric is not None and total:
        log_metric(name, failures / total)


def format_reward(completions: list, image_sizes=None, images=None, log_metric=None, **kwargs) -> list[float]:
    """1.0 for a completion in the strict answer format, else 0.0."""
    rewards = []
    for i, completion in enumerate(completions):
        try:
            check_strict(completion_text(completion), _num_images(i, image_sizes, images) or 10**9)
            rewards.append(1.0)
        except AnswerError:
            rewards.append(0.0)
    _log(log_metric, "format_failure_rate", rewards.count(0.0), len(rewards))
    return rewards


def image_reward(
    completions: list, target_image: list, image_sizes=None, images=None, log_metric=None, **kwargs
) -> list[float]:
    """1.0 when the answer names the target image, else 0.0."""
    rewards, failures = [], 0
    for i, completion in enumerate(completions):
        try:
            answer = parse_answer(completion_text(completion), _num_images(i, image_sizes, images))
        except AnswerError:
            failures += 1
            rewards.append(0.0)
            continue
        rewards.append(1.0 if answer.image == int(target_image[i]) else 0.0)
    _log(log_metric, "parse_failure_rate", failures, len(rewards))
    return rewards


def _shape(mode: str) -> Callable[[float], float]:
    if mode == "iou":
        return lambda v: v
    if mode == "piecewise":
        return lambda v: 1.0 if v >= 0.9 else (v if v > 0.1 else 0.0)
    if mode.startswith("iou@"):
        try:
            threshold = float(mode[4:])
        except ValueError:
            threshold = -1.0
        if 0.0 < threshold <= 1.0:
            return lambda v: 1.0 if v >= threshold else 0.0
    raise MirgError(f"unknown object reward mode {mode!r}; use iou, iou@T (0 < T <= 1) or piecewise")


def make_object_reward(
    mode: str = "iou", coords: str = "pixel", min_pixels: int | None = None, max_pixels: int | None = None
) -> RewardFunc:
    """The object reward for a model speaking ``coords``: IoU in original pixels, shaped by ``mode``."""
    shape = _shape(mode)
    limits = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    space = CoordSpace(coords, **limits)

    def object_reward(
        completions: list, target_image: list, target_box: list, image_sizes: list, log_metric=None, **kwargs
    ) -> list[float]:
        rewards, failures = [], 0
        for i, completion in enumerate(completions):
            sizes = image_sizes[i]
            try:
                answer = parse_answer(completion_text(completion), len(sizes))
            except AnswerError:
                failures += 1
                rewards.append(0.0)
                continue
            if answer.image != int(target_image[i]):
                rewards.append(0.0)
                continue
            size = sizes[answer.image - 1]
            box = clip_box(space.to_pixels(answer.bbox, size), size)
            rewards.append(shape(iou(box, target_box[i])))
        _log(log_metric, "object_parse_failure_rate", failures, len(rewards))
        return rewards

    object_reward.__name__ = "object_reward" if mode == "iou" else f"object_reward_{mode.replace('@', '_at_')}"
    return object_reward


def make_format_reward(**_: Any) -> RewardFunc:
    return format_reward


def make_image_reward(**_: Any) -> RewardFunc:
    return image_reward


#: name -> factory. Factories take the keyword options of :func:`build_rewards` they need.
REWARD_FACTORIES: dict[str, Callable[..., RewardFunc]] = {
    "format": make_format_reward,
    "image": make_image_reward,
    "object": lambda object_mode="iou", coords="pixel", min_pixels=None, max_pixels=None, **_: make_object_reward(
        object_mode, coords, min_pixels, max_pixels
    ),
}


def build_rewards(names: Sequence[str], **options: Any) -> list[RewardFunc]:
    """Reward functions by name (``format``, ``image``, ``object``), built only as asked.

    ``options``: ``object_mode``, ``coords``, ``min_pixels``, ``max_pixels``.
    """
    unknown = [n for n in names if n not in REWARD_FACTORIES]
    if unknown:
        raise MirgError(f"unknown reward(s) {', '.join(unknown)}; available: {', '.join(REWARD_FACTORIES)}")
    return [REWARD_FACTORIES[name](**options) for name in names]
