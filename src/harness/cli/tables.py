"""Compact terminal tables: clean metrics, robust accuracy per attack and epsilon, and the verdict."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.results.epsilons import EpsilonGrid
from harness.results.formatting import eps_label
from harness.results.metrics import CLEAN, METRICS, metrics_in
from harness.results.model import ModelResult
from harness.results.view import RunResults

ROBUST_ACCURACY = METRICS["robust_accuracy"]
MEDIAN_MIN_EPSILON = METRICS["median_min_epsilon"]


def _robust_accuracy_table(role: str, model: ModelResult, run: RunResults) -> Table:
    """One row per attack, one column per epsilon, and the median minimal epsilon of minimal attacks."""
    native = run.dataset.native_units if run.dataset else None
    grid = EpsilonGrid.of(*(attack.grid for attack in model.attacks.values()))
    table = Table(title=f"Robust accuracy ({role})", title_justify="left")
    table.add_column("attack")
    for eps in grid:
        table.add_column(f"ε={eps_label(eps)}" + (f"\n{native.describe(eps)}" if native else ""), justify="right")
    table.add_column(MEDIAN_MIN_EPSILON.column, justify="right")
    for attack_id, attack in model.attacks.items():
        cells = [ROBUST_ACCURACY.unit.table(ROBUST_ACCURACY.read(model, attack_id, eps)) if eps in attack.grid
                 else "" for eps in grid]
        cells.append(MEDIAN_MIN_EPSILON.unit.fixed(MEDIAN_MIN_EPSILON.read(model, attack_id))
                     if attack.min_epsilon else "")
        table.add_row(escape(attack_id), *cells)
    return table


def print_summary(console: Console, run: RunResults) -> None:
    """Print the clean metrics, the robust-accuracy grid and the criteria table (harness.cli.closing ends the run)."""
    for role in run.model_roles:
        model = run.model(role)
        clean = ", ".join(f"{m.label} {m.unit.table(m.read(model))}" for m in metrics_in(CLEAN))
        console.print(f"[bold]{role} model[/bold], test n={model.clean.n}: {clean}")
        console.print(_robust_accuracy_table(role, model, run))
    if run.criteria:
        table = Table(title="Acceptance criteria", title_justify="left")
        for column in ("criterion", "threshold", "measured", "verdict"):
            table.add_column(column, justify="left" if column == "criterion" else "right")
        for c in run.criteria:
            mark = "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]"
            table.add_row(escape(c.id), f"{c.op} {c.threshold:g}", METRICS[c.metric].unit.fixed(c.measured), mark)
        console.print(table)

