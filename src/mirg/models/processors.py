"""Qwen-VL processors for images only: what works where torchvision is missing.

transformers checks the class of every sub-processor when a processor is built, and without torchvision
the video processor's base class does not exist, so ``Qwen2_5_VLProcessor(..., video_processor=None)``
fails (and ``AutoProcessor`` quietly returns a bare tokenizer instead). These thin subclasses take no
video processor; everything else is the upstream class. They save under the upstream class name, so a
folder written here loads with ``AutoProcessor`` wherever torchvision is installed.

This module imports transformers; import it only where a processor is built.
"""

from __future__ import annotations

from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen3VLProcessor


class _ImageOnly:
    """Mixin: build the upstream processor with no video processor; save it under the upstream name."""

    upstream: type

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    def to_dict(self):
        output = super().to_dict()
        output["processor_class"] = self.upstream.__name__
        return output


class Qwen2_5_VLImageProcessorOnly(_ImageOnly, Qwen2_5_VLProcessor):
    upstream = Qwen2_5_VLProcessor


class Qwen2VLImageProcessorOnly(_ImageOnly, Qwen2VLProcessor):
    upstream = Qwen2VLProcessor


class Qwen3VLImageProcessorOnly(_ImageOnly, Qwen3VLProcessor):
    upstream = Qwen3VLProcessor


IMAGE_ONLY = {
    "Qwen2_5_VLProcessor": Qwen2_5_VLImageProcessorOnly,
    "Qwen2VLProcessor": Qwen2VLImageProcessorOnly,
    "Qwen3VLProcessor": Qwen3VLImageProcessorOnly,
}
