"""Progress bars on stderr (rich), silent when stderr is not a terminal."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressHandle:
    """One task's bar: advance() and close()."""

    def __init__(self, progress: Progress | None, task_id: Any) -> None:
        self._progress, self._task = progress, task_id

    def advance(self, n: int = 1) -> None:
        """Move the bar forward by n units."""
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        """Remove the bar."""
        if self._progress is not None:
            self._progress.remove_task(self._task)


class ProgressReporter(AbstractContextManager):
    """Creates progress bars; enabled only when stderr is a terminal (or forced)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Progress | None = None
        if self.enabled:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=True)

    def __enter__(self) -> ProgressReporter:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, description: str, total: int) -> ProgressHandle:
        """A new bar with `total` units."""
        if self._progress is None:
            return ProgressHandle(None, None)
        return ProgressHandle(self._progress, self._progress.add_task(description, total=total))
