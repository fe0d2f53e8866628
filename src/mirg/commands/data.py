"""`mirg data ...`: dataset commands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets: convert MIG-Bench, synthesize, annotate and compose from COCO-format "
                          "annotations, build trajectories, export, blind baseline")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    _register_convert(data_sub)
    from mirg.commands import data_real, data_synth, data_trajectories

    data_synth.register(data_sub)
    data_real.register(data_sub)
    data_trajectories.register(data_sub)
    _register_blind(data_sub)


def _register_convert(sub: argparse._SubParsersAction) -> None:
    convert = sub.add_parser("convert", help="convert a benchmark file into a manifest")
    convert_sub = convert.add_subparsers(dest="source", metavar="SOURCE", required=True)
    p = convert_sub.add_parser(
        "migbench",
        help="MIG-Bench JSON (original or revised) -> manifest",
        description="Write a manifest from a MIG-Bench file: the target image from the question text "
        "(additional_info for group_grounding), boxes converted to pixels using the image files. "
        "Samples that can't be converted are listed with the reason.",
    )
    p.add_argument("--in", dest="inp", required=True, metavar="BENCH.json", help="MIG-Bench JSON file")
    p.add_argument("--images", action="append", default=[], metavar="DIR",
                   help="folder holding the benchmark images (repeatable; default: beside BENCH.json)")
    p.add_argument("--out", required=True, metavar="DIR", help="output dataset folder (manifest.jsonl, README.md)")
    p.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirg.data.convert import write_converted
    from mirg.errors import MirgError
    from mirg.predictions import read_json_file
    from mirg import migbench

    inp = Path(args.inp)
    raw = read_json_file(inp)
    if not migbench.is_benchmark(raw):
        raise MirgError(f"{inp}: not a MIG-Bench JSON file (a list of records with task, images, question, answer)")
    bench = migbench.load_benchmark(raw, inp)
    roots = [Path(d) for d in args.images] or [inp.parent]
    for root in roots:
        if not root.is_dir():
            raise MirgError(f"--images {root}: no such folder")
    conv = write_converted(bench, roots, Path(args.out))
    print(f"converted {len(conv.samples)} of {len(bench.records)} {bench.version} MIG-Bench samples -> {args.out}")
    if conv.skipped:
        print(f"skipped {len(conv.skipped)} (listed in {Path(args.out) / 'skipped.jsonl'}):")
        for sid, reason in conv.skipped[:10]:
            print(f"  {sid}: {reason}")
        if len(conv.skipped) > 10:
            print(f"  ... and {len(conv.skipped) - 10} more")
    return 0 if conv.samples else 2


BLIND_DESCRIPTION = """\
Score the answers a model would give without looking at the images, to see how much a dataset's questions
give away. Fitted on TRAIN: the image that training questions of the same task, number of images and wording
("Locate it in <image>.", with the images it names) most often asked for; the box of the task that would have
been right most often in training. Scored image-aware, like `mirg eval`: RUN/predictions.jsonl,
RUN/metrics.json, RUN/per_sample.jsonl. No image is read; no model is loaded.
"""


def _register_blind(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("blind", help="the blind baseline: answers from the question alone, scored",
                       description=BLIND_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, metavar="DIR", help="training dataset folder or manifest.jsonl")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset to answer and score")
    p.add_argument("--out", required=True, metavar="RUN", help="output folder")
    p.set_defaults(func=run_blind)


def run_blind(args: argparse.Namespace) -> int:
    from mirg.eval.blind import run_blind as blind
    from mirg.report_text import metrics_table
    from mirg.schema import read_manifest

    metrics = blind(read_manifest(args.train), read_manifest(args.data), args.out)
    print(metrics_table(metrics))
    print(f"wrote {args.out}/metrics.json")
    return 0
