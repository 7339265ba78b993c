"""Progress on stderr: rich bars on a terminal, plain lines in logs and CI, or nothing.

In "lines" mode every stage prints when it starts and ends, a bar prints a line every 10 % or 10 s, and a
stage with no bar (indicators, report rendering) prints a heartbeat every 10 s, so a CI log never goes silent for
minutes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal

ProgressMode = Literal["auto", "bars", "lines", "off"]
LINE_INTERVAL_S = 10.0


def resolve_mode(mode: ProgressMode | bool | None) -> Literal["bars", "lines", "off"]:
    """'auto' (or None) → bars on a terminal, lines otherwise; True → bars, False → off."""
    if mode is None or mode == "auto":
        return "bars" if sys.stderr.isatty() else "lines"
    if mode is True:
        return "bars"
    if mode is False:
        return "off"
    return mode


class ProgressHandle:
    """One task: advance() and close()."""

    def advance(self, n: int = 1) -> None:
        """Record n more units done."""

    def close(self) -> None:
        """The task is finished."""


class _BarHandle(ProgressHandle):
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress, self._task = progress, task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.remove_task(self._task)


class _LineHandle(ProgressHandle):
    """Prints 'description 61/122 (50 %), 12 s' every 10 % or 10 s, and once when closed."""

    def __init__(self, reporter: ProgressReporter, description: str, total: int) -> None:
        self._reporter, self._description, self._total = reporter, description, max(int(total), 0)
        self._done, self._start = 0, time.monotonic()
        self._next_tenth, self._last = 1, self._start  # the next whole 10 % to report

    def advance(self, n: int = 1) -> None:
        self._done += n
        now = time.monotonic()
        tenths = self._done * 10 // self._total if self._total else 10  # whole tenths done, in integers
        if tenths >= self._next_tenth or now - self._last >= LINE_INTERVAL_S:
            self._next_tenth = tenths + 1
            self._last = now
            fraction = self._done / self._total if self._total else 1.0
            self._reporter.line(f"{self._description} {self._done}/{self._total} ({fraction:.0%}), "
                                f"{now - self._start:.0f} s")

    def close(self) -> None:
        self._reporter.line(f"{self._description} done: {self._done}/{self._total} in "
                            f"{time.monotonic() - self._start:.1f} s")


class ProgressReporter(AbstractContextManager):
    """Makes progress handles in one of three modes: 'bars' (rich), 'lines' (plain text) or 'off'."""

    def __init__(self, mode: ProgressMode | bool | None = "auto",
                 write: Callable[[str], None] | None = None) -> None:
        self.mode = resolve_mode(mode)
        self._write = write or (lambda text: print(text, file=sys.stderr, flush=True))
        self._bars: Any = None
        self._last_line = time.monotonic()
        self._lock = threading.Lock()
        if self.mode == "bars":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=Console(stderr=True), transient=True)

    @property
    def enabled(self) -> bool:
        """Whether anything is shown."""
        return self.mode != "off"

    def __enter__(self) -> ProgressReporter:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def __call__(self, description: str, total: int) -> ProgressHandle:
        """A new task with `total` units."""
        if self.mode == "bars":
            return _BarHandle(self._bars, self._bars.add_task(description, total=total))
        if self.mode == "lines":
            return _LineHandle(self, description, total)
        return ProgressHandle()

    def line(self, text: str) -> None:
        """Print one progress line (lines mode only)."""
        if self.mode != "lines":
            return
        with self._lock:
            self._last_line = time.monotonic()
            self._write(f"harness: {text}")

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """In lines mode: a line when the stage starts and ends, and a heartbeat every 10 s of silence."""
        if self.mode != "lines":
            yield
            return
        start = time.monotonic()
        self.line(f"{name} ...")
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(1.0):
                if time.monotonic() - self._last_line >= LINE_INTERVAL_S:
                    self.line(f"{name} still running, {time.monotonic() - start:.0f} s")

        thread = threading.Thread(target=heartbeat, name="harness-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.line(f"{name} finished in {time.monotonic() - start:.1f} s")
