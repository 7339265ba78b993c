"""`harness run PLAN`: run a plan end to end (exit 0 when every criterion passes, 4 when inconclusive, 1 otherwise)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.cli.options import add_plan_options
from harness.errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS, HarnessError

NAME = "run"
HELP = "run a test plan end to end"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness run`."""
    parser.add_argument("plan", type=Path)
    add_plan_options(parser)
    parser.add_argument("--out", type=Path, default=Path("runs"), help="where run directories go (default runs/)")
    parser.add_argument("--device", help="override the plan's device (cpu, cuda, cuda:N)")
    parser.add_argument("--cache-dir", type=Path, help="trained-weight cache (default $HARNESS_CACHE_DIR or "
                                                       "~/.cache/harness)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue an interrupted run in RUN_DIR (same plan and overrides); finished work is "
                             "kept")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads torch uses for the whole run, as the plan's `threads` key (default: the "
                             "plan's, 1 unless it says otherwise; the machine's core count never decides). A count "
                             "other than the plan's changes the numbers: it is the override `--set threads=N`, so "
                             "it is recorded, names another run directory and is refused on --resume")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress (default: bars on a terminal, a line per stage and every 10 %% or 10 s "
                             "in logs)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only errors, warnings and the closing lines (verdict, failed criteria, paths)")
    parser.add_argument("--no-report", action="store_true", help="skip report.html/report.pdf (render later with "
                                                                "`harness report RUN_DIR`)")


def execute(args: argparse.Namespace, console: Console) -> int:
    """Run a plan; exit 0 when every criterion passes, 4 when the verdict is inconclusive, 1 otherwise."""
    from harness.cli.closing import closing_lines
    from harness.cli.tables import print_summary
    from harness.plan.schema import load_plan
    from harness.registry.manager import default_registry
    from harness.report import render_report
    from harness.results.baselines import check_baselines
    from harness.run import distributed
    from harness.run.runner import RunConfig, Runner

    if args.threads is not None and args.threads < 1:
        raise HarnessError(f"--threads must be a positive integer, got {args.threads}")
    distributed.setup()  # under torchrun: join the process group first, so a bad plan is reported once
    registry = default_registry()
    plan = distributed.together(lambda: check_baselines(load_plan(args.plan, args.overrides, registry)))
    if args.threads is not None and args.threads != plan.threads:  # the plan's count, unless overridden
        overrides = [*args.overrides, f"threads={args.threads}"]
        plan = distributed.together(lambda: check_baselines(load_plan(args.plan, overrides, registry)))
    config = RunConfig(out_root=args.out, device=args.device, cache_dir=args.cache_dir,
                       progress="off" if args.no_progress else "auto", quiet=args.quiet,
                       report=None if args.no_report else render_report)
    runner = Runner(plan, registry, config, resume_dir=args.resume)
    try:
        result = runner.run()
    except (Exception, KeyboardInterrupt):
        found = getattr(runner, "results", None)  # the warnings found before the run stopped, then its error line
        if distributed.is_main() and found is not None:
            for warning in found.warnings:
                console.print(escape(f"harness: warning: {warning}"), soft_wrap=True)
        raise
    if distributed.is_main():
        if not args.quiet:
            print_summary(console, result)
        for line in closing_lines(result):
            console.print(escape(line), soft_wrap=True)
    if result.passed:
        return EXIT_PASS
    return EXIT_INCONCLUSIVE if result.verdict and result.verdict.inconclusive else EXIT_FAIL
