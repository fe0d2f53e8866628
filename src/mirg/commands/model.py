"""`mirg model ...`: tiny offline models and what mirg knows about a model folder."""

from __future__ import annotations

import argparse

FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl", "llava")


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="models: build a tiny offline model, inspect a model folder")
    model_sub = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    p = model_sub.add_parser(
        "init-tiny",
        help="build a tiny randomly initialised vision-language model (no downloads)",
        description="Build a tiny, randomly initialised model of a supported family from a config, with a "
        "tokenizer trained locally, and save it as a normal Hugging Face folder (weights, processor, chat "
        "template) that reloads with from_pretrained. Sizes: xs, s (default), m.",
    )
    p.add_argument("--family", required=True, choices=FAMILIES, help="model family")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder to write the model to")
    p.add_argument("--size", choices=("xs", "s", "m"), default="s", help="width/depth preset (default: s)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the initial weights (default: 0)")
    p.set_defaults(func=run_init_tiny)
    info = model_sub.add_parser(
        "info", help="family, coordinate space and pixel limits of a model folder",
        description="Print what mirg reads from a model folder: its family adapter, the coordinate space its "
        "boxes are in, and the pixel limits of its processor.",
    )
    info.add_argument("path", metavar="DIR", help="model folder")
    info.set_defaults(func=run_info)


def run_init_tiny(args: argparse.Namespace) -> int:
    import json

    from mirg.models.tiny import build_tiny

    summary = build_tiny(args.family, args.out, args.size, args.seed)
    print(json.dumps(summary))
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    from mirg.models import adapter_for, resolve_model_path

    path = resolve_model_path(args.path)
    adapter = adapter_for(path)
    adapter.check_folder(path)
    print(json.dumps({
        "path": str(path), "family": adapter.family, "coords": adapter.coords,
        "min_pixels": adapter.min_pixels, "max_pixels": adapter.max_pixels, "description": adapter.description,
    }))
    return 0
