"""`mirg data annotate`, `mirg data compose` and `mirg data export llamafactory`: real photos and their
COCO-format annotations in, a LLaMA-Factory dataset out."""

from __future__ import annotations

import argparse

from mirg.options import renamed

ANNOTATE_DESCRIPTION = """\
Attach object-level and image-level annotations from COCO-format files (COCO, Objects365, LVIS) to the images
of a manifest, matched by file name (the base name; where several annotated images share it, the one whose
file_name ends the manifest's path).

A matched image gets its objects: label = the category's name, bbox = COCO's [x, y, width, height] as
[x1, y1, x2, y2] pixels; crowd regions (iscrowd 1) are skipped and counted; a box more than 1 px outside its
image, an empty one, or one naming an unknown image or category is rejected with its reason. With --captions,
its note is its first caption (an image without one gets a summary of its objects: "a photo with these
annotated objects: person (2), dog"). A COCO image whose width/height differ from the file is reported
(counted and listed), never rescaled, and left unannotated.

A sample gets objects (and notes) only when every one of its images matched: an empty list would claim an
image holds nothing. Other samples are kept as they were and counted.

Writes into OUT: manifest.jsonl (image paths relative to OUT; images are not copied), README.md with the
coverage (images annotated / all, objects attached, samples covered, size disagreements) and rejected.jsonl
(every image and annotation not used, with its reason).
"""

EXPORT_DESCRIPTION = """\
Write the SFT trajectories of `mirg data trajectories` (DIR/sft.jsonl) as a LLaMA-Factory dataset in its
ShareGPT multimodal format, so that stage 1 can run in LLaMA-Factory:

  OUT/NAME.jsonl       {"messages": [{"role": "user", "content": "Image 1:<image>Image 2:<image>question..."},
                                     {"role": "assistant", "content": "<think>...</think><answer>...</answer>"}],
                        "images": ["...", "..."]}  (one <image> per image, in order)
  OUT/dataset_info.json  NAME with formatting sharegpt, its columns and tags
  OUT/README.md          how to train on it, and the coordinate space of its boxes

Image paths are written relative to OUT: run LLaMA-Factory with dataset_dir: OUT (its media_dir defaults to
dataset_dir, against which it resolves them). With --absolute-paths they are absolute instead, for a dataset
that is moved into another dataset_dir. A record whose text holds a literal <image> (which LLaMA-Factory would
read as one more image) is left out, counted and listed in OUT/rejected.jsonl.
"""


def register(sub: argparse._SubParsersAction) -> None:
    _register_annotate(sub)
    _register_compose(sub)
    _register_export(sub)


def _register_annotate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotate", help="attach COCO-format objects and captions to a manifest's images",
                       description=ANNOTATE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder or manifest.jsonl")
    p.add_argument("--coco", required=True, metavar="INSTANCES.json", help="COCO-format instances file")
    p.add_argument("--captions", metavar="CAPTIONS.json", help="COCO-format captions file (image notes)")
    p.add_argument("--out", required=True, metavar="DIR", help="output dataset folder (manifest.jsonl, README.md)")
    p.set_defaults(func=run_annotate)


def run_annotate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirg.data.annotate import annotate_dataset
    from mirg.data.coco import read_captions, read_instances
    from mirg.data.trajectories import load_dataset

    dataset = load_dataset(args.data)
    coco = read_instances(args.coco, progress=True)
    captions = read_captions(args.captions) if args.captions else None
    report = annotate_dataset(dataset, coco, Path(args.out), captions)
    print(f"annotated {report.images_annotated} of {report.images_total} images ({report.objects} objects); "
          f"{report.samples_covered} of {len(dataset.samples)} samples fully covered -> {args.out}")
    if report.size_mismatches:
        print(f"{len(report.size_mismatches)} image(s) whose COCO size disagrees with the file, left unannotated "
              f"(listed in {Path(args.out) / 'README.md'})")
    return 0


