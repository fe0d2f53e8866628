"""Multi-stage jobs (`mirg demo`, `mirg model pretrain-tiny`) run each stage as its own `mirg` process:
the same commands a user runs, each starting clean, with its output shown and kept in a log file."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from mirg.errors import MirgError


def run_mirg(args: list[str], log: Path, quiet: bool = False) -> None:
    """Run ``mirg ARGS`` in a child process; its output goes to ``log`` (and the terminal unless ``quiet``).

    A failing stage ends the job with one line naming the stage and its log.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ mirg {' '.join(args)}", flush=True)
    with log.open("wb") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "mirg", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        # Chunks, not lines: progress bars redraw with carriage returns and must show as they happen.
        while chunk := proc.stdout.read1(65536):
            handle.write(chunk)
            if not quiet:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        code = proc.wait()
    if code != 0:
        raise MirgError(f"stage `mirg {' '.join(args[:2])}` failed (exit {code}); its output is in {log}")


def peak_rss_mib() -> float:
    """Peak resident memory of this process or of its largest finished child, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB
