"""The shapes of vision-language models as data: the published Qwen2.5-VL and Qwen3-VL sizes, and how a
shape is cut in depth or narrowed in width so that a CPU can step it.

A :class:`ModelShape` holds every number a model folder is built from: the language model, the vision tower
and the image processor's pixel limits. ``mirg model init`` builds one of :data:`PUBLISHED` (random weights,
the public ``config.json`` widths); ``mirg model init-tiny`` builds the tiny presets through the same path.

Cutting the depth (``--layers`` / ``--vision-depth``) keeps every width and maps the vision tower's special
blocks onto the shorter tower:

* Qwen2.5-VL's full-attention blocks (``fullatt_block_indexes``; every other block attends within windows)
  keep their distance from the top of the tower. The tower then always ends with a full-attention block and
  the blocks below it stay windowed, as published; at the published depth the published list comes back.

>>> full_attention_blocks((7, 15, 23, 31), published_depth=32, depth=2)
[1]
>>> full_attention_blocks((7, 15, 23, 31), published_depth=32, depth=16)
[7, 15]
>>> full_attention_blocks((7, 15, 23, 31), published_depth=32, depth=32)
[7, 15, 23, 31]

* Qwen3-VL's deepstack blocks (``deepstack_visual_indexes``: blocks whose features are also added to the first
  language-model layers, one merger each) scale with the depth, ``floor(i * depth / published_depth)``,
  duplicates dropped: they stay spread over the tower, and a cut tower of at least as many blocks as the list
  keeps them all (two blocks keep two of the three).

>>> deepstack_blocks((5, 11, 17), published_depth=24, depth=2)
[0, 1]
>>> deepstack_blocks((8, 16, 24), published_depth=27, depth=9)
[2, 5, 8]
>>> deepstack_blocks((5, 11, 17), published_depth=24, depth=24)
[5, 11, 17]

Narrowing (``--width-scale S``, for fast tests) multiplies the attention heads (at least one) and the hidden and
intermediate sizes by ``S`` and keeps each head's width, hence the published rotary sections:

>>> small = scale_width(published_shape("qwen2_5_vl", "3b"), 1 / 16)
>>> small.text.hidden_size, small.text.num_attention_heads, small.text.head_dim, small.text.mrope_section
(128, 1, 128, (16, 24, 24))
>>> small.vision.hidden_size, small.vision.num_heads, small.vision.out_hidden_size, small.text.vocab_size
(80, 1, 128, 151936)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mirg.errors import MirgError
from mirg.geometry import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS
from mirg.models.qwen import QWEN3_MAX_PIXELS, QWEN3_MIN_PIXELS

#: The image processors' normalisation: Qwen2.5-VL uses CLIP's mean and std, Qwen3-VL 0.5 / 0.5.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TextShape:
    """The language model: widths, depth, vocabulary and rotary embedding."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    #: Width of one attention head; Qwen2.5-VL's config leaves it implicit (hidden_size / heads).
    head_dim: int
    #: Rows of the embedding matrix; None: as many as the tokenizer has tokens (the tiny models).
    vocab_size: int | None
    rope_theta: float
    #: M-RoPE's split of head_dim / 2 rotary frequencies into (time, height, width).
    mrope_section: tuple[int, int, int]
    #: Qwen3-VL interleaves the three sections over the frequencies instead of giving each a block.
    mrope_interleaved: bool = False
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 4096
    #: None: the transformers default of the family.
    rms_norm_eps: float | None = None


@dataclass(frozen=True)
class VisionShape:
    """The vision tower and its merger into the language model."""

    depth: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    #: Width of the merged image tokens handed to the language model (its hidden size).
    out_hidden_size: int
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    #: Qwen2.5-VL: side in pixels of the attention windows, and the blocks that attend over the whole image.
    window_size: int | None = None
    fullatt_block_indexes: tuple[int, ...] = ()
    tokens_per_second: int | None = None
    #: Qwen3-VL: cells of the learned absolute position grid, and the blocks that feed the deepstack mergers.
    num_position_embeddings: int | None = None
    deepstack_visual_indexes: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelShape:
    """Everything a randomly initialised model folder is built from."""

    family: str
    size: str
    text: TextShape
    vision: VisionShape
    #: The image processor's limits (the published ``preprocessor_config.json``) and normalisation.
    min_pixels: int
    max_pixels: int
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    #: Where the numbers come from.
    source: str = ""


