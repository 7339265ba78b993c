"""A comparison of two runs (harness.results.compare) as text: the cells of its tables, and the Markdown file."""

from __future__ import annotations

from harness.formatting import eps_label, missing
from harness.plan.metrics import METRICS
from harness.report.text import short_hash
from harness.results.compare import Comparison, MetricDifference
from harness.results.model import RunIdentity
from harness.stats.paired import TEST_NAME

RUN_COLUMNS = ("", "run directory", "plan", "plan sha256", "data sha256", "naive weights sha256", "verdict")
METRIC_COLUMNS = ("metric", "attack", "ε", "A", "B", "B − A", "A only", "B only", "p")
NOTE = ("A only / B only: images the metric counts that only run A / only run B classified correctly (paired on the "
        "same de-identified test images); p: {test}.")


def signed(row: MetricDifference) -> str:
    """B − A in the metric's unit: percentage points for rates, else the plain difference."""
    value = row.difference
    if missing(value):
        return "n/a"
    unit = METRICS[row.metric].unit.name
    return f"{100 * value:+.1f} pp" if unit == "rate" else f"{value:+.4g}"


def metric_cells(row: MetricDifference) -> list[str]:
    """One row of a model role's table."""
    unit = METRICS[row.metric].unit
    paired = row.paired
    return [row.metric, row.attack or "", "" if row.epsilon is None else eps_label(row.epsilon), unit.table(row.a),
            unit.table(row.b), signed(row), str(paired.only_a) if paired else "", str(paired.only_b) if paired else "",
            f"{paired.p_value:.3g}" if paired else ""]


def run_cells(label: str, run: RunIdentity) -> list[str]:
    """One run's identity: directory name, plan, hashes and verdict."""
    verdict = "n/a" if run.passed is None else ("PASS" if run.passed else "FAIL")
    return [label, run.name, run.plan_name, short_hash(run.plan_sha256), short_hash(run.data_sha256),
            short_hash(run.weights_sha256.get("naive")), verdict]


def heading(comparison: Comparison) -> str:
    """One sentence on what was paired."""
    return (f"{comparison.n_images} test images in both runs (the same de-identified sample ids); B − A is run B "
            "less run A.")


def markdown(comparison: Comparison) -> str:
    """The comparison as a Markdown document."""
    lines = [f"# {comparison.b.name} compared with {comparison.a.name}", "", _table(RUN_COLUMNS, [
        run_cells("A", comparison.a), run_cells("B", comparison.b)]), "", heading(comparison), ""]
    for role in comparison.roles:
        rows = [metric_cells(row) for row in comparison.rows if row.role == role]
        lines += [f"## {role} model", "", _table(METRIC_COLUMNS, rows), ""]
    lines += [NOTE.format(test=TEST_NAME), ""]
    if comparison.notes:
        lines += ["Notes:", "", *(f"- {note}" for note in comparison.notes), ""]
    return "\n".join(lines)


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(columns), line(["---"] * len(columns)), *(line(row) for row in rows)])
