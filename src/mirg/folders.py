"""Output folders: a command writes into a new or empty folder, or one an earlier run of it wrote.

A folder holding other files and none of the command's own is someone else's: its README.md, metrics.json or
config.json would be overwritten, so it is refused in one line before anything is read or trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mirg.errors import MirgError


def check_output_folder(out: Path, flag: str, markers: Sequence[str], writes: str) -> None:
    """Refuse ``out`` when it is a file, or holds files and none named in ``markers`` (the files or folders a
    run of the command leaves; glob patterns allowed). ``writes`` says what a run puts there.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_output_folder(folder, "--out", ["run.json"], "its report")  # empty: fine
    >>> _ = (folder / "notes.txt").write_text("mine")
    >>> check_output_folder(folder, "--out", ["run.json"], "its report")
    Traceback (most recent call last):
    mirg.errors.MirgError: --out ... holds other files and none a run leaves (run.json); choose a new or empty ...
    """
    if out.exists() and not out.is_dir():
        raise MirgError(f"{flag} {out} is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if any(any(out.glob(marker)) for marker in markers):
        return
    raise MirgError(f"{flag} {out} holds other files and none a run leaves ({', '.join(markers)}); choose a new or "
                    f"empty folder (a run writes {writes} there)")
