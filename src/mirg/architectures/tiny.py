"""Tiny, randomly initialised vision-language models built offline from a config.

``mirg.architectures.build.build_tiny(family, out, size, seed)`` writes a normal Hugging Face folder (weights, config, generation
config, tokenizer, image processor, chat template) that reloads with ``from_pretrained`` and trains under
TRL on a CPU. Sizes scale width and depth:

==== ============ ========= ============ =============
size text width   layers    vision width vision depth
==== ============ ========= ============ =============
xs   64           2         32           2
s    128          2         64           2
m    256          4         128          4
==== ============ ========= ============ =============

>>> mrope_section(32)
[4, 6, 6]
>>> sum(mrope_section(64)) == 64 // 2
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mirg.errors import MirgError
from mirg.architectures.published import CLIP_MEAN, CLIP_STD, ModelShape, TextShape, VisionShape

#: Images up to this many pixels keep their size in the tiny Qwen processors (224 x 224).
TINY_MAX_PIXELS = 224 * 224
TINY_MIN_PIXELS = 56 * 56
#: The tiny LLaVA vision tower's input square and patch: 112 / 28 = 4 x 4 = 16 tokens per image.
TINY_LLAVA_SIDE = 112
TINY_LLAVA_PATCH = 28


@dataclass(frozen=True)
class TinySize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    #: Qwen3-VL: side of the learned absolute position grid (patch-14 grid of the typical image).
    position_grid: int
    #: Base of the language model's rotary frequencies. Larger leaves more of each head's dimensions nearly
    #: unrotated over a prompt's length, so text can pick image tokens by what they show, wherever they are.
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


SIZES = {
    "xs": TinySize(hidden=64, layers=2, heads=2, kv_heads=1, vision_hidden=32, vision_depth=2, vision_heads=2,
                   position_grid=8),
    "s": TinySize(hidden=128, layers=2, heads=4, kv_heads=2, vision_hidden=64, vision_depth=2, vision_heads=2,
                  position_grid=8),
    "m": TinySize(hidden=256, layers=4, heads=4, kv_heads=2, vision_hidden=128, vision_depth=4, vision_heads=4,
                  position_grid=16),
}
FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl", "llava")


def mrope_section(head_dim: int) -> list[int]:
    """M-RoPE split of ``head_dim / 2`` rotary frequencies into (time, height, width); sums to head_dim/2."""
    half = head_dim // 2
    time = half // 4
    height = (half - time) // 2
    return [time, height, half - time - height]


def tiny_shape(family: str, size: TinySize) -> ModelShape:
    """The tiny preset ``size`` as a :class:`~mirg.architectures.published.ModelShape` of ``family``: what
    ``init-tiny`` builds through the same path as the published shapes. The vocabulary is the tokenizer's."""
    head_dim = size.hidden // size.heads
    text = TextShape(
        hidden_size=size.hidden, intermediate_size=size.hidden * 2, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, num_key_value_heads=size.kv_heads, head_dim=head_dim, vocab_size=None,
        rope_theta=size.rope_theta, mrope_section=tuple(mrope_section(head_dim)),
        mrope_interleaved=family == "qwen3_vl", tie_word_embeddings=True, max_position_embeddings=4096,
    )
    vision = VisionShape(
        depth=size.vision_depth, hidden_size=size.vision_hidden, intermediate_size=size.vision_hidden * 2,
        num_heads=size.vision_heads, out_hidden_size=size.hidden,
        patch_size=TINY_LLAVA_PATCH if family == "llava" else 14,
        window_size=112 if family == "qwen2_5_vl" else None,
        fullatt_block_indexes=(size.vision_depth - 1,) if family == "qwen2_5_vl" else (),
        num_position_embeddings=size.position_grid ** 2 if family == "qwen3_vl" else None,
        deepstack_visual_indexes=(size.vision_depth - 1,) if family == "qwen3_vl" else (),
    )
    return ModelShape(family=family, size="tiny", text=text, vision=vision, min_pixels=TINY_MIN_PIXELS,
                      max_pixels=TINY_MAX_PIXELS, image_mean=CLIP_MEAN, image_std=CLIP_STD)


