"""Randomly initialised model folders from a :class:`~mirg.architectures.published.ModelShape`, and their parameter counts.

One path serves ``mirg model init-tiny`` (the tiny presets, a tokenizer with number tokens, tiny-specific starting
embeddings) and ``mirg model init`` (the published shapes of Qwen2.5-VL and Qwen3-VL, cut in depth where asked):
config from the shape, weights from a seed, the family's processor with the shape's pixel limits, one folder that
reloads with ``from_pretrained``.

A published model cut in depth records what it was cut from in :data:`INIT_FILE` beside ``config.json``, so that
``mirg model info`` can say how many parameters the full depth holds.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any, Callable

from mirg.errors import MirgError
from mirg.architectures.published import ModelShape, cut_depth, published_shape, scale_width

#: What ``mirg model init`` records beside config.json: family, size, depth cut, full depth, source.
INIT_FILE = "init_model.json"
DTYPES = ("float32", "bfloat16")


def check_new_folder(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        raise MirgError(f"{folder} exists and is not empty; choose a new --out folder")


def model_config(shape: ModelShape, tokenizer):
    """The transformers config of ``shape`` with the token ids of ``tokenizer``."""
    from mirg.architectures.tiny import CONFIG_BUILDERS

    ids = {"eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
    return CONFIG_BUILDERS[shape.family](shape, tokenizer, ids)


def write_model_folder(shape: ModelShape, tokenizer, folder: Path, seed: int = 0,
                       prepare: Callable[[Any], None] | None = None, config_only: bool = False,
                       dtype: str = "float32") -> dict[str, int]:
    """Build ``shape`` with weights drawn from ``seed`` (then ``prepare(model)``) and save it with its generation
    config and processor into ``folder``; returns its parameter counts. ``config_only`` saves everything but the
    weights (what the widths and counts of a large model need, in a second)."""
    import torch
    from transformers import GenerationConfig

    from mirg.models.registry import adapter_for
    from mirg.architectures.tiny import build_processor

    config = model_config(shape, tokenizer)
    model_class = adapter_for(shape.family).model_class()
    generation = GenerationConfig(eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
                                  pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    folder.mkdir(parents=True, exist_ok=True)
    if config_only:
        counts = count_parameters(config, shape.family)
        config.save_pretrained(str(folder))
        generation.save_pretrained(str(folder))
    else:
        torch.manual_seed(seed)
        # _from_config builds in the dtype asked for, so a bf16 model never exists in fp32 first
        build = model_class if dtype == "float32" else partial(model_class._from_config, dtype=getattr(torch, dtype))
        model = build(config)
        if prepare is not None:
            prepare(model)
        counts = model_parameters(model, shape.family)
        model.generation_config = generation
        model.save_pretrained(str(folder))
    build_processor(shape.family, tokenizer, shape).save_pretrained(str(folder))
    return counts


def count_parameters(config, family: str) -> dict[str, int]:
    """:func:`model_parameters` of a model of ``config`` built on the meta device (no memory, no weights)."""
    import torch

    from mirg.models.registry import adapter_for

    with torch.device("meta"):
        model = adapter_for(family).model_class()(config)
    return model_parameters(model, family)


def model_parameters(model, family: str) -> dict[str, int]:
    """Parameters of ``model``: ``embeddings`` (input table, plus the output head where it is not tied to it),
    ``vision_tower`` (with its merger into the language model), ``language_model`` (layers and final norm) and
    ``total`` (tied weights counted once)."""
    from mirg.models.registry import adapter_for

    unique = {id(p): p for p in model.parameters()}
    embedding_ids = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    vision_ids = {id(p) for _, p in adapter_for(family).vision_parameters(model)}
    embeddings = sum(unique[i].numel() for i in embedding_ids)
    vision = sum(unique[i].numel() for i in vision_ids)
    total = sum(p.numel() for p in unique.values())
    return {"total": total, "embeddings": embeddings, "vision_tower": vision,
            "language_model": total - embeddings - vision}


def build_published(family: str, size: str, out: str | Path, layers: int | None = None,
                    vision_depth: int | None = None, seed: int = 0, width_scale: float = 1.0,
                    config_only: bool = False, dtype: str = "float32") -> dict:
    """``mirg model init``: the published ``family``/``size`` with random weights, cut to ``layers`` and
    ``vision_depth`` where given and narrowed by ``width_scale``; returns a summary (also saved as
    :data:`INIT_FILE`, with the full depth that ``mirg model info`` counts)."""
    from mirg.architectures.tokenizer import build_family_tokenizer

    if dtype not in DTYPES:
        raise MirgError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    full = scale_width(published_shape(family, size), width_scale)
    shape = cut_depth(full, layers, vision_depth)
    folder = Path(out)
    check_new_folder(folder)
    tokenizer = build_family_tokenizer(family)
    counts = write_model_folder(shape, tokenizer, folder, seed, config_only=config_only, dtype=dtype)
    summary = {
        "family": family, "size": size, "source": shape.source, "seed": seed, "width_scale": width_scale,
        "dtype": dtype, "weights": not config_only,
        "layers": shape.text.num_hidden_layers, "vision_depth": shape.vision.depth,
        "fullatt_block_indexes": list(shape.vision.fullatt_block_indexes),
        "deepstack_visual_indexes": list(shape.vision.deepstack_visual_indexes),
        "full_depth": {"layers": full.text.num_hidden_layers, "vision_depth": full.vision.depth,
                       "fullatt_block_indexes": list(full.vision.fullatt_block_indexes),
                       "deepstack_visual_indexes": list(full.vision.deepstack_visual_indexes)},
        "parameters": counts, "embedding_rows": shape.text.vocab_size, "tokenizer_tokens": len(tokenizer),
        "min_pixels": shape.min_pixels, "max_pixels": shape.max_pixels, "folder": str(folder),
    }
    (folder / INIT_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def read_init_record(folder: Path) -> dict:
    """What ``mirg model init`` recorded in ``folder`` ({} for any other model folder)."""
    from mirg.models.base import read_json

    return read_json(folder / INIT_FILE)


def read_config(folder: Path, family: str):
    """``folder/config.json`` as a transformers config, or one line saying why it can't be read."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MirgError(f"{folder}/config.json: cannot be read as a {family} config ({exc})") from None


