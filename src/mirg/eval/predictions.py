"""Read and write predictions: JSONL ``{"id", "response"}`` lines, or MIG-Bench result files."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.eval import migbench
from mirg.errors import MirgError
from mirg.textfiles import json_object_lines, open_text


@dataclass
class PredictionFile:
    """One predictions input: either id-keyed responses or MIG-Bench result records (no ids)."""

    path: Path
    by_id: dict[str, str] | None = None
    results: list[migbench.ResultRecord] | None = None


def read_json_file(path: Path) -> Any:
    """Parse a whole JSON file, with a one-line reason on failure."""
    with open_text(path) as handle:
        try:
            return json.load(handle)
        except UnicodeDecodeError:
            raise  # open_text's to explain
        except ValueError as exc:
            raise MirgError(f"{path}: unreadable JSON ({exc})") from None


def _first_char(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    except FileNotFoundError:
        raise MirgError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MirgError(f"{path}: is a folder, expected a predictions file") from None
    return head[:1].decode("ascii", "replace")


def read_predictions_jsonl(path: Path) -> dict[str, str]:
    """``id -> response`` from a JSONL file; a bad or duplicate line is an error naming the line."""
    out: dict[str, str] = {}
    with path.open(encoding="utf-8-sig", errors="replace") as handle:  # a model's text may hold any bytes
        for where, record in json_object_lines(handle, path, "a JSON object with id and response"):
            pid, response = record.get("id"), record.get("response")
            if not isinstance(pid, str):
                raise MirgError(f"{where}: id: missing field (a string)")
            if not isinstance(response, str):
                raise MirgError(f"{where}: response: missing field (the raw model text)")
            if pid in out:
                raise MirgError(f"{where}: id: duplicate id {pid!r}")
            out[pid] = response
    return out


def read_prediction_file(path: str | Path) -> PredictionFile:
    """Detect the kind of a predictions file (JSONL vs MIG-Bench result JSON) and read it."""
    path = Path(path)
    if _first_char(path) == "[" or path.suffix == ".json":
        data = read_json_file(path)
        if not migbench.is_result_file(data):
            raise MirgError(
                f"{path}: not a MIG-Bench result file (a JSON list of records closed by a summary record) "
                "nor predictions JSONL"
            )
        return PredictionFile(path=path, results=migbench.read_result_file(data, path))
    return PredictionFile(path=path, by_id=read_predictions_jsonl(path))


def merge_by_id(files: list[PredictionFile]) -> dict[str, str]:
    """All id-keyed responses of ``files``; an id given twice is an error."""
    merged: dict[str, str] = {}
    for f in files:
        for pid, response in (f.by_id or {}).items():
            if pid in merged:
                raise MirgError(f"{f.path}: id {pid!r} was already given by another predictions file")
            merged[pid] = response
    return merged


def append_prediction(handle, sample_id: str, response: str, **extra: Any) -> None:
    """Append one prediction line and flush, so an interrupted run loses nothing written."""
    handle.write(json.dumps({"id": sample_id, "response": response, **extra}, ensure_ascii=False) + "\n")
    handle.flush()
