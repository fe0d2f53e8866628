"""Rewards with TRL's signature: format, image, object (three modes), coordinates, logged failures."""

from __future__ import annotations

import pytest

from mirg.answer import render_answer
from mirg.errors import MirgError
from mirg.geometry import CoordSpace
from mirg.rewards import build_rewards, format_reward, image_reward, make_object_reward

SIZES = [[200, 100], [400, 300], [640, 480]]
TARGET_BOX = [100.0, 60.0, 200.0, 160.0]  # in image 2 (400x300)


def columns(n):
    return dict(target_image=[2] * n, target_box=[TARGET_BOX] * n, image_sizes=[SIZES] * n)


def as_chat(text):
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def test_rewards_accept_strings_and_chat_messages():
    text = render_answer(2, TARGET_BOX, think="image 2")
    for completion in (text, as_chat(text), [{"role": "assistant", "content": text}]):
        assert format_reward([completion], **columns(1)) == [1.0]
        assert image_reward([completion], **columns(1)) == [1.0]
        assert make_object_reward()([completion], **columns(1)) == [1.0]


def test_object_reward_is_zero_for_wrong_image_even_with_perfect_box():
    text = render_answer(3, TARGET_BOX)
    assert image_reward([text], **columns(1)) == [0.0]
    assert make_object_reward()([text], **columns(1)) == [0.0]


@pytest.mark.parametrize(
    "mode,box,expected",
    [
        ("iou", [100, 60, 200, 110], 0.5),
        ("iou@0.5", [100, 60, 200, 110], 1.0),
        ("iou@0.6", [100, 60, 200, 110], 0.0),
        ("piecewise", [100, 60, 200, 110], 0.5),
        ("piecewise", [100, 60, 200, 70], 0.0),  # IoU 0.1 -> 0
        ("piecewise", [100, 60, 200, 151], 1.0),  # IoU 0.91 -> 1
        ("iou", [200, 160, 100, 60], 0.0),  # inverted: no reordering
        ("iou", [90, 60, 200, 160], 100 / 110),
        ("iou", [-500, 60, 200, 160], 100 / 200),  # clipped to the image first
    ],
)
def test_object_reward_modes(mode, box, expected):
    text = f'<answer>{{"image": 2, "bbox_2d": {box}}}</answer>'
    assert make_object_reward(mode)([text], **columns(1)) == [pytest.approx(expected)]


@pytest.mark.parametrize("space", ["norm1000", "norm1", "resized"])
def test_object_reward_reads_the_models_coordinate_space(space):
    cs = CoordSpace(space)
    spoken = cs.from_pixels(TARGET_BOX, SIZES[1])
    text = render_answer(2, spoken)
    assert make_object_reward("iou", coords=space)([text], **columns(1)) == [pytest.approx(1.0)]
    if space == "norm1000":  # (resized is close to pixel for a 400x300 image)
        assert make_object_reward("iou", coords="pixel")([text], **columns(1))[0] < 0.5


def test_parse_failures_are_logged_through_log_metric():
    logged = {}
    good = render_answer(2, TARGET_BOX)
    batch = [good, "garbage", "<answer>{]</answer>", good]
    image_reward(batch, **columns(4), log_metric=lambda k, v: logged.__setitem__(k, v))
    make_object_reward()(batch, **columns(4), log_metric=lambda k, v: logged.__setitem__(k, v))
    format_reward(batch, **columns(4), log_metric=lambda k, v: logged.__setitem__(k, v))
    assert logged == {"parse_failure_rate": 0.5, "object_parse_failure_rate": 0.5, "format_failure_rate": 0.5}


def test_registry_builds_by_name_and_keeps_names():
    funcs = build_rewards(["format", "image", "object"], object_mode="iou@0.5", coords="norm1000")
    assert [f.__name__ for f in funcs] == ["format_reward", "image_reward", "object_reward_iou_at_0.5"]
    with pytest.raises(MirgError, match="unknown reward"):
        build_rewards(["format", "box"])
    with pytest.raises(MirgError, match="unknown object reward mode"):
        build_rewards(["object"], object_mode="iou@2")
