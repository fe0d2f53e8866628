"""Qwen-VL families: Qwen2.5-VL (``resized`` boxes), Qwen2-VL and Qwen3-VL (``norm1000`` boxes).

All three share one image processor (``Qwen2VLImageProcessor``; its PIL twin where torchvision is
missing) that resizes each image to multiples of patch x merge within ``[min_pixels, max_pixels]``.
Qwen2.5-VL answers in pixels of that resized image, so its rewards must know the same pixel limits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mirg.geometry import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS
from mirg.models.base import ModelAdapter, has_torchvision, read_chat_template, read_pixel_limits

#: Qwen3-VL's published limits (patch 16 x merge 2; ``size`` in its preprocessor config).
QWEN3_MIN_PIXELS = 65536
QWEN3_MAX_PIXELS = 16777216


@dataclass(frozen=True)
class QwenAdapter(ModelAdapter):
    """A Qwen-VL family; the class names pick the transformers classes for it."""

    processor_class_name: str = "Qwen2_5_VLProcessor"
    model_class_name: str = "Qwen2_5_VLForConditionalGeneration"
    video_processor_class_name: str = "Qwen2VLVideoProcessor"

    def for_folder(self, folder: Path) -> "QwenAdapter":
        """This adapter with the pixel limits the folder's saved image processor uses."""
        low, high = read_pixel_limits(folder)
        return dataclasses.replace(
            self, min_pixels=int(low or self.min_pixels), max_pixels=int(high or self.max_pixels)
        )

    def build_processor(self, folder: Path, min_pixels: int, max_pixels: int):
        import transformers

        from mirg.models.processors import IMAGE_ONLY

        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        fast = has_torchvision()
        image_class = transformers.Qwen2VLImageProcessor if fast else transformers.Qwen2VLImageProcessorPil
        image_processor = image_class.from_pretrained(str(folder), min_pixels=min_pixels, max_pixels=max_pixels)
        parts = {"image_processor": image_processor, "tokenizer": tokenizer,
                 "chat_template": read_chat_template(folder) or tokenizer.chat_template}
        if fast and (folder / "video_preprocessor_config.json").is_file():
            video_class = getattr(transformers, self.video_processor_class_name)
            video_processor = video_class.from_pretrained(str(folder))
            return getattr(transformers, self.processor_class_name)(video_processor=video_processor, **parts)
        return IMAGE_ONLY[self.processor_class_name](**parts)

    def model_class(self):
        import transformers

        return getattr(transformers, self.model_class_name)


QWEN2_5_VL = QwenAdapter(
    family="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    coords="resized",
    min_pixels=QWEN_MIN_PIXELS,
    max_pixels=QWEN_MAX_PIXELS,
    vision_module_prefixes=("model.visual", "visual"),
    description="Qwen2.5-VL: boxes in pixels of the image as its processor resized it",
)

QWEN2_VL = QwenAdapter(
    family="qwen2_vl",
    model_types=("qwen2_vl",),
    coords="norm1000",
    min_pixels=QWEN_MIN_PIXELS,
    max_pixels=QWEN_MAX_PIXELS,
    vision_module_prefixes=("model.visual", "visual"),
    description="Qwen2-VL: boxes as 0-1000 of the image's width and height",
    processor_class_name="Qwen2VLProcessor",
    model_class_name="Qwen2VLForConditionalGeneration",
)

QWEN3_VL = QwenAdapter(
    family="qwen3_vl",
    model_types=("qwen3_vl",),
    coords="norm1000",
    min_pixels=QWEN3_MIN_PIXELS,
    max_pixels=QWEN3_MAX_PIXELS,
    vision_module_prefixes=("model.visual", "visual"),
    description="Qwen3-VL: boxes as 0-1000 of the image's width and height",
    processor_class_name="Qwen3VLProcessor",
    model_class_name="Qwen3VLForConditionalGeneration",
    video_processor_class_name="Qwen3VLVideoProcessor",
)
