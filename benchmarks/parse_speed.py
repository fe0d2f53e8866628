"""How long the answer parser takes on 1 MB adversarial responses (target: < 50 ms each).

Usage: python benchmarks/parse_speed.py
Prints one JSON line per input: the worst of several runs of the lenient parse + the strict check.
"""

from __future__ import annotations

import json
import time

from mirg.answer import is_strict, try_parse_answer

MB = 1_000_000
INPUTS = {
    "repeated <answer>": "<answer>" * (MB // 8),
    "unclosed <think> of '<'": "<think>" + "<" * MB,
    "deep JSON nesting": "<answer>" + "[" * MB + "</answer>",
    "1 MB of keys": "<answer>{" + '"a":' * (MB // 4) + "1}</answer>",
    "1 MB number": '<think></think><answer>{"image": 1, "bbox_2d": [' + "1" * MB + ", 1, 2, 2]}</answer>",
    "valid answer after 1 MB think": "<think>" + "x" * MB + '</think><answer>{"image": 1, "bbox_2d": [1, 2, 3, 4]}</answer>',
    "near-miss tags": "<answe<think</thin</answe" * (MB // 24),
}


def worst_ms(text: str, repeats: int = 5) -> float:
    worst = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        try_parse_answer(text, 4)
        is_strict(text, 4)
        worst = max(worst, time.perf_counter() - start)
    return worst * 1000


def main() -> None:
    for name, text in INPUTS.items():
        print(json.dumps({"input": name, "chars": len(text), "worst_ms": round(worst_ms(text), 2)}))


if __name__ == "__main__":
    main()