def _qwen2_5_vl(size: str, text: dict, out_hidden_size: int, repo: str) -> ModelShape:
    """Qwen2.5-VL: both sizes share the vision tower (32 blocks of 1280, full attention every 8th) and the
    processor (patch 14, merge 2, 3136..12845056 pixels, CLIP normalisation)."""
    return ModelShape(
        family="qwen2_5_vl", size=size,
        text=TextShape(**text, rope_theta=1000000.0, mrope_section=(16, 24, 24), max_position_embeddings=128000,
                       rms_norm_eps=1e-06),
        vision=VisionShape(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                           out_hidden_size=out_hidden_size, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=112, fullatt_block_indexes=(7, 15, 23, 31), tokens_per_second=2),
        min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS, image_mean=CLIP_MEAN, image_std=CLIP_STD,
        source=f"https://huggingface.co/{repo}/blob/main/config.json",
    )


def _qwen3_vl(size: str, text: dict, vision: dict, repo: str) -> ModelShape:
    """Qwen3-VL: head width 128, interleaved M-RoPE (24, 20, 20) at base 5e6; processor patch 16, merge 2,
    65536..16777216 pixels, normalisation 0.5 / 0.5."""
    return ModelShape(
        family="qwen3_vl", size=size,
        text=TextShape(**text, head_dim=128, vocab_size=151936, rope_theta=5000000.0, mrope_section=(24, 20, 20),
                       mrope_interleaved=True, max_position_embeddings=262144, rms_norm_eps=1e-06),
        vision=VisionShape(**vision, num_heads=16, out_hidden_size=text["hidden_size"], patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304),
        min_pixels=QWEN3_MIN_PIXELS, max_pixels=QWEN3_MAX_PIXELS, image_mean=HALF, image_std=HALF,
        source=f"https://huggingface.co/{repo}/blob/main/config.json",
    )


#: The published configurations, one entry per (family, size), from each model's public ``config.json`` (and
#: ``preprocessor_config.json`` for the pixel limits); the repository is named in each entry's ``source``.
PUBLISHED: dict[tuple[str, str], ModelShape] = {
    # Qwen/Qwen2.5-VL-3B-Instruct config.json
    ("qwen2_5_vl", "3b"): _qwen2_5_vl("3b", dict(
        hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
        num_key_value_heads=2, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
    ), out_hidden_size=2048, repo="Qwen/Qwen2.5-VL-3B-Instruct"),
    # Qwen/Qwen2.5-VL-7B-Instruct config.json
    ("qwen2_5_vl", "7b"): _qwen2_5_vl("7b", dict(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, head_dim=128, vocab_size=152064, tie_word_embeddings=False,
    ), out_hidden_size=3584, repo="Qwen/Qwen2.5-VL-7B-Instruct"),
    # Qwen/Qwen3-VL-2B-Instruct config.json
    ("qwen3_vl", "2b"): _qwen3_vl("2b", dict(
        hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
        num_key_value_heads=8, tie_word_embeddings=True,
    ), dict(depth=24, hidden_size=1024, intermediate_size=4096, deepstack_visual_indexes=(5, 11, 17)),
        repo="Qwen/Qwen3-VL-2B-Instruct"),
    # Qwen/Qwen3-VL-4B-Instruct config.json
    ("qwen3_vl", "4b"): _qwen3_vl("4b", dict(
        hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
        num_key_value_heads=8, tie_word_embeddings=True,
    ), dict(depth=24, hidden_size=1024, intermediate_size=4096, deepstack_visual_indexes=(5, 11, 17)),
        repo="Qwen/Qwen3-VL-4B-Instruct"),
    # Qwen/Qwen3-VL-8B-Instruct config.json
    ("qwen3_vl", "8b"): _qwen3_vl("8b", dict(
        hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
        num_key_value_heads=8, tie_word_embeddings=False,
    ), dict(depth=27, hidden_size=1152, intermediate_size=4304, deepstack_visual_indexes=(8, 16, 24)),
        repo="Qwen/Qwen3-VL-8B-Instruct"),
}


def published_families() -> list[str]:
    return sorted({family for family, _ in PUBLISHED})


