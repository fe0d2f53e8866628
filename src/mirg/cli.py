"""The `mirg` command. Thin: parses arguments and calls the library.

Bad input ends with ``mirg: error: <one line>`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from mirg import __version__
from mirg.commands import data, demo, eval as eval_command, model, score, train
from mirg.errors import MirgError

COMMAND_MODULES = [score, data, model, train, eval_command, demo]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirg",
        description="Multi-image reasoning and grounding: data, trajectories, SFT + image-aware GRPO, "
        "evaluation and exact MIG-Bench-compatible scoring.",
    )
    parser.add_argument("--version", action="version", version=f"mirg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


#: Commands whose options are TRL's config fields, parsed by TRL's own parser (which takes both spellings).
TRL_COMMANDS = ("sft", "grpo")


def main(argv: list[str] | None = None) -> int:
    from mirg.options import chosen_parser, kebab_case, option_strings

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not (argv and argv[0] in TRL_COMMANDS):
        argv = kebab_case(argv, option_strings(chosen_parser(parser, argv)))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MirgError as exc:
        print(f"mirg: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped (`| head`): not an error
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        except (OSError, ValueError):  # a stdout without a file descriptor (captured): nothing to redirect
            pass
        return 0
    except OSError as exc:  # disk full, permission denied, ...: say what and where, not a traceback
        print(f"mirg: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mirg: interrupted", file=sys.stderr)
        return 130


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` (``runs/x: File exists``) where the error names a file, else the error's own words.

    >>> describe_os_error(IsADirectoryError(21, "Is a directory", "runs/x"))
    'runs/x: Is a directory'
    >>> describe_os_error(OSError(28, "No space left on device"))
    'No space left on device'
    """
    if exc.filename is None:
        return exc.strerror or str(exc)
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
    return f"{where}: {exc.strerror or exc}"


if __name__ == "__main__":
    sys.exit(main())