def compose_description() -> str:
    """The help text, each family's rule wrapped under its name (the same rules the dataset card states)."""
    import textwrap

    from mirg.data.compose_rules import NEEDS, RULES

    def item(name: str, text: str) -> str:
        return textwrap.fill(f"{name}: {text}", width=110, initial_indent="  ", subsequent_indent="    ")

    rules = "\n".join(item(task, rule + ".") for task, rule in RULES.items())
    needs = "\n".join(item(task, "needs " + need) for task, need in NEEDS.items())
    return f"""\
Compose multi-image grounding samples from real photos and their COCO-format annotations, in MIG-Bench's
layout and wording, one family per rule:

{rules}

Families that detection annotations can't express are refused:
{needs}

Deterministic by --seed; tasks, numbers of images and target positions balanced (as `mirg data synth`); every
answer checked unique against every category a photo shows (crowd regions included). Objects smaller than
--min-size on a side are never cut out or asked for. A photo whose file is missing or whose size disagrees with
the annotations is not used (listed in OUT/rejected.jsonl).

Every sample carries objects (label = category name, [x1, y1, x2, y2] pixels) and image notes: a photo's first
caption (--captions), else a summary of its objects; a crop's note is "a close-up of a dog". Photos are
referenced where they are; crops are written to OUT/images. OUT also gets README.md (rules, coverage, balance
tables, examples) and rejected.jsonl. A non-empty OUT must be an earlier compose run's (it is replaced).
"""


def _register_compose(sub: argparse._SubParsersAction) -> None:
    from mirg.data.compose_rules import COMPOSE_TASKS

    p = sub.add_parser("compose", help="multi-image samples from real photos and COCO-format annotations",
                       description=compose_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coco", required=True, metavar="INSTANCES.json", help="COCO-format instances file")
    p.add_argument("--captions", metavar="CAPTIONS.json", help="COCO-format captions file (image notes)")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the photos (file_name relative to it)")
    p.add_argument("--out", required=True, metavar="DIR", help="output dataset folder")
    p.add_argument("--samples", type=int, metavar="N", help="number of samples (required)")
    renamed(p, "--n", "--samples", type=int)
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--tasks", metavar="T,...", help=f"comma-separated families (default: {','.join(COMPOSE_TASKS)})")
    p.add_argument("--min-images", type=int, default=2, metavar="A", help="fewest images per sample, 2..6 (default 2)")
    p.add_argument("--max-images", type=int, default=4, metavar="B", help="most images per sample, 2..6 (default 4)")
    p.add_argument("--min-size", type=int, default=32, metavar="PX",
                   help="smallest side, in pixels, of an object that is cut out or asked for (default 32)")
    p.add_argument("--id-prefix", default="coco", metavar="P", help="sample ids are P-000000, ... (default coco)")
    p.set_defaults(func=run_compose)


def run_compose(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirg.data.coco import read_captions, read_instances
    from mirg.data.compose import ComposeConfig, compose_dataset
    from mirg.data.compose_rules import parse_tasks
    from mirg.errors import MirgError

    if args.samples is None:
        raise MirgError("give --samples N: how many samples to compose")
    cfg = ComposeConfig(n=args.samples, seed=args.seed, tasks=parse_tasks(args.tasks), min_images=args.min_images,
                        max_images=args.max_images, min_size=args.min_size, id_prefix=args.id_prefix)
    coco = read_instances(args.coco, progress=True)
    captions = read_captions(args.captions) if args.captions else None
    result = compose_dataset(cfg, coco, Path(args.images), Path(args.out), captions, progress=True)
    skipped = len(result.pool.rejected)
    print(f"composed {len(result.samples)} samples ({', '.join(cfg.tasks)}) from {len(result.pool.ids)} usable "
          f"photos, {result.crops} crops -> {args.out} in {result.seconds:.1f} s"
          + (f"; {skipped} image(s) not used (see {Path(args.out) / 'rejected.jsonl'})" if skipped else ""))
    return 0


def _register_export(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write trajectories in another trainer's dataset format")
    export_sub = export.add_subparsers(dest="target", metavar="FORMAT", required=True)
    p = export_sub.add_parser("llamafactory", help="SFT trajectories -> LLaMA-Factory ShareGPT multimodal dataset",
                              description=EXPORT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trajectories", required=True, metavar="DIR", help="a `mirg data trajectories` output folder")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (NAME.jsonl, dataset_info.json)")
    p.add_argument("--name", default="mirg_sft", metavar="NAME", help="dataset name in dataset_info.json "
                   "(default mirg_sft)")
    p.add_argument("--absolute-paths", action="store_true",
                   help="write absolute image paths instead of paths relative to OUT")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from mirg.data.export import export_llamafactory

    report = export_llamafactory(Path(args.trajectories), Path(args.out), args.name, args.absolute_paths)
    print(f"exported {report.records} records ({report.images} images) as LLaMA-Factory dataset {args.name!r} "
          f"-> {args.out}" + (f"; {len(report.rejected)} left out (see {Path(args.out) / 'rejected.jsonl'})"
                              if report.rejected else ""))
    for warning in report.warnings:
        print(f"mirg: warning: {warning}", file=sys.stderr)
    return 0