def _text_config(shape: ModelShape, tokenizer, ids: dict[str, int], rope: dict) -> dict:
    text = shape.text
    config = {
        "vocab_size": text.vocab_size or len(tokenizer),
        "hidden_size": text.hidden_size,
        "intermediate_size": text.intermediate_size,
        "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads,
        "num_key_value_heads": text.num_key_value_heads,
        "max_position_embeddings": text.max_position_embeddings,
        "rope_parameters": rope,
        "bos_token_id": None,
        "eos_token_id": ids["eos"],
        "pad_token_id": ids["pad"],
        "tie_word_embeddings": text.tie_word_embeddings,
    }
    if text.rms_norm_eps is not None:
        config["rms_norm_eps"] = text.rms_norm_eps
    return config


def _mrope(shape: ModelShape) -> dict:
    text = shape.text
    rope = {"rope_type": "default", "rope_theta": text.rope_theta, "mrope_section": list(text.mrope_section)}
    return rope | ({"mrope_interleaved": True} if shape.text.mrope_interleaved else {})


def _qwen_token_ids(tokenizer) -> dict[str, int]:
    names = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
             "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>"}
    return {key: tokenizer.convert_tokens_to_ids(token) for key, token in names.items()}


def qwen2_5_vl_config(shape: ModelShape, tokenizer, ids: dict[str, int]):
    from transformers import Qwen2_5_VLConfig

    v = shape.vision
    vision = {
        "depth": v.depth, "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
        "num_heads": v.num_heads, "out_hidden_size": v.out_hidden_size, "patch_size": v.patch_size,
        "spatial_merge_size": v.spatial_merge_size, "temporal_patch_size": v.temporal_patch_size,
        "window_size": v.window_size, "fullatt_block_indexes": list(v.fullatt_block_indexes),
    }
    if v.tokens_per_second is not None:
        vision["tokens_per_second"] = v.tokens_per_second
    return Qwen2_5_VLConfig(
        text_config=_text_config(shape, tokenizer, ids, _mrope(shape)), vision_config=vision,
        **_qwen_token_ids(tokenizer), tie_word_embeddings=shape.text.tie_word_embeddings,
    )


def qwen2_vl_config(shape: ModelShape, tokenizer, ids: dict[str, int]):
    from transformers import Qwen2VLConfig

    v = shape.vision
    vision = {
        "depth": v.depth, "embed_dim": v.hidden_size, "hidden_size": v.out_hidden_size,
        "mlp_ratio": v.intermediate_size // v.hidden_size, "num_heads": v.num_heads, "patch_size": v.patch_size,
        "spatial_merge_size": v.spatial_merge_size, "temporal_patch_size": v.temporal_patch_size,
    }
    return Qwen2VLConfig(
        text_config=_text_config(shape, tokenizer, ids, _mrope(shape)), vision_config=vision,
        **_qwen_token_ids(tokenizer), tie_word_embeddings=shape.text.tie_word_embeddings,
    )


def qwen3_vl_config(shape: ModelShape, tokenizer, ids: dict[str, int]):
    """Qwen3-VL: its vision tower adds a learned absolute position grid (``num_position_embeddings`` cells)."""
    from transformers import Qwen3VLConfig

    v = shape.vision
    text = _text_config(shape, tokenizer, ids, _mrope(shape)) | {"head_dim": shape.text.head_dim}
    vision = {
        "depth": v.depth, "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
        "num_heads": v.num_heads, "out_hidden_size": v.out_hidden_size, "patch_size": v.patch_size,
        "spatial_merge_size": v.spatial_merge_size, "temporal_patch_size": v.temporal_patch_size,
        "num_position_embeddings": v.num_position_embeddings,
        "deepstack_visual_indexes": list(v.deepstack_visual_indexes),
    }
    return Qwen3VLConfig(text_config=text, vision_config=vision, **_qwen_token_ids(tokenizer),
                         tie_word_embeddings=shape.text.tie_word_embeddings)


