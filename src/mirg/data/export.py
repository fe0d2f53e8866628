"""SFT trajectories in another trainer's dataset format: ``mirg data export llamafactory``.

LLaMA-Factory reads multimodal SFT data in its ShareGPT layout: per record a ``messages`` list (``role`` /
``content``, user then assistant) and an ``images`` list, the user text holding one ``<image>`` placeholder per
image, in order; ``dataset_info.json`` names the file with ``formatting: sharegpt`` and its columns and tags.

The user text is the prompt of ``sft.jsonl`` with each image part replaced by ``<image>`` and the parts joined
as a chat template joins them (``Image 1:<image>Image 2:<image>question...``); the assistant text is the
completion, unchanged. Image paths are relative to the export folder, which LLaMA-Factory resolves against its
``media_dir`` (by default its ``dataset_dir``), or absolute on request.

>>> row = {"prompt": [{"role": "user", "content": [{"type": "text", "text": "Image 1:"}, {"type": "image"},
...        {"type": "text", "text": "Where?"}]}]}
>>> user_text(row, "sft.jsonl:1")
('Image 1:<image>Where?', 1)
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirg.errors import MirgError
from mirg.textfiles import json_object_lines, open_text

IMAGE_TOKEN = "<image>"
EXPORT_FILES = ("dataset_info.json",)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


@dataclass
class ExportReport:
    records: int = 0
    images: int = 0
    coords: Counter = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _one_message(row: dict, key: str, role: str, where: str) -> dict:
    messages = row.get(key)
    if not (isinstance(messages, list) and len(messages) == 1 and isinstance(messages[0], dict)
            and messages[0].get("role") == role):
        raise MirgError(f"{where}: {key} must be one {role} message, as `mirg data trajectories` writes it")
    return messages[0]


def user_text(row: dict, where: str) -> tuple[str, int]:
    """The prompt as one string with ``<image>`` where each image goes, and the number of images."""
    content = _one_message(row, "prompt", "user", where).get("content")
    if isinstance(content, str):
        return content, content.count(IMAGE_TOKEN)
    if not isinstance(content, list):
        raise MirgError(f"{where}: prompt content must be a list of text and image parts")
    pieces, images = [], 0
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image":
            pieces.append(IMAGE_TOKEN)
            images += 1
        elif kind == "text" and isinstance(part.get("text"), str):
            pieces.append(part["text"])
        else:
            raise MirgError(f"{where}: prompt part {part!r} is neither text nor an image")
    return "".join(pieces), images


def assistant_text(row: dict, where: str) -> str:
    """The completion's text (the answer the model is trained to write)."""
    content = _one_message(row, "completion", "assistant", where).get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise MirgError(f"{where}: completion content must be text")


def coords_of(text: str) -> str | None:
    """The coordinate space a prompt asks for, read from the instruction it ends with."""
    from mirg.prompts import COORD_HINTS, instruction

    return next((c for c in COORD_HINTS if text.endswith(instruction(c))), None)


def read_rows(path: Path) -> list[tuple[str, dict]]:
    """``(where, row)`` for every line of an ``sft.jsonl``; unreadable JSON ends in one line naming it."""
    with open_text(path) as handle:
        return list(json_object_lines(handle, path))


def _image_files(row: dict, where: str, root: Path, count: int) -> list[Path]:
    images = row.get("images")
    if not (isinstance(images, list) and all(isinstance(p, str) and p for p in images)):
        raise MirgError(f"{where}: images must be a list of paths")
    if len(images) != count:
        raise MirgError(f"{where}: the prompt has {count} image part(s) but images lists {len(images)}")
    return [Path(os.path.abspath(root / p)) for p in images]


def convert_row(row: dict, where: str, root: Path, out: Path, absolute: bool) -> tuple[dict | None, str | None,
                                                                                         list[Path]]:
    """One LLaMA-Factory record, or ``(None, reason)`` for a row it would misread; and the row's image files."""
    text, count = user_text(row, where)
    answer = assistant_text(row, where)
    files = _image_files(row, where, root, count)
    if text.count(IMAGE_TOKEN) != count or IMAGE_TOKEN in answer:
        return None, f"the text holds a literal {IMAGE_TOKEN}, which LLaMA-Factory would read as an image", files
    paths = [str(f) if absolute else os.path.relpath(f, os.path.abspath(out)) for f in files]
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    record = {"id": row.get("id"), "messages": messages, "images": paths}
    return record, None, files


