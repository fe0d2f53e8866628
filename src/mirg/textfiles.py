"""Text files users hand to mirg (manifests, predictions, trajectories, scores): UTF-8, with or without the byte-order
mark some editors write, and a one-line error naming the file where it is not UTF-8 text or not there."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

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
