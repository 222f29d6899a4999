"""Command-line plumbing shared by ``python -m job``, ``scripts/launch`` and ``scripts/pull``.

Standard library only (plus ``job.errors``): the light scripts import it without paddle.
"""

from __future__ import annotations

import argparse
import typing

from job.errors import InputError

__all__ = ["Parser"]


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit code 2.

    The mistake is raised as ``InputError("<prog>: <message> (see --help)")`` for the
    caller's ``error: ...`` line; ``prog_in_errors=False`` leaves out the ``<prog>: ``.
    Subparsers made with ``parser_class=Parser`` keep the default (with ``<prog>``).
    """

    def __init__(self, *args: typing.Any, prog_in_errors: bool = True, **kwargs: typing.Any) -> None:
        super().__init__(*args, **kwargs)
        self.prog_in_errors = prog_in_errors

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        where = f"{self.prog}: " if self.prog_in_errors else ""
        raise InputError(f"{where}{message} (see --help)")
