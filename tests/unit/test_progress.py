"""Progress in logs: a line per stage, every 10 % or 10 s within a bar, heartbeats for silent stages."""

from __future__ import annotations

import time

import pytest

from harness.run import progress as progress_module
from harness.run.progress import ProgressReporter, resolve_mode


def reporter(mode: str) -> tuple[ProgressReporter, list[str]]:
    lines: list[str] = []
    return ProgressReporter(mode, write=lines.append), lines


def test_modes_resolve_from_the_terminal_and_legacy_booleans(monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert resolve_mode("auto") == "lines" and resolve_mode(None) == "lines"
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert resolve_mode("auto") == "bars"
    assert resolve_mode(False) == "off" and resolve_mode(True) == "bars" and resolve_mode("lines") == "lines"


def test_a_bar_prints_every_ten_percent_and_when_done():
    progress, lines = reporter("lines")
    handle = progress("naive: pgd_linf", 100)
    for _ in range(100):
        handle.advance(1)
    handle.close()
    counts = [line.split()[3] for line in lines[:-1]]
    assert counts == [f"{k}/100" for k in range(10, 101, 10)]
    assert lines[-1].startswith("harness: naive: pgd_linf done: 100/100 in ")


def test_a_stage_prints_start_end_and_a_heartbeat_when_silent(monkeypatch):
    monkeypatch.setattr(progress_module, "LINE_INTERVAL_S", 0.2)
    progress, lines = reporter("lines")
    with progress.stage("naive:indicators"):
        time.sleep(1.5)
    assert lines[0] == "harness: naive:indicators ..."
    assert any("naive:indicators still running" in line for line in lines[1:-1])
    assert lines[-1].startswith("harness: naive:indicators finished in ")


@pytest.mark.parametrize("mode", ["off", "bars"])
def test_no_lines_when_off_or_on_a_terminal(mode):
    progress, lines = reporter(mode)
    with progress:
        with progress.stage("x"):
            handle = progress("x", 10)
            handle.advance(10)
            handle.close()
    assert lines == []
