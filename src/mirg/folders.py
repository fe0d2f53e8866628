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


#: In a dataset folder while a command writes it: a folder cut short is known as such and replaced by the next run.
UNFINISHED = ".unfinished"


def start_dataset_folder(out: Path, outputs: Sequence[str], command: str) -> None:
    """Remove what an earlier run of ``command`` wrote into ``out`` (the files and folders named in ``outputs``, and
    nothing else), then mark the folder unfinished until the run ends with :func:`finish_dataset_folder`."""
    import shutil

    for name in (*outputs, UNFINISHED):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / UNFINISHED).write_text(f"{command} is writing this folder, or was stopped before it finished\n")


def finish_dataset_folder(out: Path) -> None:
    """The run that wrote ``out`` is complete."""
    (out / UNFINISHED).unlink(missing_ok=True)
