"""`harness runs`: list the finished runs recorded in an output directory's run history, newest first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.errors import EXIT_PASS

NAME = "runs"
HELP = "list the finished runs recorded in the run history (newest first)"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness runs`."""
    parser.add_argument("--out", type=Path, default=Path("runs"),
                        help="the output directory whose history.sqlite is read (default runs/)")
    parser.add_argument("--plan", metavar="NAME", help="only the runs of this plan")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def execute(args: argparse.Namespace, console: Console) -> int:
    """Print the recorded runs."""
    from rich.table import Table

    from harness.formatting import pct
    from harness.report.text import short_hash
    from harness.results.history import history_path, list_runs

    entries = list_runs(args.out, args.plan)
    if args.json:
        console.print_json(json.dumps([{**{k: v for k, v in vars(e).items() if k != "path"}, "run_dir": str(e.path),
                                        "exists": e.path.is_dir(), "results_sha256": e.results_sha256}
                                       for e in entries]))
        return EXIT_PASS
    if not entries:
        which = f" of plan '{args.plan}'" if args.plan else ""
        console.print(escape(f"harness: no runs{which} recorded in {history_path(args.out)}"), soft_wrap=True)
        return EXIT_PASS
    table = Table(title=f"Runs recorded in {history_path(args.out)} (data, model and results id: sha256, first 8 "
                  "digits)", title_justify="left")
    for column in ("finished (UTC)", "plan", "verdict", "clean acc.", "data", "model", "results id",
                   "run directory"):
        table.add_column(column, justify="right" if column == "clean acc." else "left", overflow="fold",
                         no_wrap=column in ("finished (UTC)", "run directory"))
    for e in entries:
        word = {"passed": "PASS", "failed": "FAIL"}.get(e.status, e.status.upper())  # INCONCLUSIVE as recorded
        verdict = f"{word} {e.n_passed}/{e.n_criteria}"
        accuracy = pct(((e.metrics.get("clean") or {}).get("naive") or {}).get("clean_accuracy"))
        shown = e.path.name if e.path.parent == args.out else str(e.path)  # the title names the folder
        where = shown + ("" if e.path.is_dir() else " (missing)")
        table.add_row(e.finished_at.replace("T", " ")[:16], escape(e.plan_name), verdict, accuracy,
                      short_hash(e.data_sha256, 8), short_hash(e.model_sha256, 8), short_hash(e.results_sha256, 8),
                      escape(where))
    console.print(table)
    return EXIT_PASS