def published_sizes(family: str) -> list[str]:
    """The sizes published for ``family``, smallest first.

    >>> published_sizes("qwen3_vl")
    ['2b', '4b', '8b']
    """
    return sorted((size for fam, size in PUBLISHED if fam == family), key=lambda s: float(s.rstrip("b")))


def published_shape(family: str, size: str) -> ModelShape:
    """The published shape of ``family`` at ``size``; one line naming the choices for an unknown pair."""
    if family not in published_families():
        raise MirgError(f"no published configuration of family {family!r}; choose one of "
                        f"{', '.join(published_families())}")
    if (family, size) not in PUBLISHED:
        raise MirgError(f"{family} has no published size {size!r}; choose one of {', '.join(published_sizes(family))}")
    return PUBLISHED[(family, size)]


def full_attention_blocks(published: tuple[int, ...], published_depth: int, depth: int) -> list[int]:
    """Qwen2.5-VL's full-attention blocks for a tower cut to ``depth``: each keeps its distance from the top."""
    return sorted({depth - (published_depth - i) for i in published if depth - (published_depth - i) >= 0})


def deepstack_blocks(published: tuple[int, ...], published_depth: int, depth: int) -> list[int]:
    """Qwen3-VL's deepstack blocks for a tower cut to ``depth``: each index scaled with the depth."""
    return sorted({i * depth // published_depth for i in published})


def cut_depth(shape: ModelShape, layers: int | None = None, vision_depth: int | None = None) -> ModelShape:
    """``shape`` with ``layers`` language-model layers and ``vision_depth`` vision blocks (None: as is), each
    between 1 and the shape's own depth; the vision tower's special blocks mapped as the module says."""
    text, vision = shape.text, shape.vision
    for flag, value, most in (("--layers", layers, text.num_hidden_layers),
                              ("--vision-depth", vision_depth, vision.depth)):
        if value is not None and not 1 <= value <= most:
            raise MirgError(f"{flag} must be between 1 and {most} (the {shape.family} {shape.size} depth), got {value}")
    if layers is not None:
        text = replace(text, num_hidden_layers=int(layers))
    if vision_depth is not None:
        published_depth = vision.depth
        vision = replace(
            vision, depth=int(vision_depth),
            fullatt_block_indexes=tuple(full_attention_blocks(vision.fullatt_block_indexes, published_depth,
                                                              vision_depth)),
            deepstack_visual_indexes=tuple(deepstack_blocks(vision.deepstack_visual_indexes, published_depth,
                                                            vision_depth)),
        )
    return replace(shape, text=text, vision=vision)


def _scaled(value: int, scale: float, least: int = 1) -> int:
    return max(least, round(value * scale))


def _kv_heads(heads: int, wanted: int) -> int:
    """The largest divisor of ``heads`` that is at most ``wanted`` (grouped attention needs one)."""
    return max(d for d in range(1, heads + 1) if heads % d == 0 and d <= max(1, wanted))


def scale_width(shape: ModelShape, scale: float) -> ModelShape:
    """``shape`` with every width times ``scale`` (0 < scale <= 1): heads (at least one, key-value heads a divisor
    of them), hidden and intermediate sizes. Head widths, rotary sections, vocabulary, depth, patch, merge, windows
    and the position grid stay: shape bugs of the published model show at a fraction of its cost."""
    if not 0 < scale <= 1:
        raise MirgError(f"--width-scale must be above 0 and at most 1, got {scale}")
    if scale == 1:
        return shape
    text, vision = shape.text, shape.vision
    heads = _scaled(text.num_attention_heads, scale)
    implicit_head_dim = text.hidden_size == text.num_attention_heads * text.head_dim
    hidden = heads * text.head_dim if implicit_head_dim else _scaled(text.hidden_size, scale, least=16)
    text = replace(text, hidden_size=hidden, num_attention_heads=heads,
                   num_key_value_heads=_kv_heads(heads, round(text.num_key_value_heads * scale)),
                   intermediate_size=_scaled(text.intermediate_size, scale))
    vision_heads = _scaled(vision.num_heads, scale)
    vision_head_dim = vision.hidden_size // vision.num_heads
    vision = replace(vision, num_heads=vision_heads, hidden_size=vision_heads * vision_head_dim,
                     intermediate_size=_scaled(vision.intermediate_size, scale), out_hidden_size=hidden)
    return replace(shape, text=text, vision=vision)
