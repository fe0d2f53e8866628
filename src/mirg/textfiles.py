"""Text files users hand to mirg (manifests, predictions, trajectories, scores): UTF-8, with or without the byte-order
mark some editors write, and a one-line error naming the file where it is not UTF-8 text or not there."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from mirg.errors import MirgError


@contextmanager
def open_text(path: str | Path) -> Iterator[TextIO]:
    """``path`` opened for reading as UTF-8 (a leading byte-order mark skipped). A file that is not there, is a
    folder, or holds bytes that are not UTF-8 (found while it is read, inside the ``with`` block) ends in one line.

    >>> import tempfile
    >>> file = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = file.write_bytes(b"\\xef\\xbb\\xbf{}\\n")
    >>> with open_text(file) as handle:
    ...     handle.read()
    '{}\\n'
    >>> _ = file.write_bytes(b"{}\\n\\xff\\n")
    >>> with open_text(file) as handle:
    ...     lines = list(handle)
    Traceback (most recent call last):
    mirg.errors.MirgError: .../x.jsonl: not UTF-8 text (invalid start byte)
    """
    try:
        with Path(path).open(encoding="utf-8-sig") as handle:
            yield handle
    except UnicodeDecodeError as exc:
        raise MirgError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except FileNotFoundError:
        raise MirgError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MirgError(f"{path}: is a folder, expected a file") from None


def json_object_lines(lines: Iterable[str], source: str | Path, what: str = "a JSON object") -> Iterator[tuple[str, dict]]:
    """``(where, record)`` for every non-blank line of a JSON Lines text, ``where`` being ``source:line``; a line that
    is not JSON, or not ``what`` (an object), ends in one line naming it.

    >>> list(json_object_lines(['{"id": "a"}\\n', '\\n', '{"id": "b"}\\n'], "x.jsonl"))
    [('x.jsonl:1', {'id': 'a'}), ('x.jsonl:3', {'id': 'b'})]
    >>> list(json_object_lines(['[1]'], "x.jsonl"))
    Traceback (most recent call last):
    mirg.errors.MirgError: x.jsonl:1: must be a JSON object
    """
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise MirgError(f"{where}: unreadable JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(record, dict):
            raise MirgError(f"{where}: must be {what}")
        yield where, record
