"""`harness validate PLAN`: check a plan without running it."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.cli.exit_codes import EXIT_PASS
from harness.cli.options import add_plan_options

NAME = "validate"
HELP = "check a plan without running it"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness validate`."""
    parser.add_argument("plan", type=Path)
    add_plan_options(parser)


def execute(args: argparse.Namespace, console: Console) -> int:
    """Validate a plan and summarise it, with the smallest test split each proportion criterion can be decided on."""
    from harness.plan.schema import load_plan
    from harness.results.sample_size import decidable_from

    plan = load_plan(args.plan, args.overrides)
    console.print(escape(f"{args.plan}: valid plan '{plan.name}': data set {plan.dataset.plugin}, model "
                         f"{plan.model.plugin}, {len(plan.attacks)} attacks, {len(plan.acceptance)} criteria"))
    options = plan.statistics
    for line in decidable_from(plan.acceptance, options.interval, options.confidence):
        console.print(escape(f"  sample size: {line} ({options.confidence:.0%} {options.interval})"))
    return EXIT_PASS
