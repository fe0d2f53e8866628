"""`mirg data ...`: dataset commands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets: convert public sets (MIG-Bench, MGrounding, VLM-R1), synthesize, "
                          "annotate and compose from COCO-format annotations, build trajectories, export, blind baseline")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    _register_convert(data_sub)
    from mirg.commands import data_real, data_synth, data_trajectories

    data_synth.register(data_sub)
    data_real.register(data_sub)
    data_trajectories.register(data_sub)
    _register_blind(data_sub)


CONVERT_OUTPUT = """\
Writes into OUT: manifest.jsonl (boxes [x1, y1, x2, y2] in pixels of the target image, sizes read from the
image files, image paths relative to OUT), rejected.jsonl ({"id", "reason"} for every would-be sample that
could not be converted: nothing is dropped silently) and README.md (samples per task, rejections counted by
reason). Images are looked up under each --images folder by the path the file gives ("./" ignored), then
with its leading folders dropped one at a time. OUT is a new or empty folder, or one an earlier conversion
wrote.
"""

MIGBENCH_DESCRIPTION = """\
Write a manifest from a MIG-Bench file (original: boxes 0-1; revised: 0-1000): the target image from the
question text (additional_info for group_grounding, image 1 for region), boxes converted to pixels using
the image files.

""" + CONVERT_OUTPUT

MGROUNDING_DESCRIPTION = """\
Write a manifest from Migician's MGrounding-630k: the combined MGrounding-630k.json or any per-task file
(a JSON list or JSON Lines of {"id", "images", "conversations", "type"}). Read as a stream: the whole
630k-record file is fine.

- Every (human, gpt) pair whose answer holds exactly one <|box_start|>(x1,y1),(x2,y2)<|box_end|> becomes
  one sample, id RECORDID-K (K = the pair's number in the record).
- Question: the human text without the <image> placeholders and the <|object_ref_start|>/<|object_ref_end|>
  tokens (the phrase itself kept). The record's human turns must hold one <image> per image.
- Target image: the one the answer names ("It's in the third image."), else image 1 for region (the
  source image), else the one the question names ("... in the 2th image"), else image 1 when the record
  shows one image.
- Box: 0-1000 of the target image's width and height, converted to its pixels.
- Task from type: common_train -> common_object, diff_train -> diff, gg_train -> group_grounding,
  ot_train -> object_tracking, refer_train -> refer_grounding, region_train -> region; any other type keeps
  its own name.
- Rejected, with the reason: no box or several, no image named where several are shown, a missing image
  file, a box outside 0-1000 or inverted, a wrong placeholder count, a malformed record, a duplicate id.

A file that breaks off (an interrupted download) is refused in one line and nothing is written.

""" + CONVERT_OUTPUT

VLM_R1_DESCRIPTION = """\
Write a manifest from VLM-R1's referring-expression (REC) records, a JSON list or JSON Lines of
{"image", "problem", "solution", "normalized_solution", ...}: one-image samples, task refer_grounding,
question = problem, box = solution (pixels of the image; overshoots of up to 1 pixel are clipped).

Where normalized_solution (0-1000) is given, it must agree with solution on the image file at hand
(within 10 units): a record whose two boxes disagree, as they do when an image's width and height are
swapped, is rejected with the reason. Sample ids: the record's id, else FILE-N (N = its position).
Same rejection rules as the other sources; a file that breaks off is refused and nothing is written.

""" + CONVERT_OUTPUT


def _register_convert(sub: argparse._SubParsersAction) -> None:
    convert = sub.add_parser("convert", help="convert a public grounding dataset into a manifest",
                             description="Convert MIG-Bench, MGrounding-630k or VLM-R1 referring data into a "
                             "manifest, boxes in pixels, every record that can't be used listed with its reason.")
    convert_sub = convert.add_subparsers(dest="source", metavar="SOURCE", required=True)
    sources = [
        ("migbench", "MIG-Bench JSON (original or revised) -> manifest", MIGBENCH_DESCRIPTION, "BENCH.json"),
        ("mgrounding", "Migician's MGrounding-630k (or a per-task file) -> manifest", MGROUNDING_DESCRIPTION,
         "FILE.json"),
        ("vlm-r1", "VLM-R1 referring-expression records (JSON or JSONL) -> manifest", VLM_R1_DESCRIPTION,
         "FILE.json"),
    ]
    for name, help_text, description, metavar in sources:
        p = convert_sub.add_parser(name, help=help_text, description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--in", dest="inp", required=True, metavar=metavar, help="the file to convert")
        p.add_argument("--images", action="append", default=[], metavar="DIR",
                       help="folder the file's image paths are relative to (repeatable; default: the folder "
                       "holding the file)")
        p.add_argument("--out", required=True, metavar="OUT",
                       help="output dataset folder (manifest.jsonl, rejected.jsonl, README.md)")
        p.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirg.commands.data_trajectories import describe_reasons
    from mirg.data import convert
    from mirg.errors import MirgError
    from mirg.folders import check_output_folder

    inp, out = Path(args.inp), Path(args.out)
    roots = [Path(d) for d in args.images] or [inp.parent]
    for root in roots:
        if not root.is_dir():
            raise MirgError(f"--images {root}: no such folder")
    check_output_folder(out, "--out", convert.OUTPUT_FILES, "manifest.jsonl, rejected.jsonl and a README.md")
    source = _migbench_source(inp) if args.source == "migbench" else convert.SOURCES[args.source](inp)
    report = convert.write_conversion(source, convert.ImageIndex(roots, relative_to=out), out)
    n_samples, n_rejected = sum(report.samples.values()), sum(report.rejected.values())
    print(f"converted {report.records} {source.label} records into {n_samples} samples -> {out}")
    if n_rejected:
        print(f"not converted: {n_rejected} ({describe_reasons(report.rejected)}); each with its "
              f"reason in {out / convert.REJECTED}")
    if not n_samples:
        raise MirgError(f"no sample could be converted from {inp}; see {out / convert.REJECTED}")
    return 0


def _migbench_source(inp):
    from mirg.data import migbench
    from mirg.data.convert import MigBenchSource
    from mirg.errors import MirgError
    from mirg.eval.predictions import read_json_file

    raw = read_json_file(inp)
    if not migbench.is_benchmark(raw):
        raise MirgError(f"{inp}: not a MIG-Bench JSON file (a list of records with task, images, question, answer)")
    return MigBenchSource(migbench.load_benchmark(raw, inp))


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
    from mirg.eval.report_text import metrics_table
    from mirg.schema import read_manifest

    metrics = blind(read_manifest(args.train), read_manifest(args.data), args.out)
    print(metrics_table(metrics))
    print(f"wrote {args.out}/metrics.json")
    return 0
