"""Trajectory files (``sft.jsonl`` / ``rl.jsonl``) as datasets whose images load lazily.

Records keep image *paths*; the pixels are read only when a row is fetched for a batch (a ``datasets``
transform), so a large dataset never sits in memory as images. Every record is checked up front: a
missing column names the column, the file and the line; a missing image file names the path. The space the
folder's boxes are written in (its ``trajectories.json``) must be the run's: the model family's coordinate space
and, for ``resized`` boxes, the pixel limits the run's processor resizes images at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mirg.errors import MirgError
from mirg.prompts import COORD_HINTS, instruction
from mirg.textfiles import json_object_lines, open_text

#: The file and the columns each stage needs.
STAGE_FILES = {"sft": "sft.jsonl", "grpo": "rl.jsonl"}
STAGE_COLUMNS = {
    "sft": ("prompt", "completion", "images"),
    "grpo": ("prompt", "images", "target_image", "target_box", "image_sizes"),
}


def data_file(data_dir: str | Path, stage: str) -> Path:
    folder = Path(data_dir)
    if not folder.is_dir():
        raise MirgError(f"data folder {folder} does not exist (expected a trajectories folder)")
    file = folder / STAGE_FILES[stage]
    if not file.is_file():
        raise MirgError(f"{folder}: no {STAGE_FILES[stage]} (build it with `mirg data trajectories`)")
    return file


def read_records(file: Path, columns: tuple[str, ...], limit: int | None = None) -> list[dict[str, Any]]:
    """Records of a JSONL file, each checked for ``columns`` and for its image files."""
    records = []
    with open_text(file) as handle:
        for where, record in json_object_lines(handle, file, "a JSON object (a record)"):
            records.append(_check_record(record, columns, file, where))
            if limit is not None and len(records) >= limit:
                break
    if not records:
        raise MirgError(f"{file}: no records")
    return records


def _check_record(record: dict, columns: tuple[str, ...], file: Path, where: str) -> dict:
    missing = [c for c in columns if c not in record]
    if missing:
        raise MirgError(f"{where}: missing column {missing[0]!r} (each record needs {', '.join(columns)})")
    images = record["images"]
    if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
        raise MirgError(f"{where}: 'images' must be a list of paths relative to {file.parent}")
    placeholders = count_image_parts(record["prompt"])
    if placeholders != len(images):
        raise MirgError(f"{where}: prompt has {placeholders} image placeholder(s) but {len(images)} image(s)")
    for rel in images:
        if not (file.parent / rel).is_file():
            raise MirgError(f"{where}: image {rel} not found in {file.parent}")
    return record


def count_image_parts(prompt: Any) -> int:
    """Image placeholders (``{"type": "image"}``) in a conversational prompt."""
    if not isinstance(prompt, list):
        return 0
    return sum(
        1
        for message in prompt
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image"
    )


def message_texts(messages: Any) -> list[str]:
    """The text parts of a conversation's messages (a message's content is a string or a list of parts).

    >>> message_texts([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}]},
    ...                {"role": "user", "content": "b"}])
    ['a', 'b']
    """
    texts = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            parts = [part for part in content if isinstance(part, dict) and part.get("type") != "image"]
            texts += [part.get("text") or "" for part in parts]
    return texts


def prompt_coords(prompt: Any) -> str | None:
    """The coordinate space a prompt's answer-format instruction asks for, if it carries one.

    >>> from mirg.prompts import user_message
    >>> prompt_coords(user_message("Find it.", 2, "norm1000"))
    'norm1000'
    """
    text = "".join(message_texts(prompt))
    for space in COORD_HINTS:
        if instruction(space) in text:
            return space
    return None


def check_coords(records: list[dict], coords: str, file: Path, family: str) -> None:
    """Fail when the data asks for boxes in another space than the model family writes."""
    asked = prompt_coords(records[0]["prompt"])
    if asked is not None and asked != coords:
        raise MirgError(
            f"{file}: prompts ask for {asked} boxes but {family} models answer in {coords}; rebuild the "
            f"trajectories for {coords} coordinates"
        )


def check_space(records: list[dict], file: Path, adapter) -> None:
    """Fail when the folder's recorded space (``trajectories.json``) is not the run's: another coordinate space than
    ``adapter``'s family answers in, or ``resized`` boxes written at other pixel limits than the run resizes at (the
    same photo's box differs with them). A folder written before the record existed is checked by its prompts'
    instruction alone, and said so once where that leaves something unchecked."""
    from mirg.data.trajectories import read_space_record
    from mirg.formats import RECORD_FILE

    check_coords(records, adapter.coords, file, adapter.family)
    record = read_space_record(file.parent)
    if record is None:
        if adapter.coords == "resized" or prompt_coords(records[0]["prompt"]) is None:
            warn(f"{file.parent}: no {RECORD_FILE}, so the space of its boxes is read from the prompts and their "
                 "pixel limits cannot be checked; rebuild it with `mirg data trajectories --for-model MODEL` to "
                 "record them")
        return
    where = file.parent / RECORD_FILE
    if record["coords"] != adapter.coords:
        raise MirgError(f"{where}: the boxes are in {record['coords']} coordinates but {adapter.family} models "
                        f"answer in {adapter.coords}; rebuild the trajectories with `mirg data trajectories "
                        "--for-model MODEL`")
    written, run = (record["min_pixels"], record["max_pixels"]), (adapter.min_pixels, adapter.max_pixels)
    if adapter.coords == "resized" and written != run:
        raise MirgError(f"{where}: the boxes are in resized pixels at min_pixels {written[0]}, max_pixels "
                        f"{written[1]} but this run resizes images at min_pixels {run[0]}, max_pixels {run[1]}; "
                        f"rebuild them with `mirg data trajectories --for-model MODEL --min-pixels {run[0]} "
                        f"--max-pixels {run[1]}` (or --config RECIPE), or run with --min-pixels {written[0]} "
                        f"--max-pixels {written[1]}")


def warn(message: str) -> None:
    """A warning on standard error, once per run (the main process's, under ``accelerate launch``)."""
    import os
    import sys

    if os.environ.get("RANK", "0") == "0":
        print(f"mirg: warning: {message}", file=sys.stderr)


def image_loader(root: Path):
    """A ``datasets`` transform that turns the ``images`` column's relative paths into RGB PIL images."""

    def load(batch: dict[str, list]) -> dict[str, list]:
        from PIL import Image

        if "images" in batch:
            batch["images"] = [[_open_rgb(root / rel, Image) for rel in paths] for paths in batch["images"]]
        return batch

    return load


def _open_rgb(path: Path, image_module):
    with image_module.open(path) as image:
        return image.convert("RGB")


def build_dataset(records: list[dict], root: Path):
    """A ``datasets.Dataset`` of ``records`` whose ``images`` become PIL images when rows are read."""
    from datasets import Dataset

    dataset = Dataset.from_list(records)
    return dataset.with_transform(image_loader(root))


def load_stage_records(data_dir: str | Path, stage: str, adapter, limit: int | None = None) -> tuple[list[dict], Path]:
    """Checked records of the stage's file (columns, image files, the space of their boxes) and the file's path."""
    file = data_file(data_dir, stage)
    records = read_records(file, STAGE_COLUMNS[stage], limit)
    check_space(records, file, adapter)
    return records, file


def load_stage_data(data_dir: str | Path, stage: str, adapter, limit: int | None = None):
    """Checked records of the stage's file as a lazily-loading dataset, plus the file path and count."""
    records, file = load_stage_records(data_dir, stage, adapter, limit)
    return build_dataset(records, file.parent), file, len(records)