def llava_config(shape: ModelShape, tokenizer, ids: dict[str, int]):
    """LLaVA: CLIP vision tower (learned absolute positions) + a small Qwen2 language model."""
    from transformers import LlavaConfig

    side, v = TINY_LLAVA_SIDE, shape.vision
    vision = {
        "model_type": "clip_vision_model", "hidden_size": v.hidden_size,
        "intermediate_size": v.intermediate_size, "num_hidden_layers": v.depth,
        "num_attention_heads": v.num_heads, "image_size": side, "patch_size": v.patch_size,
        "projection_dim": v.out_hidden_size,
    }
    text = _text_config(shape, tokenizer, ids, {"rope_type": "default", "rope_theta": shape.text.rope_theta})
    return LlavaConfig(
        vision_config=vision, text_config={"model_type": "qwen2", **text},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=(side // v.patch_size) ** 2,
        vision_feature_layer=-1, vision_feature_select_strategy="default",
        tie_word_embeddings=shape.text.tie_word_embeddings,
    )


def number_embeddings(values, dim: int, std: float = 0.02):
    """Sinusoidal embeddings of integer values: nearby numbers start out similar.

    Coordinates are single number tokens; with random embeddings the model first has to discover that
    417 lies between 416 and 418. Starting from Fourier features of the value (periods from 4 to 4000,
    each component with the usual init scale) gives the tied input/output embeddings that order at once,
    so a box that is almost right already scores almost right.

    >>> e = number_embeddings([100, 101, 600], 64)
    >>> bool(e[0] @ e[1] > e[0] @ e[2])
    True
    """
    import math

    import torch

    half = dim // 2
    periods = torch.logspace(math.log10(4.0), math.log10(4000.0), half, dtype=torch.float64)
    angles = torch.tensor(values, dtype=torch.float64)[:, None] * (2 * math.pi / periods)[None, :]
    features = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if features.shape[1] < dim:
        features = torch.nn.functional.pad(features, (0, dim - features.shape[1]))
    return (features * std * math.sqrt(2)).float()


def init_number_embeddings(model, tokenizer) -> int:
    """Give every single-token integer 0..1000 a sinusoidal embedding; returns how many were set."""
    import torch

    from mirg.architectures.tokenizer import MAX_NUMBER_TOKEN

    values = list(range(MAX_NUMBER_TOKEN + 1))
    ids = tokenizer.convert_tokens_to_ids([str(v) for v in values])
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        weight[torch.tensor(ids)] = number_embeddings(values, weight.shape[1], std=float(weight.std()))
    return len(ids)


def init_label_embeddings(model, tokenizer) -> int:
    """Start every label token (`` red circle``) at the mean of its colour's and its shape's word embeddings,
    so that it begins as what its two words mean; returns how many were set."""
    import torch

    from mirg.architectures.tokenizer import label_token_texts

    weight = model.get_input_embeddings().weight
    texts = label_token_texts()
    with torch.no_grad():
        for text in texts:
            words = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(" " + w)) for w in text.split()]
            if any(len(ids) != 1 for ids in words):
                raise MirgError(f"the tokenizer does not write each word of {text.strip()!r} as one token")
            weight[tokenizer.convert_tokens_to_ids(text)] = weight[[ids[0] for ids in words]].mean(dim=0)
    return len(texts)


def add_label_tokens_to(source: str | Path, out: str | Path) -> tuple[int, int]:
    """Save the trained model in ``source`` to ``out`` with one token per synthetic label added to its tokenizer:
    the embedding table grows by a row each, started by :func:`init_label_embeddings`; returns the vocabulary
    size before and after. What `pretrain-tiny --label-tokens-last` does before its last stage."""
    from mirg.models.registry import adapter_for
    from mirg.architectures.tokenizer import add_label_tokens

    source, out = Path(source), Path(out)
    if out.exists() and any(out.iterdir()):
        raise MirgError(f"{out} exists and is not empty; choose a new --out folder")
    adapter = adapter_for(source)
    processor, model = adapter.load_processor(source), adapter.load_model(source)
    tokenizer = processor.tokenizer
    before = len(tokenizer)
    if add_label_tokens(tokenizer) == 0:
        raise MirgError(f"{source} already has every label token")
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.get_text_config().vocab_size = len(tokenizer)
    init_label_embeddings(model, tokenizer)
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    return before, len(tokenizer)


