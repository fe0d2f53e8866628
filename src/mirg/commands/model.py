"""`mirg model ...`: tiny offline models and what mirg knows about a model folder."""

from __future__ import annotations

import argparse

from mirg.architectures.published import published_families, published_sizes
from mirg.formats import LIST_DETAILS, ORDERS
from mirg.options import renamed

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
    p.add_argument("--rope-theta", type=float, default=None, metavar="BASE",
                   help="base of the language model's rotary frequencies (default: 10000)")
    p.add_argument("--lm-layers", type=int, default=None, metavar="N",
                   help="language model layers (default: the size preset's: xs 2, s 2, m 4)")
    p.add_argument("--label-tokens", action="store_true",
                   help="one token per colour-and-shape label of the synthetic images (' red circle'), started at "
                   "the mean of its two words' embeddings (default: each word its own token)")
    p.set_defaults(func=run_init_tiny)
    _register_init(model_sub)
    info = model_sub.add_parser(
        "info", help="family, coordinate space, pixel limits and parameter counts of a model folder",
        description="Print (one JSON line) what mirg reads from a model folder: its family adapter, the coordinate "
        "space its boxes are in, the pixel limits of its processor, and its parameters counted from config.json "
        "(language model, vision tower, embeddings; the weights are not read). For a model built by `mirg model "
        "init` with its depth cut, also what the full depth would hold; where the embedding matrix has more rows "
        "than the tokenizer has tokens (a published vocabulary with the local tokenizer), it says so.",
    )
    info.add_argument("path", metavar="DIR", help="model folder")
    info.set_defaults(func=run_info)
    _register_pretrain(model_sub)


