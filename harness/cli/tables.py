"""Compact terminal tables: clean metrics, robust accuracy per attack and epsilon, subgroups, paired comparisons
and the verdict, each proportion with its confidence interval."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.formatting import eps_label, interval_text, judged_text, level_text
from harness.plan.epsilons import EpsilonGrid
from harness.plan.metrics import CLEAN, METRICS, Metric, metrics_in
from harness.registry.severities import SEVERITY_LEVELS
from harness.results.model import WORST_CASE, ModelResult
from harness.results.uncertainty import shown
from harness.results.view import RunResults
from harness.stats.intervals import METHOD_NAMES

ROBUST_ACCURACY = METRICS["robust_accuracy"]
MEDIAN_MIN_EPSILON = METRICS["median_min_epsilon"]
CORRUPTION_ACCURACY = METRICS["accuracy"]
CORRUPTION_ERROR = METRICS["corruption_error"]


def with_interval(metric: Metric, model: ModelResult, attack: str | None = None, epsilon: float | None = None,
                  separator: str = " ") -> str:
    """'69.2% [50.0–83.5]': the value and the interval the tables show (cluster-adjusted where recorded); the
    interval's ends in the value's unit, without repeating a percent sign."""
    text = metric.unit.table(metric.read(model, attack, epsilon))
    bounds = shown(metric.read_interval(model, attack, epsilon))
    if bounds is None:
        return text
    return f"{text}{separator}[{interval_text(bounds, lambda v: metric.unit.table(v).removesuffix('%'))}]"


def _robust_accuracy_table(role: str, model: ModelResult, run: RunResults) -> Table:
    """One row per attack, one column per epsilon, and the median minimal epsilon of minimal attacks."""
    native = run.dataset.native_units if run.dataset else None
    grid = EpsilonGrid.of(*(attack.grid for attack in model.attacks.values()))
    table = Table(title=f"Robust accuracy ({role})", title_justify="left", padding=(0, 0) if len(grid) > 5 else (0, 1))
    table.add_column("attack")
    for eps in grid:
        table.add_column(f"ε={eps_label(eps)}" + (f"\n{native.describe(eps)}" if native else ""), justify="right")
    table.add_column(MEDIAN_MIN_EPSILON.column, justify="right")
    worst = model.worst_case
    if worst is not None:  # the headline: an image is robust only if every attack at that ε failed on it
        cells = [with_interval(ROBUST_ACCURACY, model, WORST_CASE, eps, "\n") if worst.find(eps) else ""
                 for eps in grid]
        table.add_row(f"[bold]{escape(worst.label)}[/bold]", *cells, "")
    marked = False
    for attack_id, attack in model.attacks.items():
        cells = []
        for eps in grid:
            cell = with_interval(ROBUST_ACCURACY, model, attack_id, eps, "\n") if eps in attack.grid else ""
            if cell and model.upper_bound(attack_id, eps):
                cell, marked = f"≤{cell}", True  # an indicator shows this attack failed here
            cells.append(cell)
        cells.append(MEDIAN_MIN_EPSILON.unit.fixed(MEDIAN_MIN_EPSILON.read(model, attack_id))
                     if attack.min_epsilon else "")
        table.add_row(escape(attack_id), *cells)
    if marked:
        table.caption = "≤: an upper bound only (an attack-failure indicator shows the attack failed there)"
    return table


def _corruption_table(role: str, model: ModelResult) -> Table:
    """One row per corruption: accuracy at each severity run, and its corruption error."""
    mce = CORRUPTION_ERROR.unit.fixed(model.mean_corruption_error)
    table = Table(title=f"Accuracy under corruptions ({role}; mean corruption error {mce})", title_justify="left")
    table.add_column("corruption")
    for level in SEVERITY_LEVELS:
        table.add_column(f"severity {level}", justify="right")
    table.add_column(CORRUPTION_ERROR.column, justify="right")
    for corruption_id, result in model.corruptions.items():
        cells = [CORRUPTION_ACCURACY.unit.table(p.accuracy) if (p := result.find(level)) else ""
                 for level in SEVERITY_LEVELS]
        table.add_row(escape(corruption_id), *cells, CORRUPTION_ERROR.unit.fixed(result.corruption_error))
    return table


def _subgroup_table(role: str, model: ModelResult) -> Table:
    """One row per subgroup: its test images and every clean metric with its interval."""
    table = Table(title=f"Subgroups ({role}, without attack)", title_justify="left")
    table.add_column("subgroup")
    table.add_column("n", justify="right")
    for metric in metrics_in(CLEAN):
        table.add_column(metric.label, justify="right")
    for attribute, values in model.subgroups.items():
        for value, sub in values.items():
            table.add_row(escape(f"{attribute}={value}"), str(sub.clean.n),
                          *(with_interval(metric, sub, separator="\n") for metric in metrics_in(CLEAN)))
    return table


def _comparison_table(run: RunResults) -> Table:
    """Naive against hardened on the same images: discordant pairs and the exact McNemar p-value."""
    comparisons = run.comparisons
    table = Table(title=f"Paired comparison {comparisons[0].a} vs {comparisons[0].b} (exact McNemar)",
                  title_justify="left")
    for column in ("attack", "ε", "pairs", f"{comparisons[0].a} only", f"{comparisons[0].b} only", "p"):
        table.add_column(column, justify="left" if column == "attack" else "right")
    for c in comparisons:
        table.add_row(escape(c.attack or "none"), "" if c.epsilon is None else eps_label(c.epsilon), str(c.n_pairs),
                      str(c.only_a), str(c.only_b), f"{c.p_value:.3g}")
    return table


def print_summary(console: Console, run: RunResults) -> None:
    """Print the clean metrics, the robust-accuracy grid, subgroups, paired comparisons and the criteria table
    (harness.cli.closing ends the run)."""
    statistics = run.statistics
    for role in run.model_roles:
        model = run.model(role)
        clean = ", ".join(f"{m.label} {with_interval(m, model)}" for m in metrics_in(CLEAN))
        point = model.operating_point
        at = f" (decided at P(positive) ≥ {point['threshold']:.4g})" if point else ""
        macro = f", macro sensitivity {model.clean.macro_sensitivity:.1%}" if model.clean.macro_sensitivity else ""
        console.print(f"[bold]{role} model[/bold], test n={model.clean.n}{at}: {clean}{macro}")
        console.print(_robust_accuracy_table(role, model, run))
        if model.corruptions:
            console.print(_corruption_table(role, model))
        if model.subgroups:
            console.print(_subgroup_table(role, model))
    if statistics is not None:
        clustered = (f"; patient-clustered where patients repeat ({statistics.n_groups} test patients, "
                     f"{statistics.bootstrap_resamples} bootstrap resamples)" if statistics.clustered else "")
        console.print(escape(f"[brackets]: two-sided {level_text(statistics.confidence)} "
                             f"{METHOD_NAMES.get(statistics.interval, statistics.interval)} intervals "
                             f"(ROC AUC: DeLong){clustered}"))
    if run.comparisons:
        console.print(_comparison_table(run))
    if run.criteria:
        table = Table(title="Acceptance criteria", title_justify="left")
        for column in ("criterion", "threshold", "measured", "verdict"):
            table.add_column(column, justify="left" if column == "criterion" else "right")
        for c in run.criteria:
            mark = "[green]PASS[/green]" if c.passed else "[yellow]INCONCLUSIVE[/yellow]" if c.inconclusive else \
                "[red]FAIL[/red]"
            judged = judged_text(c).removeprefix("measured ") + (" (judge: estimate, a deviation)" if c.deviation
                                                                 else "")
            threshold = f"{c.op} {c.threshold:g}" if c.baseline is None else (  # a regression gate: approved ∓ drop
                f"{c.op} {METRICS[c.metric].unit.fixed(c.baseline.approved)} {'-' if c.op == '>=' else '+'} "
                f"{c.baseline.max_drop:g}")
            table.add_row(escape(c.id), threshold, escape(judged), mark)
        console.print(table)