def grid_position_embeddings(side: int, dim: int, rms: float = 0.5):
    """2-D sine/cosine features of a ``side`` x ``side`` grid (row-major), ``dim`` wide, of RMS ``rms``.

    >>> grid_position_embeddings(8, 64).shape
    torch.Size([64, 64])
    """
    import math

    import torch

    quarter = dim // 4
    freqs = 1.0 / (side ** (torch.arange(quarter, dtype=torch.float64) / max(quarter, 1)))
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64),
                            indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        angles = coord[:, None] * freqs[None, :] * math.pi
        parts += [torch.sin(angles), torch.cos(angles)]
    features = torch.cat(parts, dim=1)
    if features.shape[1] < dim:
        features = torch.nn.functional.pad(features, (0, dim - features.shape[1]))
    return (features * rms * math.sqrt(2)).float()


def init_vision_positions(model, family: str) -> bool:
    """Start the vision tower's learned absolute positions from 2-D sine/cosine features.

    Randomly initialised (std 0.02), the position signal is ~30x weaker than the patch features and a
    tiny model takes long to find it; a grid it can read from the first step lets it localise early.
    Returns False for families without an absolute position table (Qwen2-VL, Qwen2.5-VL).
    """
    import torch

    if family == "qwen3_vl":
        table = model.model.visual.pos_embed.weight
        side = int(round(table.shape[0] ** 0.5))
        features = grid_position_embeddings(side, table.shape[1])
    elif family == "llava":
        table = model.model.vision_tower.embeddings.position_embedding.weight
        side = int(round((table.shape[0] - 1) ** 0.5))  # row 0 is the class token
        features = torch.cat([torch.zeros(1, table.shape[1]), grid_position_embeddings(side, table.shape[1])])
    else:
        return False
    with torch.no_grad():
        table.copy_(features)
    return True


def build_processor(family: str, tokenizer, shape: ModelShape | None = None):
    """The processor a model of ``family`` is saved with (PIL image processors: no torchvision needed): the
    pixel limits, patch, merge and normalisation of ``shape`` (default: the tiny models')."""
    import transformers

    from mirg.models.processors import IMAGE_ONLY

    if family == "llava":
        image_processor = transformers.CLIPImageProcessorPil(
            size={"height": TINY_LLAVA_SIDE, "width": TINY_LLAVA_SIDE}, do_center_crop=False,
            crop_size={"height": TINY_LLAVA_SIDE, "width": TINY_LLAVA_SIDE},
        )
        return transformers.LlavaProcessor(
            image_processor=image_processor, tokenizer=tokenizer, patch_size=TINY_LLAVA_PATCH,
            vision_feature_select_strategy="default", num_additional_image_tokens=1,
            chat_template=tokenizer.chat_template,
        )
    shape = shape or tiny_shape(family, SIZES["s"])
    v = shape.vision
    image_processor = transformers.Qwen2VLImageProcessorPil(
        min_pixels=shape.min_pixels, max_pixels=shape.max_pixels, patch_size=v.patch_size,
        merge_size=v.spatial_merge_size, temporal_patch_size=v.temporal_patch_size,
        image_mean=list(shape.image_mean), image_std=list(shape.image_std),
    )
    processor_class = {"qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen2_vl": "Qwen2VLProcessor",
                       "qwen3_vl": "Qwen3VLProcessor"}[family]
    return IMAGE_ONLY[processor_class](
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )


CONFIG_BUILDERS = {
    "qwen2_5_vl": qwen2_5_vl_config,
    "qwen2_vl": qwen2_vl_config,
    "qwen3_vl": qwen3_vl_config,
    "llava": llava_config,
}


def size_preset(size: str, rope_theta: float | None = None, lm_layers: int | None = None) -> TinySize:
    """The named size preset, with the language model's rotary base and/or depth overridden where given."""
    if size not in SIZES:
        raise MirgError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if rope_theta is not None and not rope_theta > 0:
        raise MirgError(f"--rope-theta must be positive, got {rope_theta}")
    if lm_layers is not None and not 1 <= lm_layers <= 32:
        raise MirgError(f"--lm-layers must be between 1 and 32, got {lm_layers}")
    preset = SIZES[size]
    if rope_theta is not None:
        preset = replace(preset, rope_theta=float(rope_theta))
    if lm_layers is not None:
        preset = replace(preset, layers=int(lm_layers))
    return preset
