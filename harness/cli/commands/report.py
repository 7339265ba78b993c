"""`harness report RUN_DIR`: re-render report.html and report.pdf from a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.errors import EXIT_PASS

NAME = "report"
HELP = "re-render report.html and report.pdf of a run directory"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness report`."""
    parser.add_argument("run_dir", type=Path)


def execute(args: argparse.Namespace, console: Console) -> int:
    """Re-render a run directory's report from its results and manifest, without re-running anything."""
    from harness.report import render_report

    html, pdf = render_report(args.run_dir)
    console.print(f"wrote {escape(str(html))} and {escape(str(pdf))}")
    return EXIT_PASS
