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

#: The published Qwen2.5-VL and Qwen3-VL tokenizers: their special tokens in their order (ids 151643-151656
#: there), and the ordinary (non-special) tokens they add after them. ``<think>``/``</think>`` are ordinary in
#: Qwen3-VL's too (here they come with :data:`TAG_TOKENS`, for every family).
QWEN_VL_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)
_QWEN_ORDINARY = ("<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                  "<|repo_name|>", "<|file_sep|>")
FAMILY_ORDINARY = {"qwen2_5_vl": _QWEN_ORDINARY, "qwen3_vl": _QWEN_ORDINARY + ("<tool_response>", "</tool_response>")}

#: The published chat templates' rendering of system, user and assistant messages made of text, image and video
#: parts (tool calls are not rendered). Qwen2.5-VL opens every conversation without a system message with its
#: default one; Qwen3-VL adds none. ``add_vision_id`` numbers the pictures ("Picture 1: ") as both do.
_VISION_PARTS = (
    "{%- if part is string %}{{- part }}"
    "{%- elif part.type == 'image' or 'image' in part or 'image_url' in part %}"
    "{%- set images.count = images.count + 1 %}"
    "{%- if add_vision_id %}{{- 'Picture ' ~ images.count ~ ': ' }}{%- endif %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part.type == 'video' or 'video' in part %}"
    "{%- set videos.count = videos.count + 1 %}"
    "{%- if add_vision_id %}{{- 'Video ' ~ videos.count ~ ': ' }}{%- endif %}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part %}{{- part.text }}{%- endif %}"
)
_CONTENT = (
    "{%- if message.content is string %}{{- message.content }}"
    "{%- else %}{%- for part in message.content %}__PARTS__{%- endfor %}{%- endif %}"
)
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{%- set images = namespace(count=0) %}{%- set videos = namespace(count=0) %}"
    "{%- for message in messages %}"
    "{%- if loop.first and message.role != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}" + _CONTENT.replace("__PARTS__", _VISION_PARTS) +
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_TEXT_PARTS = "{%- if part is string %}{{- part }}{%- elif 'text' in part %}{{- part.text }}{%- endif %}"
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- set images = namespace(count=0) %}{%- set videos = namespace(count=0) %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' and loop.first %}"
    "{{- '<|im_start|>system\\n' }}" + _CONTENT.replace("__PARTS__", _TEXT_PARTS) + "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'user' %}"
    "{{- '<|im_start|>user\\n' }}" + _CONTENT.replace("__PARTS__", _VISION_PARTS) + "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}" + _CONTENT.replace("__PARTS__", _TEXT_PARTS) + "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
FAMILY_CHAT_TEMPLATES = {"qwen2_5_vl": QWEN2_5_VL_CHAT_TEMPLATE, "qwen3_vl": QWEN3_VL_CHAT_TEMPLATE}

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


def build_family_tokenizer(family: str, vocab_size: int = 2000):
    """The tokenizer ``mirg model init`` saves with a published shape: the local byte-level vocabulary with
    single-token numbers and ordinary answer tags (as :func:`build_tokenizer`), plus the family's special and
    added tokens with the published special/ordinary flags, and the family's chat template."""
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    if family not in FAMILY_CHAT_TEMPLATES:
        raise ValueError(f"no published tokenizer layout for {family!r}")
    backend = train_tokenizer(QWEN_VL_SPECIALS, vocab_size)
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in FAMILY_ORDINARY[family]])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False, model_max_length=32768, padding_side="left",
    )
    tokenizer.chat_template = FAMILY_CHAT_TEMPLATES[family]
    return tokenizer


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
