"""Acceptance criteria: each with what it measures, its threshold, the measured value and the verdict."""

from __future__ import annotations

from typing import Any

from harness.formatting import level_text, severity_text
from harness.plan.criteria import ANY_CORRUPTION
from harness.plan.metrics import COUNT, EPSILON, METRICS, RATE, Unit
from harness.report.inputs import ReportInput
from harness.results.model import CriterionResult

TITLE = "Acceptance criteria"
OPERATORS = {">=": "≥", "<=": "≤"}


def corruption_text(report: ReportInput, corruption: str, severity: int | None) -> str:
    """' under ct_noise at severity 3 (43 HU (σ))', or ' under every corruption at severity 3' for 'any'."""
    if corruption == ANY_CORRUPTION:
        return " under every corruption" + (f" at severity {severity}" if severity is not None else "")
    text = f" under {corruption}"
    found = report.corruption(corruption)
    point = found.find(severity) if found and severity is not None else None
    if severity is not None:
        text += f" at severity {severity}" + (f" ({severity_text(point.value, found.unit)})" if point else "")
    return text


def percent(value: float) -> str:
    """A proportion as a percentage with at most 3 significant digits: 0.9 → '90%', 0.656 → '65.6%'."""
    return f"{100 * value:.3g}%"


def threshold_text(op: str, threshold: float | None, unit: Unit, change: bool, written: str) -> str:
    """The threshold with its direction and its unit where the metric has one: a proportion also as a percentage
    (or percentage points for a change), a count in images; an ε is already written in native units where known,
    else on the [0,1] pixel scale; a score or flag has no unit."""
    text = f"{OPERATORS.get(op, op)} {written}"
    if threshold is None:
        return text
    if unit is RATE:
        return text + (f" ({100 * threshold:+.3g} percentage points)" if change else
                       f" ({percent(threshold)})")
    if unit is COUNT:
        return text + f" image{'s' if threshold != 1 else ''}"
    if unit is EPSILON and "(" not in written:
        return text + " (on the [0,1] pixel scale)"
    return text


def criterion_row(report: ReportInput, c: CriterionResult) -> dict[str, Any]:
    """One criterion as the report writes it: what it measures (ε also in native units, the corruption, the
    subgroup), threshold, measured value and what was judged (the point estimate or a confidence bound)."""
    metric = METRICS.get(c.metric)
    unit: Unit = metric.unit if metric else RATE
    what = c.metric
    if c.attack:
        what += f" under {c.attack}"
    if c.epsilon is not None:
        what += f" at ε = {report.eps_native(c.epsilon)}"
    if c.corruption:
        what += corruption_text(report, c.corruption, c.severity)
    if c.measured is None:
        verdict, css = "NOT MEASURED", "fail"
    else:
        verdict, css = ("PASS", "pass") if c.passed else ("INCONCLUSIVE", "inconclusive") if c.inconclusive else \
            ("FAIL", "fail")
    if c.subgroup:
        where = ", ".join(f"{k} = {v}" for k, v in c.subgroup.items())
        what += f", worst subgroup ({where})" if c.subgroup_rule == "worst" else f", subgroup {where}"

    def write(value: float | None) -> str:
        """The value in the metric's unit; an epsilon (not a change of one) also in native units."""
        if unit is EPSILON and value is not None and c.model != "change":
            return report.eps_native(value)
        return unit.short(value)

    judged = "point estimate"
    if c.bounded:
        judged = (f"one-sided {c.judged_on} {level_text(c.confidence or 0.95)} bound {write(c.bound_value)}"
                  + (f" ({c.interval})" if c.interval else ""))
    if c.deviation:
        judged += " — DEVIATION: not the default one-sided bound (judge: estimate)"
    threshold = threshold_text(c.op, c.threshold, unit, c.model == "change", write(c.threshold))
    return {"id": c.id, "what": what, "judged": judged, "model": "hardened − naive" if c.model == "change" else c.model,
            "description": c.description.strip(), "threshold": threshold,
            "measured": write(c.measured), "note": c.note, "verdict": verdict, "css": css,
            "inconclusive": c.inconclusive, "deviation": c.deviation}


def preregistration(report: ReportInput) -> str:
    """When the criteria were fixed, from git's record of the plan file (manifest `plan.git`)."""
    git = report.plan.git
    if not git:
        return "Version control of the plan file: not recorded by this run."
    if not git.get("tracked"):
        return f"Acceptance criteria: the plan file is {git.get('why') or 'not under version control'}; when the " \
               "criteria were fixed is not shown."
    state = ("modified since that commit (the run used uncommitted changes)" if git.get("modified")
             else "unmodified since")
    return (f"Acceptance criteria fixed in commit {str(git.get('commit'))[:12]} on {str(git.get('date'))[:10]} by "
            f"{git.get('author')}; the plan file was {state}.")


def build(report: ReportInput) -> dict[str, Any]:
    """One row per criterion, in plan order, with how many have no rationale, and when they were fixed."""
    rows = [criterion_row(report, c) for c in report.run.criteria]
    return {"rows": rows, "preregistration": preregistration(report),
            "n_without_rationale": sum(1 for row in rows if not row["description"])}
