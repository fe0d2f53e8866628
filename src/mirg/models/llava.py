"""The LLaVA-style family: a CLIP-like vision tower, a projector and a causal language model.

Its CLIP image processor resizes every image to one fixed square, so the model never sees an image's
original size: boxes are asked for as 0-1000 of the width and height (``norm1000``), which stays
meaningful whatever the original size was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mirg.models.base import ModelAdapter, has_torchvision, image_processor_config, read_chat_template, read_json

#: LLaVA-1.5's input square (336 px).
LLAVA_IMAGE_SIDE = 336


def image_side(folder: Path) -> int | None:
    """The side of the square the saved CLIP processor feeds the vision tower, if the folder says."""
    config = image_processor_config(folder) or {}
    crop = config.get("crop_size") or config.get("size") or {}
    if isinstance(crop, dict):
        return crop.get("height") or crop.get("shortest_edge")
    return crop if isinstance(crop, int) else None


@dataclass(frozen=True)
class LlavaAdapter(ModelAdapter):
    """LLaVA-style models (``LlavaForConditionalGeneration`` + ``LlavaProcessor``)."""

    def for_folder(self, folder: Path) -> "LlavaAdapter":
        """Pixel limits = the fixed input square (only informative: ``norm1000`` needs no limits)."""
        side = image_side(folder)
        return dataclasses.replace(self, min_pixels=side * side, max_pixels=side * side) if side else self

    def build_processor(self, folder: Path, min_pixels: int, max_pixels: int):
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        image_class = transformers.CLIPImageProcessor if has_torchvision() else transformers.CLIPImageProcessorPil
        image_processor = image_class.from_pretrained(str(folder))
        options = _processor_options(folder)
        return transformers.LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            chat_template=read_chat_template(folder) or tokenizer.chat_template,
            **options,
        )

    def model_class(self):
        import transformers

        return transformers.LlavaForConditionalGeneration


def _processor_options(folder: Path) -> dict:
    """``patch_size``, feature strategy and extra tokens: from processor_config.json, else from config.json."""
    saved = read_json(folder / "processor_config.json")
    config = read_json(folder / "config.json")
    vision = config.get("vision_config") or {}
    options = {
        "patch_size": saved.get("patch_size", vision.get("patch_size")),
        "vision_feature_select_strategy": saved.get(
            "vision_feature_select_strategy", config.get("vision_feature_select_strategy", "default")
        ),
        "num_additional_image_tokens": saved.get("num_additional_image_tokens", 1),
    }
    if "image_token" in saved:
        options["image_token"] = saved["image_token"]
    return options


LLAVA = LlavaAdapter(
    family="llava",
    model_types=("llava",),
    coords="norm1000",
    min_pixels=LLAVA_IMAGE_SIDE * LLAVA_IMAGE_SIDE,
    max_pixels=LLAVA_IMAGE_SIDE * LLAVA_IMAGE_SIDE,
    vision_module_prefixes=("model.vision_tower", "vision_tower"),
    description="LLaVA-style (CLIP vision tower): boxes as 0-1000 of the image's width and height",
)
