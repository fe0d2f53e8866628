"""The answer format: strict check, lenient parse, rendering, and linear time on adversarial input."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirg.answer import AnswerError, check_strict, is_strict, parse_answer, render_answer, think_block, try_parse_answer

GOOD = '<think>the cat sits left</think><answer>{"image": 2, "bbox_2d": [10, 20.5, 30, 40]}</answer>'


def test_good_answer_passes_both():
    answer = check_strict(GOOD, 3)
    assert (answer.image, answer.bbox) == (2, (10.0, 20.5, 30.0, 40.0))
    assert parse_answer(GOOD, 3) == answer


@pytest.mark.parametrize(
    "text",
    [
        "  \n" + GOOD + "\n ",
        '<think>a</think>\n \t<answer> {"image": 1, "bbox_2d": [0, 0, 1, 1], "label": "cat"} </answer>',
    ],
)
def test_strict_accepts(text):
    assert is_strict(text, 2)


@pytest.mark.parametrize(
    "text,reason",
    [
        ('<answer>{"image": 1, "bbox_2d": [0, 0, 1, 1]}</answer>', "<think>"),
        ('<think>a</think>x<answer>{"image": 1, "bbox_2d": [0, 0, 1, 1]}</answer>', "whitespace"),
        ('<think>a<think></think><answer>{"image": 1, "bbox_2d": [0, 0, 1, 1]}</answer>', "exactly once"),
        ('<think>a</think><answer>{"image": 1, "bbox_2d": [0, 0, 1, 1]}</answer> trailing', "end with"),
        ('<think>see <answer></think><answer>{"image": 1, "bbox_2d": [0, 0, 1, 1]}</answer>', "exactly once"),
        ('<answer>{"image": 1, "bbox_2d": [0, 0, 1, 1]}</answer><think>a</think>', "start with"),
        ('<think>a</think><answer>{"image": true, "bbox_2d": [0, 0, 1, 1]}</answer>', "integer"),
        ('<think>a</think><answer>{"image": 1.0, "bbox_2d": [0, 0, 1, 1]}</answer>', "integer"),
        ('<think>a</think><answer>{"image": "1", "bbox_2d": [0, 0, 1, 1]}</answer>', "integer"),
        ('<think>a</think><answer>{"image": 3, "bbox_2d": [0, 0, 1, 1]}</answer>', "outside"),
        ('<think>a</think><answer>{"image": 0, "bbox_2d": [0, 0, 1, 1]}</answer>', "outside"),
        ('<think>a</think><answer>{"image": 1, "bbox_2d": [1, 0, 0, 1]}</answer>', "x1 < x2"),
        ('<think>a</think><answer>{"image": 1, "bbox_2d": [0, 0, 1]}</answer>', "4 numbers"),
        ('<think>a</think><answer>{"image": 1, "bbox_2d": [0, 0, 1, true]}</answer>', "finite"),
        ('<think>a</think><answer>{"image": 1, "bbox_2d": [0, 0, 1, NaN]}</answer>', "JSON"),
        ('<think>a</think><answer>{"image": 1, "bbox_2d": [0, 0, 1, Infinity]}</answer>', "JSON"),
        ('<think>a</think><answer>{"image": 1, "bbox_2d": [0, 0, 1, 1e999]}</answer>', "finite"),
        ('<think>a</think><answer>[{"image": 1, "bbox_2d": [0, 0, 1, 1]}]</answer>', "object"),
        ('<think>a</think><answer>```json\n{"image": 1, "bbox_2d": [0, 0, 1, 1]}\n```</answer>', "JSON"),
        ('<THINK>a</THINK><answer>{"image": 1, "bbox_2d": [0, 0, 1, 1]}</answer>', "<think>"),
    ],
)
def test_strict_rejects_with_reason(text, reason):
    with pytest.raises(AnswerError, match=reason):
        check_strict(text, 2)


@pytest.mark.parametrize(
    "text,expected",
    [
        ('junk <answer>{"image": 2, "bbox_2d": [1, 2, 3, 4]}</answer> more', (2, (1.0, 2.0, 3.0, 4.0))),
        ('<answer>```json\n[{"image": 1, "bbox_2d": [5, 5, 1, 1]}]\n```</answer>', (1, (5.0, 5.0, 1.0, 1.0))),
        ('<answer>```\n{"image": 1, "bbox_2d": [0.1, 0.2, 0.3, 0.4]}```</answer>', (1, (0.1, 0.2, 0.3, 0.4))),
        ('<answer>{"image": 1, "bbox_2d": [1, 1, 2, 2]}</answer><answer>{"image": 2, "bbox_2d": [0, 0, 1, 1]}</answer>',
         (1, (1.0, 1.0, 2.0, 2.0))),
        ('<think>x</think><answer>{"image": 2, "bbox_2d": [3, 3, 3, 3]}</answer>', (2, (3.0, 3.0, 3.0, 3.0))),
    ],
)
def test_lenient_parse(text, expected):
    answer = parse_answer(text, 2)
    assert (answer.image, answer.bbox) == expected


@pytest.mark.parametrize(
    "text",
    [
        "no tags at all",
        '<answer>{"image": 1, "bbox_2d": [1, 2, 3, 4]}',  # unclosed
        '<answer>{"image": 1, "bbox_2d": [1, 2, 3]}</answer>',
        '<answer>{"image": 3, "bbox_2d": [1, 2, 3, 4]}</answer>',  # out of range for 2 images
        '<answer>{"image": false, "bbox_2d": [1, 2, 3, 4]}</answer>',
        '<answer>{"image": 1, "bbox_2d": [1, 2, 3, NaN]}</answer>',
        '<answer>{"image": 1, "bbox_2d": [1, 2, 3, "4"]}</answer>',
        '<answer>[{"image": 1, "bbox_2d": [1, 2, 3, 4]}, {"image": 1, "bbox_2d": [1, 2, 3, 4]}]</answer>',
        '<Answer>{"image": 1, "bbox_2d": [1, 2, 3, 4]}</Answer>',
        "<answer>" + "[" * 100000 + "</answer>",
    ],
)
def test_lenient_parse_failures(text):
    assert try_parse_answer(text, 2) is None


def test_render_round_trip_and_integers():
    text = render_answer(3, [1.0, 2.5, 3, 4], think="image 3 has it", label="cat")
    assert '"bbox_2d": [1, 2.5, 3, 4]' in text
    answer = check_strict(text, 3)
    assert answer.image == 3 and answer.extra == {"label": "cat"}
    assert think_block(text) == "image 3 has it"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_anything_but_answer_error(text):
    for candidate in (text, f"<answer>{text}</answer>", f"<think>{text}</think><answer>{text}</answer>"):
        try:
            parse_answer(candidate, 4)
        except AnswerError:
            pass
        assert isinstance(is_strict(candidate, 4), bool)


@pytest.mark.parametrize(
    "text",
    [
        "<answer>" * 120_000,
        "<think>" + "<" * 1_000_000 + "</think>",
        "<answer>{" + '"a":' * 200_000 + "1}</answer>",
        "<answer>" + "[" * 1_000_000 + "</answer>",
        '<think></think><answer>{"image": 1, "bbox_2d": [' + "1" * 1_000_000 + ", 1, 2, 2]}</answer>",
    ],
)
def test_megabyte_adversarial_inputs_finish_quickly(text):
    # A generous bound: the benchmark (benchmarks/parse_speed.py) measures the real time.
    start = time.perf_counter()
    try_parse_answer(text, 4)
    is_strict(text, 4)
    assert time.perf_counter() - start < 2.0
