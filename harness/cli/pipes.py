"""A closed stdout (`harness compare A B | head`): stop printing quietly, as coreutils do, not with exit 1."""

from __future__ import annotations

import os
import sys


def quiet_closed_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)
