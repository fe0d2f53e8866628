"""`mirg score`: metrics from predictions."""

from __future__ import annotations

import argparse

from mirg.geometry import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, SPACES

DESCRIPTION = """\
Score predictions against a dataset and write metrics.json.

DATA is a manifest (.jsonl or a dataset folder) or a MIG-Bench JSON (original or revised, detected).
Each PREDICTIONS file is JSONL ({"id", "response"} per line) or a MIG-Bench result file (detected;
its records are matched to the benchmark by task and order).

Default mode is image-aware: the answer's box is read in --coords, converted to pixels of the image
the answer names, clipped to it, and scores IoU 0 when that image is not the target.
--compat migbench reproduces the evaluation behind published MIG-Bench numbers instead (the image
is never checked; boxes are read by the benchmark's own patterns).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="metrics from predictions (fast: no torch)", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, metavar="D", help="manifest (.jsonl / folder) or MIG-Bench JSON")
    p.add_argument("--predictions", required=True, nargs="+", metavar="P", help="predictions JSONL or MIG-Bench result files")
    p.add_argument("--out", required=True, metavar="metrics.json", help="where to write the metrics")
    p.add_argument("--per-sample", metavar="F", help="also write one JSON line per sample here")
    # the defaults are applied in run(), so that a space given with --compat (which ignores it) is refused
    p.add_argument("--coords", choices=SPACES, help="coordinate space of predicted boxes (default: pixel)")
    p.add_argument("--min-pixels", type=int, metavar="N",
                   help=f"resized space: processor min_pixels (default {QWEN_MIN_PIXELS}, Qwen2.5-VL's)")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help=f"resized space: processor max_pixels (default {QWEN_MAX_PIXELS}, Qwen2.5-VL's)")
    p.add_argument("--compat", choices=["migbench"], help="reproduce MIG-Bench's published evaluation")
    p.add_argument("--migician-yscale", action="store_true",
                   help="with --compat migbench: apply Migician's vertical stretch to its outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mirg.geometry import CoordSpace
    from mirg.errors import MirgError
    from mirg.eval.score_files import score_files, write_outputs
    from mirg.eval.report_text import metrics_table

    given = [flag for flag, value in (("--coords", args.coords), ("--min-pixels", args.min_pixels),
                                      ("--max-pixels", args.max_pixels)) if value is not None]
    if args.compat and given:
        raise MirgError(f"{', '.join(given)} does not apply with --compat {args.compat}: it reads boxes as the "
                        "benchmark's own evaluation did (drop it, or score image-aware without --compat)")
    space = CoordSpace(args.coords or "pixel",
                       QWEN_MIN_PIXELS if args.min_pixels is None else args.min_pixels,
                       QWEN_MAX_PIXELS if args.max_pixels is None else args.max_pixels)
    metrics, scores = score_files(args.data, args.predictions, space, args.compat, args.migician_yscale)
    write_outputs(metrics, scores, args.out, args.per_sample)
    print(metrics_table(metrics))
    print(f"wrote {args.out}" + (f" and {args.per_sample}" if args.per_sample else ""))
    return 0
