"""The `harness` command: run, validate, plugins (exit 0 pass, 1 criteria failed, 2 bad input, 3 internal error)."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, distributed
from .errors import HarnessError

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a test plan end to end")
    run.add_argument("plan", type=Path)
    _plan_options(run)
    run.add_argument("--out", type=Path, default=Path("runs"), help="where run directories go (default runs/)")
    run.add_argument("--device", help="override the plan's device (cpu, cuda, cuda:N)")
    run.add_argument("--cache-dir", type=Path, help="trained-weight cache (default $HARNESS_CACHE_DIR or "
                                                    "~/.cache/harness)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue an interrupted run in RUN_DIR (same plan and overrides); finished work is kept")
    run.add_argument("--threads", type=int, metavar="N",
                     help="CPU threads torch uses for the whole run (default: torch's choice); recorded in the "
                          "manifest and part of the trained-weight cache key")
    run.add_argument("--no-progress", action="store_true", help="never show progress bars")
    run.add_argument("--no-report", action="store_true", help="skip report.html/report.pdf (render later with "
                                                             "`harness report RUN_DIR`)")

    validate = sub.add_parser("validate", help="check a plan without running it")
    validate.add_argument("plan", type=Path)
    _plan_options(validate)

    report = sub.add_parser("report", help="re-render report.html and report.pdf of a run directory")
    report.add_argument("run_dir", type=Path)

    plugins = sub.add_parser("plugins", help="list installed plugins")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a plan value (repeatable), e.g. --set model.epochs=3")


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    """Run a plan; exit 0 when every criterion passes, 1 otherwise."""
    from .console_tables import print_summary
    from .plan import load_plan
    from .plugin_manager import default_registry
    from .runner import RunConfig, Runner

    if args.threads is not None:
        if args.threads < 1:
            raise HarnessError(f"--threads must be a positive integer, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    distributed.setup()  # under torchrun: join the process group first, so a bad plan is reported once
    registry = default_registry()
    plan = distributed.together(lambda: load_plan(args.plan, args.overrides, registry))
    config = RunConfig(out_root=args.out, device=args.device, cache_dir=args.cache_dir,
                       progress=False if args.no_progress else None, report=not args.no_report)
    result = Runner(plan, registry, config, resume_dir=args.resume).run()
    if distributed.is_main():
        print_summary(console, result.results, str(result.run_dir))
    return EXIT_PASS if result.passed else EXIT_FAIL


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    """Validate a plan and summarise it."""
    from .plan import load_plan

    plan = load_plan(args.plan, args.overrides)
    console.print(escape(f"{args.plan}: valid plan '{plan.name}': data set {plan.dataset.plugin}, model "
                         f"{plan.model.plugin}, {len(plan.attacks)} attacks, {len(plan.acceptance)} criteria"))
    return EXIT_PASS


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    """Re-render a run directory's report from its results and manifest, without re-running anything."""
    from .report import render_report

    html, pdf = render_report(args.run_dir)
    console.print(f"wrote {escape(str(html))} and {escape(str(pdf))}")
    return EXIT_PASS


def cmd_plugins(args: argparse.Namespace, console: Console) -> int:
    """List every installed plugin with its kind, provider and version."""
    from .plugin_manager import default_registry

    entries = default_registry().all()
    if args.json:
        console.print_json(json.dumps([{"kind": e.kind, "name": e.name, "provider": e.provider,
                                        "version": e.version, "module": e.module, "description": e.description}
                                       for e in entries]))
        return EXIT_PASS
    table = Table(title="Installed harness plugins", title_justify="left")
    for column in ("kind", "name", "provider", "version", "description"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(e.kind, e.name, e.provider, e.version, e.description)
    console.print(table)
    return EXIT_PASS


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "report": cmd_report, "plugins": cmd_plugins}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `harness` command."""
    warnings.filterwarnings("ignore", message="Please import `gaussian_filter`", category=DeprecationWarning)
    args = build_parser().parse_args(argv)
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 120)
    try:
        code = COMMANDS[args.command](args, console)
        distributed.shutdown(sync=True)
        return code
    except HarnessError as exc:
        _print_error(f"harness: error: {exc.one_line()}", exc)
        distributed.shutdown(sync=distributed.shared_with_main(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; results computed so far are in the run directory", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line, traceback on request
        if args.traceback:
            traceback.print_exc()
        message = " ".join(str(exc).split())
        _print_error(f"harness: internal error: {type(exc).__name__}: {message} (rerun with --traceback for "
                     "details)", exc)
        distributed.shutdown(sync=distributed.shared_with_main(exc))
        return EXIT_INTERNAL


def _print_error(line: str, exc: BaseException) -> None:
    """Print an error line on stderr; under torchrun a rank other than 0 stays quiet when rank 0 reports it."""
    try:
        rank = distributed.env_rank() if distributed.env_world_size() > 1 else 0
    except HarnessError:
        rank = 0
    if rank and distributed.shared_with_main(exc):
        return
    print(line if not rank else line.replace("harness:", f"harness: rank {rank}:", 1), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
