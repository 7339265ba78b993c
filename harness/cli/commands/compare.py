"""`harness compare RUN_A RUN_B`: run B against run A, metric by metric and image by image (paired tests)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from harness.cli.pipes import closed_pipe_is_quiet
from harness.errors import EXIT_PASS

if TYPE_CHECKING:
    from harness.results.compare import Comparison

NAME = "compare"
HELP = "compare two runs on the same test images (differences per metric, paired tests)"
FOLDER = "comparisons"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness compare`."""
    parser.add_argument("run_a", type=Path, metavar="RUN_A", help="the reference run directory (e.g. the approved run)")
    parser.add_argument("run_b", type=Path, metavar="RUN_B", help="the run directory compared with it")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help=f"where to write the JSON and Markdown (default RUN_B/{FOLDER}/)")


def execute(args: argparse.Namespace, console: Console) -> int:
    """Write the comparison as <A name>.json and <A name>.md (atomically), then print it; a reader that closes the
    pipe early (`| head`) ends the command quietly with exit 0."""
    from harness.cli.comparison_text import markdown
    from harness.results.compare import compare_runs
    from harness.results.view import RunResults
    from harness.storage.atomic import write_json_atomic, write_text_atomic
    from harness.storage.checksums import update_sums

    comparison = compare_runs(RunResults.load(args.run_a), RunResults.load(args.run_b))
    folder = args.out or Path(args.run_b) / FOLDER
    stem = folder / Path(comparison.a.run_dir).name
    json_path, markdown_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    write_json_atomic(json_path, comparison.to_json())
    write_text_atomic(markdown_path, markdown(comparison))
    if args.out is None:  # inside run B: its SHA256SUMS (when sealed) lists them
        update_sums(Path(args.run_b), [f"{FOLDER}/{json_path.name}", f"{FOLDER}/{markdown_path.name}"])
    with closed_pipe_is_quiet(console):
        _print(console, comparison)
        console.print(escape(f"harness: comparison written to {json_path} and {markdown_path}"), soft_wrap=True)
        console.file.flush()
    return EXIT_PASS


def _print(console: Console, comparison: Comparison) -> None:
    """The comparison's tables and notes."""
    from rich.table import Table

    from harness.cli.comparison_text import METRIC_COLUMNS, NOTE, RUN_COLUMNS, heading, metric_cells, run_cells
    from harness.stats.paired import TEST_NAME

    runs = Table(title="Runs", title_justify="left")
    for column in RUN_COLUMNS:
        runs.add_column(column, overflow="fold")
    runs.add_row(*map(escape, run_cells("A", comparison.a)))
    runs.add_row(*map(escape, run_cells("B", comparison.b)))
    console.print(runs)
    console.print(escape(heading(comparison)))
    for role in comparison.roles:
        table = Table(title=f"{role} model", title_justify="left")
        for column in METRIC_COLUMNS:
            table.add_column(column, justify="left" if column in ("metric", "attack") else "right")
        for row in comparison.rows:
            if row.role == role:
                table.add_row(*map(escape, metric_cells(row)))
        console.print(table)
    console.print(escape(NOTE.format(test=TEST_NAME)), soft_wrap=True)
    for note in comparison.notes:
        console.print(escape(f"harness: note: {note}"), soft_wrap=True)
