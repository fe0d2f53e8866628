"""What the answer-analysis scripts share: the --data / --run / --coords arguments and reading them.

A script builds its parser with :func:`run_parser`, adds its own options, and gets the samples, the
responses by id and the coordinate space from :func:`read_run`, which ends with one line naming the script
(exit status 2) when the manifest, the predictions or the space is not usable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="dataset folder (manifest.jsonl)")
    parser.add_argument("--run", required=True, type=Path, help="an eval run folder (predictions.jsonl)")
    parser.add_argument("--coords", default="norm1000", help="coordinate space of the responses (default norm1000)")
    return parser


def read_run(opts: argparse.Namespace, script: str) -> tuple[list, dict[str, str], object]:
    """``(samples, {id: response}, CoordSpace)`` for the parsed ``opts``; one line and exit 2 on bad input."""
    from mirg.errors import MirgError
    from mirg.geometry import CoordSpace
    from mirg.eval.predictions import read_predictions_jsonl
    from mirg.schema import read_manifest

    try:
        return (read_manifest(opts.data), read_predictions_jsonl(opts.run / "predictions.jsonl"),
                CoordSpace(opts.coords))
    except (MirgError, OSError, ValueError) as exc:
        print(f"{script}: {exc}", file=sys.stderr)
        sys.exit(2)
