"""`harness validate PLAN [PLAN ...]`: check plans without running them, and that the files they name are there."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from harness.cli.options import add_plan_options
from harness.errors import EXIT_PASS, HarnessError, PlanError, error_line

if TYPE_CHECKING:
    from harness.plan.schema import Plan

NAME = "validate"
HELP = "check plans without running them (also that their data folders, manifests and model files are readable)"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness validate`."""
    parser.add_argument("plans", type=Path, nargs="+", metavar="PLAN")
    add_plan_options(parser)


def execute(args: argparse.Namespace, console: Console) -> int:
    """Validate each plan and the files it names; one line per plan (with the smallest test split each proportion
    criterion can be decided on); the worst exit code."""
    from harness.plan.advice import plan_warnings
    from harness.plan.schema import load_plan
    from harness.registry.manager import default_registry
    from harness.results.baselines import check_baselines
    from harness.results.sample_size import decidable_from

    registry = default_registry()
    worst = EXIT_PASS
    for path in args.plans:
        try:
            plan = load_plan(path, args.overrides, registry)
            check_baselines(plan)
            check_input_files(plan)
        except HarnessError as exc:
            print(error_line(exc), file=sys.stderr)
            worst = max(worst, exc.exit_code)
            continue
        corruptions = f"{plural(len(plan.corruptions), 'corruption')}, " if plan.corruptions else ""
        console.print(escape(f"{path}: valid plan '{plan.name}': data set {plan.dataset.plugin}, model "
                             f"{plan.model.plugin}, {plural(len(plan.attacks), 'attack')}, {corruptions}"
                             f"{plural(len(plan.acceptance), 'criterion', 'criteria')}; input files readable"),
                      soft_wrap=True)
        for line in plan_warnings(plan):
            console.print(escape(f"  warning: {line}"), soft_wrap=True)
        options = plan.statistics
        for line in decidable_from(plan.acceptance, options.interval, options.confidence):
            console.print(escape(f"  sample size: {line} (one-sided {options.confidence:.0%} {options.interval})"))
    return worst


def plural(n: int, one: str, many: str | None = None) -> str:
    """'1 attack', '4 attacks', '1 criterion', '5 criteria'."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def check_input_files(plan: Plan) -> None:
    """Every path parameter of the plan's plugins names a readable file or folder (nothing is loaded); PlanError
    with the plan's file:line (or the --set override) and key otherwise."""
    from harness.plan.params import plan_path
    from harness.plan.sandbox import path_fields

    sections = [("dataset", plan.dataset.params), ("model", plan.model.params)]
    sections += [("defence", plan.defence.params)] if plan.defence else []
    sections += [(f"attacks.{i}", spec.params) for i, spec in enumerate(plan.attacks)]
    for section, params in sections:
        for key, value in path_fields(params, section):
            path = plan_path(value, plan.base_dir)
            problem = _unreadable(path)
            if problem:
                relative = "" if Path(str(value)).is_absolute() else f" (relative to the plan's folder {plan.base_dir})"
                raise _located(plan, PlanError(f"{problem}: {plan.paths.text(str(value))}{relative}", key=key))


def _unreadable(path: Path) -> str | None:
    """Why `path` cannot be read ('not found', 'not readable'), or None."""
    try:
        if path.is_dir():
            os.listdir(path)
        elif path.is_file():
            with open(path, "rb") as handle:
                handle.read(1)
        else:
            return "not found"
    except OSError as exc:
        return f"not readable ({exc.strerror or type(exc).__name__})"
    return None


def _located(plan: Plan, error: PlanError) -> PlanError:
    """The error with the plan file's line of its key, or blamed on the --set override that set the key."""
    from harness.plan.yaml_source import apply_overrides, blame_override, expand_env, load_yaml_text

    doc = load_yaml_text(plan.text, plan.source)
    _, overridden = apply_overrides(expand_env(doc.data, doc), plan.overrides)
    return blame_override(error, overridden) or PlanError(error.detail, key=error.key, line=doc.line(error.key),
                                                         source=plan.source)
