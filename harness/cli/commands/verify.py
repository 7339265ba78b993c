"""`harness verify RUN_DIR`: re-check a run directory's files, plan, model copies and data against its records."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.errors import EXIT_FAIL, EXIT_PASS

NAME = "verify"
HELP = "re-check a run directory: SHA256SUMS, plan hashes, model copies, data content hash"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness verify`."""
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--no-data", action="store_true",
                        help="do not load the data again to re-check its content hash")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list the checks that passed or were skipped")


def execute(args: argparse.Namespace, console: Console) -> int:
    """Exit 0 when everything matches; otherwise 1, with one line per mismatch naming the file."""
    from harness.run.verify import verify_run

    found = verify_run(args.run_dir, check_data=not args.no_data)
    for line in found.mismatches:
        console.print(f"MISMATCH {escape(line)}", highlight=False, soft_wrap=True)
    if args.verbose or found.ok:
        for line in found.passed if args.verbose else []:
            console.print(f"ok       {escape(line)}", highlight=False, soft_wrap=True)
        for line in found.skipped:
            console.print(f"skipped  {escape(line)}", highlight=False, soft_wrap=True)
    if found.ok:
        console.print(f"verified: {escape(str(args.run_dir))} ({len(found.passed)} checks matched)", highlight=False,
                      soft_wrap=True)
        return EXIT_PASS
    console.print(f"NOT VERIFIED: {len(found.mismatches)} mismatch(es) in {escape(str(args.run_dir))}",
                  highlight=False, soft_wrap=True)
    return EXIT_FAIL