def _register_init(model_sub: argparse._SubParsersAction) -> None:
    sizes = sorted({size for family in published_families() for size in published_sizes(family)})
    p = model_sub.add_parser(
        "init", help="build a published Qwen-VL architecture with random weights, depth cut to fit a CPU",
        description="Build a randomly initialised model with the published configuration of a family and size "
        "(the widths, heads, vocabulary, rotary sections, vision tower and pixel limits of the model's public "
        "config.json), a locally trained tokenizer carrying the family's special tokens and chat template, and the "
        "family's image processor; save it as a Hugging Face folder that `mirg sft` and `mirg grpo` train. "
        "--layers and --vision-depth cut the depth so that a CPU can step it (the folder records the full depth "
        "for `mirg model info`). Sizes: qwen2_5_vl 3b, 7b; qwen3_vl 2b, 4b, 8b.",
    )
    p.add_argument("--family", required=True, choices=published_families(), help="model family")
    p.add_argument("--size", required=True, choices=sizes, metavar="NAME",
                   help="published size: 3b or 7b (qwen2_5_vl); 2b, 4b or 8b (qwen3_vl)")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder to write the model to")
    p.add_argument("--layers", type=int, default=None, metavar="N",
                   help="language-model layers (default: the published depth)")
    p.add_argument("--vision-depth", type=int, default=None, metavar="N",
                   help="vision-tower blocks (default: the published depth); Qwen2.5-VL's full-attention blocks keep "
                   "their distance from the top of the tower, Qwen3-VL's deepstack blocks scale with the depth")
    p.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: 0)")
    p.add_argument("--width-scale", type=float, default=1.0, metavar="S",
                   help="multiply heads, hidden and intermediate sizes by S (0 < S <= 1; head widths, rotary sections, "
                   "vocabulary, patch and windows stay): the published shape's code paths at a fraction of the cost, "
                   "for tests (default: 1, the published widths)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="dtype of the saved weights (default: float32; training loads them in its --dtype)")
    p.add_argument("--config-only", action="store_true",
                   help="write config, tokenizer and processor but no weights (check widths and counts in a second)")
    p.set_defaults(func=run_init)


def _register_pretrain(model_sub: argparse._SubParsersAction) -> None:
    vision = model_sub.add_parser(
        "pretrain-vision", help="dense perception stage for a tiny model's vision tower",
        description="Train the vision tower (and projector) of a model with a dense linear head: every image "
        "token predicts whether an object's centre lies in its cell, the object's colour, shape and box. The "
        "head is dropped; the tower's features then carry what a language model must learn to put into words. "
        "DATA is a manifest with object annotations (e.g. `mirg data synth --tasks perception`).",
    )
    vision.add_argument("--model", required=True, metavar="DIR", help="model folder to start from")
    vision.add_argument("--data", required=True, metavar="DATA", help="manifest with object annotations")
    vision.add_argument("--out", required=True, metavar="DIR", help="folder for the updated model")
    vision.add_argument("--minutes", type=float, default=5.0, help="wall-time budget (default 5)")
    vision.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    vision.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    vision.add_argument("--seed", type=int, default=0,
                        help="seed of the held-out split, the batch order and the dense head (default 0)")
    vision.add_argument("--word-targets", action="store_true",
                        help="score colour and shape against the model's own embeddings of those words, as the "
                        "coordinates are scored against the number tokens' (default: a plain classifier)")
    vision.add_argument("--device", default="auto", metavar="DEV",
                        help="auto (the GPU where one is visible), cpu, cuda or cuda:N (default auto)")
    vision.set_defaults(func=run_pretrain_vision)
    tiny = model_sub.add_parser(
        "pretrain-tiny", help="build and pretrain the embedded default base on perception data",
        description="Build a tiny model and teach it to see: the dense vision stage, then SFT on synthetic "
        "perception data with a curriculum (one object, scenes of up to four objects, several images). "
        "Writes the final model, pretrain_summary.json and a model card (README.md) to OUT.",
    )
    tiny.add_argument("--out", required=True, metavar="DIR", help="new folder for the model")
    tiny.add_argument("--like", metavar="MODEL", default=None,
                      help="start from the options a pretrain-tiny model was made with (its pretrain_summary.json), "
                      "e.g. `--like embedded` for the shipped base's recipe; options given here override them; the card "
                      "records every option explicitly")
    tiny.add_argument("--minutes", type=float, default=None, help="total training wall time (default 60)")
    tiny.add_argument("--seed", type=int, default=None, help="seed of the weights, data and training (default 0)")
    tiny.add_argument("--family", choices=FAMILIES, default=None, help="model family (default qwen3_vl)")
    tiny.add_argument("--size", choices=("xs", "s", "m"), default=None, help="size preset (default s)")
    tiny.add_argument("--rope-theta", type=float, default=None, metavar="BASE",
                      help="base of the language model's rotary frequencies (default: 10000; see init-tiny)")
    tiny.add_argument("--lm-layers", type=int, default=None, metavar="N",
                      help="language model layers (default: the size preset's; see init-tiny)")
    tiny.add_argument("--label-tokens", action="store_true", default=None,
                      help="one token per colour-and-shape label (see init-tiny); from random weights such a base "
                      "localised worse (it marked the target by its place)")
    tiny.add_argument("--label-tokens-last", action="store_true", default=None,
                      help="the same tokens added only before the last stage, each started at the mean of its two "
                      "words' trained embeddings: the earlier stages learn to compare labels word by word, the last "
                      "compares one token")
    tiny.add_argument("--freeze-vision", action="store_true", default=None,
                      help="keep the vision tower as the dense vision stage left it during the curriculum stages "
                      "(SFT through a few coordinate tokens otherwise wears away the colour and shape it learnt)")
    tiny.add_argument("--vision-minutes", type=float, default=None, metavar="M",
                      help="minutes of the dense vision stage, taken out of --minutes; the curriculum stages share "
                      "the rest in their proportions (default: 15%% of --minutes)")
    tiny.add_argument("--eval-samples", type=int, default=None, help="held-out samples per evaluation (default 200)")
    tiny.add_argument("--word-targets", action="store_true", default=None,
                      help="vision stage: colour and shape scored against the word embeddings (see pretrain-vision)")
    tiny.add_argument("--detail", choices=("answer", *LIST_DETAILS), default=None,
                      help="how every curriculum stage answers: answer (the box right after naming the target), "
                      "list (every object with its box first, then the target; see `mirg data trajectories`) or "
                      "box-list (the same list with each box before its label) or mark-list (the list with the target "
                      "marked before its box) or chain (each image by label, the target named, then its image with "
                      "boxes and the target marked) (default answer)")
    tiny.add_argument("--order", choices=ORDERS, default=None,
                      help="order of the objects in every list: left-to-right (by the box's centre; default) or label "
                      "(alphabetically, no positions to compare; see `mirg data trajectories`)")
    tiny.add_argument("--select", choices=("best", "last"), default=None,
                      help="which stage's output becomes the model: best (the best acc@0.5 on one-image validation; "
                      "default) or last (the several-images stage, the only one that has listed several images, "
                      "as a base for multi-image training needs)")
    tiny.add_argument("--shares", default=None, metavar="A,B,C",
                      help="relative shares of the time after the vision stage for the one-object, scenes and "
                      "several-images stages (default 35,35,15)")
    tiny.add_argument("--max-images", type=int, default=None, metavar="N",
                      help="most images per sample in the several-images stage, 1..6 (default 3)")
    tiny.add_argument("--lr-cooldown", dest="cooldown", type=float, default=None, metavar="F",
                      help="the last stage's learning rate falls linearly to zero over its last fraction F "
                      "(`mirg sft --lr-cooldown`; default 0: constant to the end)")
    renamed(tiny, "--cooldown", "--lr-cooldown", dest="cooldown", type=float)
    tiny.set_defaults(func=run_pretrain_tiny)


def run_pretrain_vision(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from mirg.errors import MirgError
    from mirg.folders import check_output_folder
    from mirg.models.registry import resolve_model_path
    from mirg.tinybase.vision_pretrain import train_vision

    for flag, value in (("--minutes", args.minutes), ("--learning-rate", args.learning_rate),
                        ("--batch-size", args.batch_size)):
        if not 0 < value < float("inf"):  # nan too: argparse's float takes it
            raise MirgError(f"{flag} must be positive, got {value}")
    check_output_folder(Path(args.out), "--out", ["vision_stage.json"], "a model and its README.md card")
    result = train_vision(resolve_model_path(args.model), Path(args.data), Path(args.out), args.minutes,
                          args.learning_rate, args.batch_size, args.seed, device=args.device,
                          word_targets=args.word_targets)
    print(json.dumps(result.__dict__))
    return 0


def run_pretrain_tiny(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirg.tinybase.pretrain import (OPTION_DEFAULTS, PretrainPlan, curriculum, explicit_command, resolve_options,
                                      run_pretrain)
    from mirg.models.registry import resolve_model_path

    like = resolve_model_path(args.like) if args.like else None
    opts = resolve_options({name: getattr(args, name) for name in OPTION_DEFAULTS}, like)
    plan = PretrainPlan(out=Path(args.out), minutes=opts["minutes"], seed=opts["seed"], family=opts["family"],
                        size=opts["size"], eval_samples=opts["eval_samples"],
                        stages=curriculum(opts["detail"], opts["shares"], opts["max_images"]),
                        shares=opts["shares"], max_images=opts["max_images"], cooldown=opts["cooldown"],
                        rope_theta=opts["rope_theta"], lm_layers=opts["lm_layers"], vision_minutes=opts["vision_minutes"],
                        label_tokens=opts["label_tokens"], label_tokens_last=opts["label_tokens_last"], order=opts["order"],
                        vision_extra=["--word-targets"] if opts["word_targets"] else [],
                        extra=["--freeze-vision"] if opts["freeze_vision"] else [], select=opts["select"])
    summary = run_pretrain(plan, explicit_command(Path(args.out), opts))
    print(f"pretrained {opts['family']} in {summary['train_wall_s'] / 60:.1f} min; model and card in {args.out}")
    return 0


def run_init_tiny(args: argparse.Namespace) -> int:
    import json

    from mirg.architectures.build import build_tiny

    summary = build_tiny(args.family, args.out, args.size, args.seed, rope_theta=args.rope_theta,
                         lm_layers=args.lm_layers, label_tokens=args.label_tokens)
    print(json.dumps(summary))
    return 0


def run_init(args: argparse.Namespace) -> int:
    import json

    from mirg.architectures.build import build_published

    summary = build_published(args.family, args.size, args.out, layers=args.layers, vision_depth=args.vision_depth,
                              seed=args.seed, width_scale=args.width_scale, config_only=args.config_only,
                              dtype=args.dtype)
    print(json.dumps(summary))
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    from mirg.models import adapter_for, resolve_model_path
    from mirg.architectures.build import describe_folder

    path = resolve_model_path(args.path)
    adapter = adapter_for(path)
    adapter.check_folder(path)
    print(json.dumps({
        "path": str(path), "family": adapter.family, "coords": adapter.coords,
        "min_pixels": adapter.min_pixels, "max_pixels": adapter.max_pixels, "description": adapter.description,
        **describe_folder(path, adapter.family),
    }))
    return 0
