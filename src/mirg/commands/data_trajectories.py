"""`mirg data trajectories`: SFT trajectories and RL rows from a manifest's annotations."""

from __future__ import annotations

import argparse

from mirg.formats import DETAILS, ORDERS
from mirg.geometry import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, SPACES

DESCRIPTION = """\
Build, for every sample of a manifest, a reasoning trajectory for SFT and a prompt/target row for RL.

The reasoning (a) sums up each image from its image-level note, (b) names the reference object and its
attributes from the object-level annotations, (c) decides the target image, says why and names it as
"image k", (d) localises the object; then the answer, with boxes in --coords.

Writes into OUT: sft.jsonl (id, task, images, image_sizes, prompt, completion), rl.jsonl (id, task, images,
prompt, target_image, target_box, image_sizes), trajectories.json (the coordinate space of the boxes, the pixel
limits that define it and the model they were written for) and README.md with counts per task. Image paths are
relative to OUT.

Boxes must be written in the space the trained model will answer in. --for-model DIR (or embedded) takes it
from the model: its family's space, and the pixel limits its run will resize images at: the folder's saved
processor's, replaced by those of a training recipe given with --config, replaced by --min-pixels/--max-pixels.
`mirg sft` and `mirg grpo` refuse trajectories whose recorded space or limits differ from their run's.

--mode template is deterministic and offline. --mode teacher asks an OpenAI-compatible chat endpoint
(images and annotations sent), keeps only replies that verify against the annotations (strict format,
target image, IoU >= 0.5, reasoning names the image), retries the rest and counts rejections by reason
(each in OUT/rejected.jsonl); a run that accepts none exits with status 2. Replies are cached in
OUT/teacher_cache.jsonl: rerunning the same command resumes without repeating a call.

OUT is a new or empty folder, or one an earlier run wrote; a folder holding other files is refused.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trajectories", help="reasoning trajectories (SFT) and RL rows from annotations",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder or manifest.jsonl")
    p.add_argument("--out", required=True, metavar="DIR2", help="output folder (sft.jsonl, rl.jsonl, README.md)")
    p.add_argument("--mode", choices=["template", "teacher"], default="template", help="default: template")
    p.add_argument("--detail", choices=list(DETAILS), default="brief",
                   help="answer: only the target image named, then the answer; list: every object of every image "
                   "with its box, then the target image named; box-list: the same with each box before its "
                   "label; mark-list: the list with '(the target)' between the target's label and its box; "
                   "chain: each image's objects by label (the outlined one marked), 'The target is the X in image "
                   "k.', then image k's objects with boxes and the target marked; brief: reference and target only; "
                   "full: every object of every image with its box. list, box-list, mark-list, chain and full need "
                   "object annotations on every sample and refuse a manifest without them (a converted benchmark); "
                   "brief and answer need none (default: brief)")
    p.add_argument("--order", choices=list(ORDERS), default="left-to-right",
                   help="order of the objects in every list: left-to-right (by the box's centre) or label "
                   "(alphabetically by label, equal labels left to right; a small model reads it without "
                   "comparing positions) (default: left-to-right)")
    p.add_argument("--for-model", metavar="DIR", help="write boxes in this model's space (a model folder, or "
                   "'embedded'): its family's coordinate space and its processor's pixel limits")
    p.add_argument("--config", metavar="RECIPE", help="with --for-model: the training recipe whose min_pixels/"
                   "max_pixels the run will use (e.g. recipes/qwen2.5-vl-7b/sft.yaml)")
    p.add_argument("--coords", choices=SPACES, default=None,
                   help="coordinate space of boxes in the text (default: --for-model's, else pixel)")
    p.add_argument("--min-pixels", type=int, default=None, metavar="N",
                   help=f"resized space: processor min_pixels (default: --for-model's, else {QWEN_MIN_PIXELS})")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help=f"resized space: processor max_pixels (default: --for-model's, else {QWEN_MAX_PIXELS})")
    _teacher_arguments(p.add_argument_group("teacher mode"))
    p.set_defaults(func=run)


def _teacher_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--base-url", metavar="URL", help="OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--model", metavar="NAME", help="model name the endpoint serves")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the API key (default OPENAI_API_KEY); never printed or written")
    g.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests in flight at once (default 4)")
    g.add_argument("--max-attempts", type=int, default=3, metavar="N",
                   help="replies asked per sample before it is rejected (default 3)")
    g.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds per request (default 120)")
    g.add_argument("--http-retries", type=int, default=5, metavar="N",
                   help="retries of one request on 429, 5xx, timeouts and connection errors (default 5)")
    g.add_argument("--backoff", type=float, default=1.0, metavar="S",
                   help="first retry delay in seconds, doubled each retry, plus jitter (default 1)")
    g.add_argument("--temperature", type=float, default=0.2, metavar="T", help="sampling temperature (default 0.2)")
    g.add_argument("--max-tokens", type=int, default=1024, metavar="N", help="reply length limit (default 1024)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirg.data.trajectories import (
        TrajectoryOptions, build_template, check_detail, check_out_dir, coords_text, load_dataset, space_for,
    )
    from mirg.errors import MirgError

    space, model = space_for(args.coords, args.min_pixels, args.max_pixels, args.for_model, args.config)
    opts = TrajectoryOptions(space, args.detail, args.order, model)
    if args.mode == "teacher":
        config = _teacher_config(args)  # bad flags fail before any file is read
    dataset = load_dataset(args.data)
    if args.mode == "template" or args.detail == "full":  # teacher mode lists objects only in full detail
        check_detail(dataset.samples, args.detail)
    out = Path(args.out)
    check_out_dir(dataset, out)
    if args.mode == "template":
        report = build_template(dataset, out, opts)
        print(f"wrote {sum(report.accepted.values())} trajectories for {len(dataset.samples)} samples -> {out}")
        print(f"boxes in {coords_text(space)}{f' for {model[0]}' if model else ''} (recorded in trajectories.json)")
        return 0
    from mirg.data.teacher import REJECTED_FILE, run_teacher

    report, error = run_teacher(dataset, out, opts, config)
    accepted, reasons = sum(report.accepted.values()), report.rejections_by_kind()
    print(f"teacher: {accepted} accepted, {sum(reasons.values())} rejected of {len(dataset.samples)} samples -> {out}")
    if reasons:
        print(f"rejected: {describe_reasons(reasons)} (each sample's reply and why: {out / REJECTED_FILE})")
    if error:
        raise MirgError(error)
    if not accepted and reasons:  # an empty sft.jsonl would only fail later, in `mirg sft`
        raise MirgError(f"no trajectory was accepted ({describe_reasons(reasons)}); see {out / REJECTED_FILE}")
    return 0


def describe_reasons(reasons) -> str:
    """``12 unreadable reply, 3 low iou``: the most common first, ties by name (the same text every run)."""
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{count} {reason}" for reason, count in ordered)


def _teacher_config(args: argparse.Namespace):
    from mirg.data.teacher import TeacherConfig
    from mirg.errors import MirgError

    if not args.base_url or not args.model:
        raise MirgError("--mode teacher needs --base-url and --model")
    return TeacherConfig(
        base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, concurrency=args.concurrency,
        max_attempts=args.max_attempts, timeout=args.timeout, http_retries=args.http_retries,
        backoff=args.backoff, temperature=args.temperature, max_tokens=args.max_tokens,
    )