def full_depth_config(config, record: dict):
    """A copy of ``config`` with the depth (and the vision tower's special blocks) ``mirg model init`` cut it from."""
    full = record["full_depth"]
    data = config.to_dict()
    text = data["text_config"]
    text["num_hidden_layers"] = int(full["layers"])
    text.pop("layer_types", None)  # one per layer: derived again for the full depth
    vision = data["vision_config"]
    vision["depth"] = int(full["vision_depth"])
    for key in ("fullatt_block_indexes", "deepstack_visual_indexes"):
        if key in vision:
            vision[key] = list(full[key])
    return type(config).from_dict(data)


def describe_folder(folder: Path, family: str) -> dict:
    """What ``mirg model info`` adds about a folder: its parameters (from config.json), the rows of its embedding
    matrix against the tokens of its tokenizer, and, for a depth cut by ``mirg model init``, the full depth."""
    from mirg.models import adapter_for

    config = read_config(folder, family)
    text = config.get_text_config()
    described: dict[str, Any] = {"parameters": count_parameters(config, family),
                                 "depth": {"layers": text.num_hidden_layers,
                                           "vision_depth": _vision_depth(config.vision_config)}}
    tokens = len(adapter_for(folder).load_processor(folder).tokenizer)  # a broken tokenizer: one line
    described |= {"embedding_rows": text.vocab_size, "tokenizer_tokens": tokens}
    if text.vocab_size > tokens:
        described["vocabulary_note"] = (
            f"the embedding matrix has {text.vocab_size} rows (the published vocabulary) and the tokenizer "
            f"{tokens} tokens: rows {tokens} and above are never an input; sampling can still pick them")
    record = read_init_record(folder)
    if record.get("full_depth") and (record["full_depth"]["layers"] != text.num_hidden_layers
                                     or record["full_depth"]["vision_depth"] != _vision_depth(config.vision_config)):
        full = record["full_depth"]
        described["full_depth"] = {"layers": full["layers"], "vision_depth": full["vision_depth"],
                                   "parameters": count_parameters(full_depth_config(config, record), family)}
    return described


def _vision_depth(vision_config) -> int:
    return int(getattr(vision_config, "depth", None) or vision_config.num_hidden_layers)


def build_tiny(family: str, out: str | Path, size: str = "s", seed: int = 0, rope_theta: float | None = None,
               lm_layers: int | None = None, label_tokens: bool = False) -> dict:
    """Build, save and describe a tiny model of ``family``; returns a summary (params, vocab, folder).
    ``rope_theta`` and ``lm_layers`` override the size preset's rotary base and language-model depth;
    ``label_tokens`` gives every synthetic label one token (see :func:`mirg.architectures.tokenizer.build_tokenizer`)."""
    from mirg.architectures.tiny import (CONFIG_BUILDERS, FAMILIES, init_label_embeddings, init_number_embeddings,
                                         init_vision_positions, size_preset, tiny_shape)
    from mirg.architectures.tokenizer import build_tokenizer

    if family not in CONFIG_BUILDERS:
        raise MirgError(f"no tiny model for family {family!r}; choose one of {', '.join(FAMILIES)}")
    preset = size_preset(size, rope_theta, lm_layers)
    folder = Path(out)
    check_new_folder(folder)
    tokenizer = build_tokenizer("llava" if family == "llava" else "qwen", label_tokens=label_tokens)

    def prepare(model) -> None:
        init_number_embeddings(model, tokenizer)
        if label_tokens:
            init_label_embeddings(model, tokenizer)
        init_vision_positions(model, family)

    counts = write_model_folder(tiny_shape(family, preset), tokenizer, folder, seed, prepare=prepare)
    summary = {
        "family": family, "size": size, "seed": seed, "rope_theta": preset.rope_theta, "lm_layers": preset.layers,
        "label_tokens": label_tokens, "folder": str(folder), "parameters": counts["total"],
        "vocab_size": len(tokenizer),
    }
    (folder / "tiny_model.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
