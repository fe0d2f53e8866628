"""The user prompt every stage shares: trajectories (SFT and RL files), generation and evaluation.

One place decides how images are introduced and how the answer format and coordinate space are
asked for, so that training and evaluation prompts can never drift apart.

>>> content = user_content("Where is the red circle?", 2, "pixel")
>>> [part["type"] for part in content]
['text', 'image', 'text', 'image', 'text']
>>> content[0]["text"]
'Image 1:'
"""

from __future__ import annotations

from typing import Any

COORD_HINTS = {
    "pixel": "x1, y1, x2, y2 in pixels of that image",
    "resized": "x1, y1, x2, y2 in pixels of that image as you see it",
    "norm1000": "x1, y1, x2, y2 scaled to 0-1000 of that image's width and height",
    "norm1": "x1, y1, x2, y2 as fractions 0-1 of that image's width and height",
}


def instruction(coords: str) -> str:
    """The answer-format instruction appended to every question."""
    return (
        "Think step by step inside <think></think>, then answer inside <answer></answer> with JSON "
        f'{{"image": k, "bbox_2d": [x1, y1, x2, y2]}}: k is the image number (1-based) and the box is '
        f"{COORD_HINTS[coords]}."
    )


def user_text(question: str, coords: str) -> str:
    return f"{question.strip()}\n{instruction(coords)}"


def user_content(question: str, num_images: int, coords: str) -> list[dict[str, Any]]:
    """The user message content: ``Image k:`` then one image placeholder per image, then the text."""
    parts: list[dict[str, Any]] = []
    for k in range(1, num_images + 1):
        parts.append({"type": "text", "text": f"Image {k}:"})
        parts.append({"type": "image"})
    parts.append({"type": "text", "text": user_text(question, coords)})
    return parts


def user_message(question: str, num_images: int, coords: str) -> list[dict[str, Any]]:
    """The prompt as a one-message conversation (the form TRL takes)."""
    return [{"role": "user", "content": user_content(question, num_images, coords)}]
