"""The one exception type the command line turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class MirgError(Exception):
    """A problem with the user's input (files, flags, configs, endpoints), explained in one line.

    The CLI prints ``mirg: error: <message>`` and exits with status 2; no traceback.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name where it has none: the reason a one-line error
    gives for a library's longer one."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ManifestError(MirgError):
    """One or more manifest records are invalid; ``problems`` lists each as ``file:line: field: reason``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:20]
        more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(f"{len(problems)} invalid record(s):\n" + "\n".join(shown) + more)
