"""A closed stdout (`harness compare A B | head`): stop printing quietly with exit 0, as coreutils do.

rich answers a BrokenPipeError by pointing stdout at /dev/null and raising SystemExit(1) (`Console.on_broken_pipe`);
`closed_pipe_is_quiet` swaps that for an exception the command catches.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich.console import Console


class ClosedPipe(Exception):
    """The reader of stdout went away."""


def quiet_closed_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


@contextlib.contextmanager
def closed_pipe_is_quiet(console: Console) -> Iterator[None]:
    """Within the block, a closed stdout ends the printing quietly (the command then returns its own exit code)."""

    def on_broken_pipe() -> None:
        console.quiet = True
        quiet_closed_stdout()
        raise ClosedPipe

    console.on_broken_pipe = on_broken_pipe  # type: ignore[method-assign]
    try:
        yield
    except (ClosedPipe, BrokenPipeError):
        console.quiet = True
        quiet_closed_stdout()
