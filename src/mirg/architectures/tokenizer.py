"""A tokenizer trained locally (no hub) for the tiny models, and the chat template they share.

The vocabulary is a byte-level BPE learnt from the project's own prompt and reasoning text, so any
string still encodes (bytes are the fallback). Every integer 0-1000 is ONE ordinary token, so a box
coordinate costs one token in every coordinate space. ``<think>``, ``</think>``, ``<answer>``,
``</answer>`` are ordinary added tokens (never special): TRL decodes completions with
``skip_special_tokens=True`` before rewards see them, and special tags would vanish. With
``label_tokens``, every colour-and-shape label of the synthetic images, written after a space
(`` red circle``), is one more ordinary token: a label is then one decision for the model to write and one
token to compare with another (see :func:`label_token_texts`).

>>> corpus = corpus_lines()
>>> any("Think step by step" in line for line in corpus)
True
>>> CHAT_TEMPLATE.count("add_generation_prompt")
1
"""

from __future__ import annotations

from typing import Iterator

from mirg.prompts import COORD_HINTS, instruction

#: Ordinary (non-special) added tokens: the answer-format tags.
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
#: Largest integer that is a single token (0..MAX_NUMBER_TOKEN).
MAX_NUMBER_TOKEN = 1000

#: Special tokens per tokenizer style: (all specials, eos, pad, image placeholder).
QWEN_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
)
LLAVA_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>")

#: ChatML with image placeholders. The prompt rendered with ``add_generation_prompt`` is a prefix of
#: prompt + completion, which TRL's prompt-completion handling relies on. Each image part becomes the
#: family's placeholder (Qwen: vision start, image pad, vision end; LLaVA: ``<image>``), which the
#: processor expands to one token per visual feature.
_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '__IMAGE__' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHAT_TEMPLATE = _TEMPLATE.replace("__IMAGE__", "<|vision_start|><|image_pad|><|vision_end|>")
LLAVA_CHAT_TEMPLATE = _TEMPLATE.replace("__IMAGE__", "<image>")

COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray",
           "cyan", "magenta", "beige", "light blue")
SHAPES = ("circle", "square", "triangle", "rectangle", "star", "ellipse", "diamond", "cross", "hexagon")
SIZES = ("small", "medium", "large")
PHRASES = (
    "Image {k} shows a {z} {c} {s} at [{a}, {b}, {x}, {y}].",
    "In image {k} I see a {z} {c} {s} and a {z} {s} on a {c} background.",
    "Image {k}: a {z} {c} {s} on a {c} background; the {c} {s} is outlined in black.",
    "I go through the images one by one. Let me look at each image first.",
    "First, what each image shows. In image {k} I see a close-up of a {z} {c} {s}.",
    "What I need to find: a {c} {s} (color {c}, shape {s}, size {z}).",
    "I am looking for a {c} {s}. The question refers to the {c} {s} in image {k}.",
    "Reference: the {c} {s} of image {k}. It appears in image {k} but not in the others.",
    "The {c} {s} is the only object that appears in every image.",
    "The {s} is {c} in image 1 but {c} in image {k}. Image {k} is the only full scene.",
    "So the target image is image {k}. Therefore the answer is in image {k}. That points to image {k}.",
    "Locating it in image {k}: the {c} {s} at [{a}, {b}, {x}, {y}].",
    "In image {k}, the {c} {s} is at [{a}, {b}, {x}, {y}], left of the {s} and above the {s}.",
    "Spot the difference between the two images and locate it in the second image.",
    "These images share one object in common. Recognize and locate this object in image {k}.",
    "Find the corresponding object in the first image: the one with the same shape, whatever its colour or size.",
    "Which image shows the {c} {s}? Find it on the left, right, top, bottom or in the middle.",
    "The object moved between the views; track it from image 1 to image {k} and group it with its region.",
)
def corpus_lines() -> list[str]:
    """Text the BPE vocabulary is learnt from: prompts, instructions, colours, shapes, reasoning phrases."""
    lines = [instruction(space) for space in COORD_HINTS]
    lines += [f"Image {k}:" for k in range(1, 11)]
    lines += list(_phrases())
    lines += [f"a {z} {c} {s}" for z in SIZES for c in COLOURS for s in SHAPES]
    lines.append('{"image": 2, "bbox_2d": [10, 20, 30, 40], "label": "red circle"}')
    return lines


def _phrases() -> Iterator[str]:
    for i, template in enumerate(PHRASES):
        for j, colour in enumerate(COLOURS):
            shape, size = SHAPES[(i + j) % len(SHAPES)], SIZES[(i + 2 * j) % len(SIZES)]
            yield template.format(k=1 + (i + j) % 4, c=colour, s=shape, z=size, a=i, b=j, x=i + 50, y=j + 60)


def train_tokenizer(specials: tuple[str, ...], vocab_size: int = 2000):
    """A ``tokenizers.Tokenizer``: byte-level BPE on :func:`corpus_lines`, numbers 0-1000 and tags added."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_lines(), trainer=trainer)
    ordinary = [str(n) for n in range(MAX_NUMBER_TOKEN + 1)] + list(TAG_TOKENS)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in ordinary])
    return tokenizer


def label_token_texts() -> list[str]:
    """The synthetic images' labels as written after a space, one token each under ``label_tokens``.

    >>> label_token_texts()[:2], len(label_token_texts())
    ([' red circle', ' red square'], 42)
    """
    from mirg.data.synth_scene import KINDS

    return [f" {colour} {shape}" for colour, shape in KINDS]


def add_label_tokens(tokenizer) -> int:
    """Add :func:`label_token_texts` to ``tokenizer`` as ordinary tokens; returns how many were new."""
    from tokenizers import AddedToken

    return tokenizer.add_tokens([AddedToken(text, special=False, normalized=False) for text in label_token_texts()])


def build_tokenizer(style: str = "qwen", vocab_size: int = 2000, label_tokens: bool = False):
    """A transformers fast tokenizer for ``style`` (``qwen`` or ``llava``) with its chat template; with
    ``label_tokens``, one ordinary token per synthetic label (:func:`label_token_texts`)."""
    from transformers import PreTrainedTokenizerFast

    specials = QWEN_SPECIALS if style == "qwen" else LLAVA_SPECIALS
    extra = {"image_token": "<image>"} if style == "llava" else {}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(specials, vocab_size),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
        padding_side="left",  # decoder-only generation (and TRL's GRPO) pads prompts on the left
        extra_special_tokens=extra,
    )
    tokenizer.chat_template = CHAT_TEMPLATE if style == "qwen" else LLAVA_CHAT_TEMPLATE
    if label_tokens:
        add_label_tokens(tokenizer)
    return tokenizer
