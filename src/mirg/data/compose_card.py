"""The dataset card of a composed dataset: ``README.md`` with the families' rules, the coverage of the
annotations, counts, balance tables and one example picture per task (``examples/<task>.png``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mirg.data.compose_rules import NEEDS, RULES
from mirg.data.synth_card import balance_sections, example_sections, markdown_table, write_examples


def family_lines(tasks: tuple[str, ...]) -> list[str]:
    """Each family's rule, and what the refused ones would need."""
    lines = [f"- **{task}**: {RULES[task]}." for task in tasks]
    lines += ["", "Families detection annotations can't express, refused: "
              + "; ".join(f"{task} (needs {need})" for task, need in NEEDS.items()) + ".", ""]
    return lines


def coverage_rows(result: Any, with_captions: bool) -> list[list]:
    """How much of the annotations the samples could draw on, and why the rest could not."""
    pool = result.pool
    coco = pool.coco
    rows = [
        ["annotated images", len(coco.images)],
        ["usable photos (file found, size as annotated)", len(pool.ids)],
        ["annotations", coco.annotations],
        ["objects attached to the photos", coco.attached],
        ["crowd regions (not objects; their category still counts as shown)", coco.crowd],
        [f"objects smaller than {pool.min_size} px on a side (never cut out or asked for)", pool.too_small],
    ]
    for reason, n in sorted(Counter(r["reason"] for r in coco.rejected + pool.rejected).items()):
        rows.append([f"rejected: {reason}", n])
    if with_captions:
        rows.append(["photos of the samples with a caption as their note", result.captioned])
    return rows


def _region_rows(result: Any) -> list[list]:
    rows = sorted((n, k, count) for (task, n, k), count in result.positions.items() if task == "region")
    by_n: dict[int, dict[int, int]] = {}
    for n, k, count in rows:
        by_n.setdefault(n, {})[k] = count
    return [[n] + [by_n[n].get(k, "") for k in range(1, 5)] for n in sorted(by_n)]


def write_card(cfg: Any, result: Any, out: Path, with_captions: bool) -> None:
    """Write ``out/README.md`` and ``out/examples/<task>.png`` for the samples (already on disk). ``cfg`` and
    ``result`` are :mod:`mirg.data.compose`'s config and result (the composer calls this, not the other way)."""
    samples = result.samples
    first = write_examples(out, samples)
    note = ("its first caption from the captions file, else" if with_captions else "(no captions file was given)")
    lines = [
        "# Multi-image grounding samples composed from COCO-format annotations",
        "",
        f"{len(samples)} samples over {len({i for s in samples for i in s.extra['coco_images']})} photos and "
        f"{result.crops} crops, made by:",
        "",
        f"    {cfg.command_line()}",
        "",
        "Boxes are `[x1, y1, x2, y2]` in pixels of each image (COCO's `[x, y, width, height]` converted). Every "
        "image carries its objects (label = category name) and a note: for a photo, "
        f"{note} a summary of its annotated objects (`a photo with these annotated objects: person (2), dog`); for "
        "a crop, `a close-up of a dog`. Each record's `hints` names the target object, the reference (the crop a "
        "question points at) and the rule; `coco_images` the COCO image id behind each image. Photos are "
        "referenced where they are; crops are in `images/`. Every image or annotation not used is in "
        "`rejected.jsonl` with its reason.",
        "",
        "## Families and their rules",
        "",
        *family_lines(cfg.tasks),
        "## Coverage of the annotations",
        "",
        *markdown_table(["", "count"], coverage_rows(result, with_captions)),
        *balance_sections(samples, cfg.tasks, "balanced within each row where the layout lets the target move: "
                          "refer_grounding's target is image 2 and region's image 1 by MIG-Bench's layout"),
    ]
    if any(s.task == "region" for s in samples):
        lines += ["## Region asked for", "", "Region samples per region picture the question asks for (balanced).",
                  "", *markdown_table(["images", "1st", "2nd", "3rd", "4th"], _region_rows(result))]
    lines += [f"Draws thrown away: {result.retries} (no photos fitted), {result.rejects} (failed the answer check).",
              "", *example_sections(first, cfg.tasks)]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