def _check_folders(traj: Path, out: Path, name: str) -> Path:
    from mirg.folders import check_output_folder

    if not _NAME.fullmatch(name):
        raise MirgError(f"--name {name!r}: use letters, digits, '_', '.' or '-' (it names the file and the dataset)")
    sft = traj / "sft.jsonl"
    if not sft.is_file():
        raise MirgError(f"--trajectories {traj}: no sft.jsonl there (make it with `mirg data trajectories`)")
    if out.resolve() == traj.resolve():
        raise MirgError(f"--out {out}: is the trajectories folder; choose another (its README.md would be overwritten)")
    check_output_folder(out, "--out", EXPORT_FILES, f"{name}.jsonl, dataset_info.json and README.md")
    return sft


def export_llamafactory(traj: Path, out: Path, name: str = "mirg_sft", absolute: bool = False) -> ExportReport:
    """Write ``out/NAME.jsonl``, ``out/dataset_info.json`` and ``out/README.md`` from ``traj/sft.jsonl``."""
    sft = _check_folders(traj, out, name)
    report, records, missing = ExportReport(), [], []
    for where, row in read_rows(sft):
        record, reason, files = convert_row(row, where, traj, out, absolute)
        missing += [f for f in files if not f.is_file()]
        if record is None:
            report.rejected.append({"id": row.get("id"), "where": where, "reason": reason})
            continue
        records.append(record)
        report.images += len(record["images"])
        report.coords[coords_of(record["messages"][0]["content"]) or "unknown"] += 1
    if missing:
        raise MirgError(f"{len(missing)} image file(s) of {sft} missing, the first: {missing[0]}")
    if not records:
        why = f" ({len(report.rejected)} left out: {report.rejected[0]['reason']})" if report.rejected else ""
        raise MirgError(f"{sft}: no record to export{why}")
    report.records = len(records)
    report.warnings += coords_warnings(report.coords, traj)
    write_export(out, name, records, report, traj, absolute)
    return report


def coords_warnings(coords: Counter, traj: Path) -> list[str]:
    """Boxes in Qwen2.5-VL's resized pixels only mean something at the processor's exact image size."""
    if "resized" not in coords:
        return []
    limits = resized_limits(traj)
    return [f"the answers' boxes are in resized pixels{limits}: LLaMA-Factory must hand the processor each image at "
            "the size those limits give (see the export's README.md), or build the trajectories with --coords "
            "norm1000 or pixel"]


def resized_limits(traj: Path) -> str:
    """`` (min_pixels A, max_pixels B)`` as the trajectories' README.md records them, else ``""``."""
    readme = traj / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else ""
    match = re.search(r"coords: resized (\(min_pixels \d+, max_pixels \d+\))", text)
    return f" {match.group(1)}" if match else ""


def write_export(out: Path, name: str, records: list[dict], report: ExportReport, traj: Path, absolute: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    info = {name: {"file_name": f"{name}.jsonl", "formatting": "sharegpt",
                   "columns": {"messages": "messages", "images": "images"}, "tags": TAGS}}
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    rejected = out / "rejected.jsonl"
    if report.rejected:
        rows = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.rejected)
        rejected.write_text(rows, encoding="utf-8")
    elif rejected.exists():
        rejected.unlink()
    (out / "README.md").write_text(readme_text(name, report, traj, out, absolute), encoding="utf-8")


def readme_text(name: str, report: ExportReport, traj: Path, out: Path, absolute: bool) -> str:
    """How to train on the export in LLaMA-Factory, and what its boxes mean."""
    coords = ", ".join(f"{c} ({n})" for c, n in sorted(report.coords.items()))
    paths = ("absolute" if absolute else "relative to this folder: run LLaMA-Factory with `dataset_dir` set to this "
             "folder (its `media_dir` defaults to `dataset_dir`, against which it resolves them)")
    lines = [
        f"# {name}: SFT trajectories for LLaMA-Factory", "",
        f"Exported by `mirg data export llamafactory` from `{traj}`: {report.records} records, {report.images} "
        "images" + (f"; {len(report.rejected)} left out, each in `rejected.jsonl` with its reason." if report.rejected
                    else "."), "",
        f"- `{name}.jsonl`: ShareGPT multimodal records (`messages`: user then assistant; `images`), one `<image>` "
        "per image in the user text, in the order of `images`.",
        f"- `dataset_info.json`: names `{name}` (`formatting: sharegpt`, columns `messages` and `images`).",
        f"- image paths: {paths}.",
        f"- boxes in the answers: {coords} coordinates, as the prompts ask for them.", "",
        "A training config names it:", "",
        "```yaml", "stage: sft", "do_train: true", "template: qwen2_vl", f"dataset_dir: {os.path.abspath(out)}",
        f"dataset: {name}", "```", "",
    ]
    if report.warnings:
        lines += ["Warning: " + w + ". LLaMA-Factory downscales an image above `image_max_pixels` itself before the "
                  "processor resizes it; set `image_max_pixels` and `image_min_pixels` so that no image is resized "
                  "other than as the trajectories assumed." for w in report.warnings] + [""]
    return "\n".join(lines)
