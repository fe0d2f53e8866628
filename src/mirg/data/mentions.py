"""Which image a text names: "image 2", "image-2", "image #2", "the 2nd image", "the second image", "picture 3".

One reader serves every converted source (MIG-Bench, MGrounding-630k, VLM-R1) and the blind baseline, so that the
same phrase always names the same image.
"""

from __future__ import annotations

import re

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10}
_IMAGE_MENTION = re.compile(
    r"(\d+)(?:th|st|nd|rd) (?:image|picture)\b|\b(?:image|picture)[- ]?#?(\d+)|\b("
    + "|".join(_ORDINALS) + r") (?:image|picture)\b",
    re.IGNORECASE,
)

def pick_target(n_images: int, answer: str = "", question: str = "", task: str = "") -> tuple[int | None, str]:
    """The 1-based target image of a sample, and, when there is none, why: ``(k, "")`` or ``(None, reason)``.

    The one rule every converted source follows, first match wins: the image the answer names ("It's in
    the third image."; naming two different images is ambiguous and gives none); image 1 for ``region``
    (the source image its region pictures are cut from); the last image the question names ("... locate
    it in the 2th image."); image 1 when only one image is shown.

    >>> pick_target(4, answer="It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>")
    (3, '')
    >>> pick_target(3, question="For the object in the first image, please locate it in the 2nd image.")
    (2, '')
    >>> pick_target(1, question="Find the dog.")
    (1, '')
    >>> pick_target(2, question="Find the dog.")
    (None, 'no image named: 2 images are shown and neither the answer nor the question names one')
    >>> pick_target(2, answer="the object of image 1 is in image 2")
    (None, 'answer names several images: 1, 2')
    >>> pick_target(4, answer="It is in image 5.")
    (None, 'image number out of range: names image 5 of 4')
    """
    named = list(dict.fromkeys(image_mentions(answer)))
    if len(named) > 1:
        return None, f"answer names several images: {', '.join(map(str, named))}"
    if named:
        k = named[0]
    elif task == "region":
        k = 1
    elif mentions := image_mentions(question):
        k = mentions[-1]
    elif n_images == 1:
        k = 1
    else:
        return None, f"no image named: {n_images} images are shown and neither the answer nor the question names one"
    if not 1 <= k <= n_images:
        return None, f"image number out of range: names image {k} of {n_images}"
    return k, ""


def image_mentions(text: str) -> list[int]:
    """The image numbers a text names, in order: ``image 2``, ``image-2``, ``image #2``, ``2nd image``, ``the
    second image`` (first to tenth), and the same with ``picture``.

    >>> image_mentions("Locate in image 1 the object outlined in the second image.")
    [1, 2]
    >>> image_mentions("It's in the third image."), image_mentions("the 2nd image"), image_mentions("Image-3")
    ([3], [2], [3])
    >>> image_mentions("It is in the seventh picture, not picture #4.")
    [7, 4]
    >>> image_mentions("Locate the 1th region picture in the source image. <image>")
    []
    """
    return [int(m.group(1) or m.group(2) or 0) or _ORDINALS[m.group(3).lower()]
            for m in _IMAGE_MENTION.finditer(text)]


def mention_template(text: str) -> str:
    """``text`` with every image it names replaced by ``<image>``: the wording of a question, whichever images.

    >>> mention_template("Locate in image 1 the object outlined in the second image.")
    'Locate in <image> the object outlined in the <image>.'
    """
    return _IMAGE_MENTION.sub("<image>", text)
