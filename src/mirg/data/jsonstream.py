"""Big JSON files read as a stream with ijson: never the whole document in memory, a progress bar over the bytes,
and one line, not a traceback, where a file breaks off or does not parse.

- :func:`stream_json_records`: the records of a JSON list (``[{...}, ...]``) or of a JSON Lines file (the
  converters' sources: MGrounding-630k, VLM-R1);
- :func:`array_items`: the elements of some top-level arrays of one JSON object (a COCO file's ``images``,
  ``annotations`` and ``categories``), one pass over the file per array, each holding one element at a time.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "x.json"
>>> _ = path.write_text('{"info": {"v": 1}, "images": [{"id": 1}, {"id": 2}], "categories": [{"id": 3}]}')
>>> list(array_items(path, ("images", "categories"), progress=False))
[('images', {'id': 1}), ('images', {'id': 2}), ('categories', {'id': 3})]
>>> _ = path.write_text('{"images": [{"id": 1}, {"id"')
>>> list(array_items(path, ("images",), progress=False))
Traceback (most recent call last):
mirg.errors.MirgError: .../x.json: the JSON breaks off at the end of the file, after 'images' element 1 (id 1): ...
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from mirg.errors import MirgError, first_line


def open_json_bytes(path: Path):
    """``path`` opened for reading bytes, positioned after a UTF-8 byte-order mark if it has one."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise MirgError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MirgError(f"{path}: is a folder, expected a JSON file") from None
    head = handle.read(len(codecs.BOM_UTF8))
    handle.seek(len(head) if head == codecs.BOM_UTF8 else 0)
    return handle


def stream_json_records(path: Path, progress: bool = True) -> Iterator[tuple[int, Any]]:
    """``(position, record)`` for every record of a JSON list (``[{...}, ...]``) or a JSON Lines file,
    read as a stream with a progress bar over the file's bytes. Position: the record's number in a list,
    its line in JSON Lines. A file that breaks off or does not parse ends in one line."""
    handle = open_json_bytes(path)
    with handle, _byte_bar(path, progress) as bar:
        start = handle.tell()
        first = handle.read(4096).lstrip()[:1]
        handle.seek(start)
        if first == b"[":
            yield from _json_list(handle, path, bar)
        elif first == b"{":
            yield from _json_lines(handle, path, bar)
        else:
            found = "it is empty" if not first else f"it starts with {first.decode('latin-1')!r}"
            raise MirgError(f"{path}: neither a JSON list of records nor JSON Lines ({found})")


def _byte_bar(path: Path, progress: bool, what: str = ""):
    from tqdm import tqdm

    return tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"reading {path.name}{what}",
                disable=None if progress else True, leave=False, mininterval=0.5)


#: Records between two progress-bar updates (a file position query is not free).
_BAR_EVERY = 1024


def _json_list(handle, path: Path, bar) -> Iterator[tuple[int, Any]]:
    import ijson

    count, last = 0, None
    try:
        for count, last in enumerate(ijson.items(handle, "item", use_float=True), start=1):
            if count % _BAR_EVERY == 0:
                bar.update(handle.tell() - bar.n)
            yield count, last
    except ijson.JSONError as exc:
        raise MirgError(_broken(path, exc, count, last)) from None


def _broken(path: Path, exc: Exception, count: int, last: Any, what: str = "record") -> str:
    """One line saying where a JSON file breaks and that nothing was written."""
    text = first_line(exc).removeprefix("b'").removeprefix('b"').split("\\n")[0].strip()
    last_id = f" (id {last['id']})" if isinstance(last, dict) and "id" in last else ""
    where = f"after {what} {count}{last_id}" if count else f"before its first {what}"
    if "premature EOF" in text:
        return (f"{path}: the JSON breaks off at the end of the file, {where}: the file is truncated (download "
                "it again); nothing was written")
    return f"{path}: unreadable JSON {where} ({text}); nothing was written"


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _json_lines(handle, path: Path, bar) -> Iterator[tuple[int, Any]]:
    for lineno, raw in enumerate(handle, start=1):
        if lineno % _BAR_EVERY == 0:
            bar.update(handle.tell() - bar.n)
        if not raw.strip():
            continue
        try:
            record = json.loads(raw, parse_constant=_refuse_constant)
        except UnicodeDecodeError:
            raise MirgError(f"{path}:{lineno}: not UTF-8 text; nothing was written") from None
        except ValueError as exc:
            reason = getattr(exc, "msg", exc)
            if lineno == 1:
                raise MirgError(f"{path}: neither a JSON list of records nor JSON Lines: line 1 is not one JSON "
                                f"record ({reason}); nothing was written") from None
            raise MirgError(f"{path}:{lineno}: unreadable JSON ({reason}); a line that breaks off is a truncated "
                            "file; nothing was written") from None
        yield lineno, record


def array_items(path: str | Path, arrays: Sequence[str], progress: bool = True) -> Iterator[tuple[str, Any]]:
    """``(name, element)`` for every element of each top-level array of the JSON object in ``path`` named in
    ``arrays``, array after array; an array the object lacks yields nothing. One pass over the file per array
    (ijson reads one path per pass), holding one element at a time. A file that breaks off or does not parse
    ends in one line."""
    import ijson

    path = Path(path)
    for name in arrays:
        count, last = 0, None
        with open_json_bytes(path) as handle, _byte_bar(path, progress, f" ({name})") as bar:
            try:
                for count, last in enumerate(ijson.items(handle, f"{name}.item", use_float=True), start=1):
                    if count % _BAR_EVERY == 0:
                        bar.update(handle.tell() - bar.n)
                    yield name, last
            except ijson.JSONError as exc:
                raise MirgError(_broken(path, exc, count, last, f"{name!r} element")) from None
