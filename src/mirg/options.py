"""Command-line options: one spelling per idea. Every option is kebab-case, and an option that was renamed keeps its
old spelling for one release, with a one-line notice naming the new one.

>>> from contextlib import redirect_stderr
>>> parser = argparse.ArgumentParser(prog="x")
>>> _ = parser.add_argument("--max-samples", type=int)
>>> renamed(parser, "--limit", "--max-samples", type=int)
>>> with redirect_stderr(sys.stdout):
...     parser.parse_args(["--limit", "3"]).max_samples
...     kebab_case(["--max_samples", "3", "--out=a_b"], {"--max-samples", "--out"})
mirg: note: --limit is now --max-samples (the old spelling works for one more release)
3
mirg: note: --max_samples is now --max-samples (the old spelling works for one more release)
['--max-samples', '3', '--out=a_b']
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable


def notice(old: str, new: str) -> None:
    """Say once, on stderr, that ``old`` is an old spelling of ``new``."""
    print(f"mirg: note: {old} is now {new} (the old spelling works for one more release)", file=sys.stderr)


class RenamedOption(argparse.Action):
    """An option's old spelling: sets what the new option sets, after a notice. Hidden from ``--help``."""

    def __init__(self, option_strings, dest, new: str, value: Any = None, **kwargs):
        self.new, self.value = new, value
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        notice(option_string or self.option_strings[0], self.new)
        setattr(namespace, self.dest, self.value if self.nargs == 0 else values)


def renamed(parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, *,
            dest: str | None = None, flag: Any = None, **kwargs: Any) -> None:
    """Accept ``old`` as the earlier spelling of ``new``. A flag that takes no value sets ``flag`` in ``dest`` (e.g.
    ``--train-vision`` setting ``freeze_vision`` to False); otherwise the value is parsed with ``kwargs``."""
    dest = dest or new.lstrip("-").replace("-", "_")
    if flag is not None:
        parser.add_argument(old, dest=dest, action=RenamedOption, new=new, value=flag, nargs=0,
                            help=argparse.SUPPRESS)
    else:
        parser.add_argument(old, dest=dest, action=RenamedOption, new=new, help=argparse.SUPPRESS, **kwargs)


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` itself (a sub-command's are its own parser's)."""
    return {option for action in parser._actions for option in action.option_strings}


def chosen_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub-)command parser that ``argv``'s leading command words select, e.g. ``mirg data convert``'s."""
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    return parser


def kebab_case(argv: Iterable[str], known: set[str]) -> list[str]:
    """``argv`` with every ``--snake_case`` option that the command knows as ``--kebab-case`` respelled, after a
    notice; anything else is left for the parser to judge."""
    out = []
    for token in argv:
        name, sep, value = token.partition("=")
        if token.startswith("--") and "_" in name:
            kebab = name.replace("_", "-")
            if kebab in known and name not in known:
                notice(name, kebab)
                token = kebab + sep + value
        out.append(token)
    return out
