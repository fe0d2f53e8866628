"""Object-level and image-level annotations from COCO-format files attached to a manifest: ``mirg data annotate``.

An image of the manifest is matched to a COCO image by file name: the base name, and where several COCO images
share it, the one whose ``file_name`` (its folders included) ends the manifest's path. A match whose COCO
width/height differ from the image's size is reported, never rescaled, and left unannotated.

A sample gets ``objects`` only when every one of its images matched (an empty list would claim that an image
holds nothing), and with captions, ``image_notes``: each image's first caption, or for an image without one a
summary of its objects (:func:`mirg.data.coco.objects_note`). Other samples are written as they were.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mirg.data.coco import CocoImage, CocoSet, objects_note
from mirg.errors import MirgError
from mirg.geometry import iou
from mirg.schema import ObjectAnn, Sample

#: A target box that overlaps an attached object at least this much counts as matching it (a sanity figure).
MATCH_IOU = 0.5
LISTED = 20


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in (".", ""))


def match_image(rel: str, by_name: dict[str, list[CocoImage]]) -> tuple[CocoImage | None, str | None]:
    """The COCO image a manifest path names, or ``(None, reason)``.

    >>> a, b = CocoImage(1, "v1/x.jpg", (9, 9)), CocoImage(2, "v2/x.jpg", (9, 9))
    >>> match_image("../photos/v2/x.jpg", {"x.jpg": [a, b]})[0].id
    2
    >>> match_image("x.jpg", {"x.jpg": [a, b]})[1]
    'ambiguous: 2 annotated images are named x.jpg'
    """
    parts = _parts(rel)
    candidates = by_name.get(parts[-1] if parts else "", [])
    if len(candidates) == 1:
        return candidates[0], None
    if not candidates:
        return None, "no annotated image of that name"
    ending = [c for c in candidates if parts[-len(_parts(c.file_name)):] == _parts(c.file_name)]
    if len(ending) == 1:
        return ending[0], None
    return None, f"ambiguous: {len(candidates)} annotated images are named {parts[-1]}"


@dataclass
class AnnotateReport:
    """What was attached and what could not be, for the card and the command's summary."""

    images_total: int = 0
    images_matched: int = 0
    images_annotated: int = 0  # distinct images of the samples that got objects
    objects: int = 0  # objects attached, over those images
    captions: int = 0
    samples_covered: int = 0
    samples_partly: int = 0
    targets_matching: int = 0
    unmatched: dict[str, str] = field(default_factory=dict)  # image path -> reason
    size_mismatches: list[dict] = field(default_factory=list)


def _match_all(samples: list[Sample], coco: CocoSet, report: AnnotateReport) -> dict[str, CocoImage]:
    """Match every distinct image path once; sizes that disagree are reported, not matched."""
    by_name: dict[str, list[CocoImage]] = {}
    for image in coco.images.values():
        by_name.setdefault(image.base_name, []).append(image)
    matched: dict[str, CocoImage] = {}
    for sample in samples:
        for rel, size in zip(sample.images, sample.image_sizes):
            if rel in matched or rel in report.unmatched:
                continue
            image, reason = match_image(rel, by_name)
            if image is not None and image.size != tuple(size):
                report.size_mismatches.append({"image": rel, "coco_file_name": image.file_name,
                                               "coco_size": list(image.size), "file_size": list(size)})
                image, reason = None, "size disagrees with the file"
            if image is None:
                report.unmatched[rel] = reason or "unmatched"
            else:
                matched[rel] = image
    report.images_total = len(matched) + len(report.unmatched)
    report.images_matched = len(matched)
    return matched


def annotate_samples(samples: list[Sample], coco: CocoSet, captions: dict[str, str] | None) -> AnnotateReport:
    """Attach objects (and, with ``captions``, notes) to every sample whose images all matched; in place."""
    report = AnnotateReport()
    matched = _match_all(samples, coco, report)
    annotated: set[str] = set()
    for sample in samples:
        images = [matched.get(rel) for rel in sample.images]
        if not all(images):
            report.samples_partly += any(images)
            continue
        objects = [list(coco.objects.get(image.id, [])) for image in images]
        sample.objects = objects
        if captions is not None:
            notes = [captions.get(image.base_name) for image in images]
            report.captions += sum(1 for n in notes if n)
            sample.image_notes = [n or objects_note(objs) for n, objs in zip(notes, objects)]
        report.samples_covered += 1
        report.targets_matching += _target_matches(sample.target.bbox, objects[sample.target.image - 1])
        annotated.update(sample.images)
    report.images_annotated = len(annotated)
    report.objects = sum(len(coco.objects.get(matched[rel].id, [])) for rel in annotated)
    return report


