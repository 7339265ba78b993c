"""Regression gates: this run against its approved runs, per gate with the approved value, the drop and a paired
test (left out when the plan has no `baseline:` criteria)."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text
from harness.plan.metrics import METRICS, RATE
from harness.report.inputs import ReportInput
from harness.report.text import basename, short_hash

TITLE = "Comparison with the approved run"


def approved_runs(report: ReportInput) -> list[dict[str, Any]]:
    """Each approved run once: how the plan named it, its plan, data and weights hashes and its verdict."""
    runs: dict[str, dict[str, Any]] = {}
    for c in report.run.criteria:
        if c.baseline is None:
            continue
        run = c.baseline.run
        entry = runs.setdefault(run.run_dir, {
            "name": basename(run.run_dir), "path": run.run_dir, "specs": [], "plan": run.plan_name,
            "plan_sha": short_hash(run.plan_sha256), "data_sha": short_hash(run.data_sha256),
            "weights": [f"{role} weights {short_hash(sha)}" for role, sha in run.weights_sha256.items()],
            "verdict": "n/a" if run.passed is None else ("PASS" if run.passed else "FAIL"),
            "accepted_failed": False})
        if c.baseline.allow_failed and run.passed is not True:
            entry["accepted_failed"] = True
            entry["verdict"] = (f"{entry['verdict']}: this approved run did not pass; the plan accepts it "
                                "(allow_failed: true)")
        if c.baseline.spec not in entry["specs"]:
            entry["specs"].append(c.baseline.spec)
    return list(runs.values())


def gate_rows(report: ReportInput) -> list[dict[str, Any]]:
    """One row per regression gate, in plan order."""
    rows = []
    for c in report.run.criteria:
        baseline = c.baseline
        if baseline is None:
            continue
        unit = METRICS[c.metric].unit if c.metric in METRICS else RATE
        what = c.metric + (f" under {c.attack}" if c.attack else "")
        what += f" at ε = {eps_text(c.epsilon)}" if c.epsilon is not None else ""
        paired = baseline.paired
        rows.append({"id": c.id, "what": what, "model": "hardened − naive" if c.model == "change" else c.model,
                     "approved_run": basename(baseline.run.run_dir), "approved": unit.short(baseline.approved),
                     "measured": unit.short(c.measured), "drop": unit.short(baseline.drop),
                     "max_drop": unit.short(baseline.max_drop), "word": "drop" if c.op == ">=" else "rise",
                     "paired": None if paired is None else {"n": paired.n_pairs, "a_only": paired.only_a,
                                                            "b_only": paired.only_b, "p": f"{paired.p_value:.3g}"},
                     "paired_note": baseline.paired_note, "method": paired.test if paired else None,
                     "alpha": None if baseline.alpha is None else f"{baseline.alpha:g}",
                     "verdict": "PASS" if c.passed else ("NOT MEASURED" if c.measured is None else "FAIL"),
                     "css": "pass" if c.passed else "fail"})
    return rows


def build(report: ReportInput) -> dict[str, Any] | None:
    """The approved runs and the gates; None without regression gates."""
    rows = gate_rows(report)
    if not rows:
        return None
    methods = sorted({row["method"] for row in rows if row["method"]})
    return {"runs": approved_runs(report), "rows": rows, "methods": methods}
