"""The `harness` command: parses arguments, dispatches to a command module, turns errors into one line.

Exit codes: 0 every criterion passed, 1 a criterion failed, 2 bad input, 3 internal error, 4 inconclusive,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings

from rich.console import Console

from harness import __version__
from harness.cli.commands import load_commands
from harness.errors import EXIT_INTERRUPTED, HarnessError, error_line, error_report

DESCRIPTION = ("Adversarial-robustness and corruption testing of medical-imaging classifiers against a YAML test plan. "
               "Exit codes: 0 every criterion passed, 1 a criterion failed, 2 bad input, 3 internal error, "
               "4 inconclusive (no criterion failed, but one rests on an attack that its attack-failure indicators "
               "show failed at the epsilon it judges), 130 interrupted.")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand (see harness.cli.commands)."""
    parser = argparse.ArgumentParser(prog="harness", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in load_commands():
        command.configure(sub.add_parser(command.NAME, help=command.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `harness` command."""
    warnings.filterwarnings("ignore", message="Please import `gaussian_filter`", category=DeprecationWarning)
    args = build_parser().parse_args(argv)
    from harness.run import distributed  # after parsing: `--help` must not pay for importing torch
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 120)
    try:
        code = {c.NAME: c for c in load_commands()}[args.command].execute(args, console)
        distributed.shutdown(sync=True)
        return code
    except HarnessError as exc:
        _print_error(error_line(exc), exc)
        distributed.shutdown(sync=distributed.shared_with_main(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; results computed so far are in the run directory", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # an internal error: one line, traceback on request
        if args.traceback:
            traceback.print_exc()
        _print_error(f"{error_line(exc)} (rerun with --traceback for details)", exc)
        distributed.shutdown(sync=distributed.shared_with_main(exc))
        return error_report(exc)[0]


def _print_error(line: str, exc: BaseException) -> None:
    """Print an error line on stderr; under torchrun a rank other than 0 stays quiet when rank 0 reports it."""
    from harness.run import distributed

    try:
        rank = distributed.env_rank() if distributed.env_world_size() > 1 else 0
    except HarnessError:
        rank = 0
    if rank and distributed.shared_with_main(exc):
        return
    print(line if not rank else line.replace("harness:", f"harness: rank {rank}:", 1), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