def _target_matches(box, objects: list[ObjectAnn]) -> bool:
    return any(iou(box, o.bbox) >= MATCH_IOU for o in objects)


def annotate_dataset(dataset, coco: CocoSet, out: Path, captions: dict[str, str] | None = None) -> AnnotateReport:
    """Annotate ``dataset`` (a checked :class:`mirg.data.trajectories.Dataset`) into ``out``: ``manifest.jsonl``
    with image paths relative to ``out``, ``README.md`` with the coverage and ``rejected.jsonl``."""
    from mirg.folders import check_output_folder
    from mirg.schema import write_manifest

    if out.resolve() == dataset.root.resolve():
        raise MirgError(f"--out {out}: is the dataset folder; choose another (its manifest would be overwritten)")
    check_output_folder(out, "--out", ["manifest.jsonl"], "manifest.jsonl, README.md and rejected.jsonl")
    samples = dataset.samples
    report = annotate_samples(samples, coco, captions)
    for sample in samples:
        sample.images = [os.path.relpath(os.path.abspath(dataset.root / rel), os.path.abspath(out))
                         for rel in sample.images]
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(samples, out / "manifest.jsonl")
    sizes = {m["image"]: m for m in report.size_mismatches}
    rows = coco.rejected + [{"image": rel, "reason": reason, **sizes.get(rel, {})}
                            for rel, reason in report.unmatched.items()]
    (out / "rejected.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                        encoding="utf-8")
    (out / "README.md").write_text(card_text(dataset.manifest, coco, report, len(samples), captions is not None),
                                   encoding="utf-8")
    return report


def card_text(source: Path, coco: CocoSet, report: AnnotateReport, n_samples: int, with_captions: bool) -> str:
    """README.md: coverage, what was rejected and why, and every size disagreement (the first :data:`LISTED`)."""
    from collections import Counter

    from mirg.data.synth_card import markdown_table

    rows = [
        ["images matched to an annotated image / all", f"{report.images_matched} / {report.images_total}"],
        ["images annotated (every image of their sample matched) / all",
         f"{report.images_annotated} / {report.images_total}"],
        ["objects attached (over the annotated images)", report.objects],
        ["samples fully annotated / all", f"{report.samples_covered} / {n_samples}"],
        ["samples with only some images matched (left as they were)", report.samples_partly],
        [f"targets overlapping an attached object at IoU >= {MATCH_IOU}", f"{report.targets_matching} / "
                                                                          f"{report.samples_covered}"],
        ["crowd regions skipped", coco.crowd],
    ]
    if with_captions:
        rows.append(["images of annotated samples with a caption as note", report.captions])
    reasons = Counter(r["reason"] for r in coco.rejected) + Counter(report.unmatched.values())
    lines = [
        "# Manifest with COCO-format annotations", "",
        f"Made by `mirg data annotate` from `{source}` and `{coco.path.name}`. Objects: label = category name, "
        "bbox = `[x1, y1, x2, y2]` pixels (COCO's `[x, y, width, height]` converted). A sample gets objects only "
        "when all its images matched." + (" Notes: each image's first caption, else a summary of its objects."
                                          if with_captions else ""), "",
        "## Coverage", "", *markdown_table(["", "count"], rows),
        "## Not used", "", "Every image and annotation not used is in `rejected.jsonl` with its reason.", "",
        *markdown_table(["reason", "count"], [[r, n] for r, n in sorted(reasons.items())] or [["(none)", 0]]),
    ]
    if report.size_mismatches:
        shown = report.size_mismatches[:LISTED]
        lines += ["## Size disagreements", "",
                  f"{len(report.size_mismatches)} image(s) whose COCO width/height differ from the file (left "
                  "unannotated, never rescaled)" + (f"; the first {LISTED}:" if len(shown) < len(
                      report.size_mismatches) else ":"), "",
                  *markdown_table(["image", "COCO file_name", "COCO size", "file size"],
                                  [[m["image"], m["coco_file_name"], "x".join(map(str, m["coco_size"])),
                                    "x".join(map(str, m["file_size"]))] for m in shown])]
    return "\n".join(lines)
