"""`mirg data synth`: generate the synthetic multi-image grounding benchmark."""

from __future__ import annotations

import argparse

from mirg.options import renamed

TASK_HELP = (
    "comma-separated task families (default: the ten MIG-Bench ones: common_object, diff, view_diff, region, "
    "refer_grounding, group_grounding, reasoning, correspondence, object_tracking, multi_view); "
    "'perception' (one-image seeing and locating) and 'listing' (list one image's objects, then locate the "
    "leftmost or rightmost: no label in the question) are made only when named here"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate the synthetic multi-image grounding benchmark",
        description="Write a dataset folder (manifest.jsonl, images/, README.md card, examples/) of coloured "
        "shapes in MIG-Bench's task families. Tasks, numbers of images and target positions are balanced; "
        "every answer is checked unique; the same arguments give byte-identical files.",
    )
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output dataset folder (must be empty, or see --overwrite)")
    p.add_argument("--samples", type=int, metavar="N", help="number of samples (required)")
    renamed(p, "--n", "--samples", type=int)
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--image-size", type=int, default=224, metavar="PX", help="side of the square images (default 224)")
    p.add_argument("--min-images", type=int, default=2, metavar="A",
                   help="fewest images per sample, 1..6 (default 2; only perception goes below 2)")
    p.add_argument("--max-images", type=int, default=4, metavar="B", help="most images per sample, 1..6 (default 4)")
    p.add_argument("--tasks", default=None, metavar="T,...", help=TASK_HELP)
    p.add_argument("--id-prefix", default="synth", metavar="P", help="sample ids are P-000000, ... (default synth)")
    p.add_argument("--max-objects", type=int, default=4, metavar="K",
                   help="perception only: at most K objects per image (1..4, default 4; 1 for a first curriculum stage)")
    p.add_argument("--workers", type=int, default=1, metavar="W",
                   help="processes drawing images (default 1); the output is the same for any value")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the dataset in a non-empty --out (only manifest.jsonl, README.md, images/, examples/)")
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from mirg.data.synth import SynthConfig, parse_tasks, write_dataset

    from mirg.errors import MirgError

    if args.samples is None:
        raise MirgError("give --samples N: how many samples to draw")
    cfg = SynthConfig(
        n=args.samples,
        seed=args.seed,
        image_size=args.image_size,
        min_images=args.min_images,
        max_images=args.max_images,
        tasks=parse_tasks(args.tasks),
        id_prefix=args.id_prefix,
        max_objects=args.max_objects,
    )
    out = Path(args.out)
    result = write_dataset(cfg, out, workers=args.workers, overwrite=args.overwrite, progress=True)
    redraws = f"; {result.retries + result.rejects} draws redone ({result.rejects} failed the answer check)" \
        if result.retries or result.rejects else ""
    print(
        f"wrote {len(result.samples)} samples ({len(cfg.tasks)} tasks, {result.images} images of "
        f"{cfg.image_size} px) to {out} in {result.seconds:.1f} s "
        f"({len(result.samples) / max(result.seconds, 1e-9):.0f} samples/s){redraws}",
        file=sys.stdout,
    )
    return 0
