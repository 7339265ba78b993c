"""The robustness profile: on one page, each model's accuracy without attack, under each attack at the cutoff ε and
under each natural corruption, side by side, and what hardening changed."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text, num, pct
from harness.report import plots
from harness.report.inputs import ReportInput
from harness.report.sections.corruptions import hardening_sentence
from harness.report.worst_case import lowest_accuracy

TITLE = "Robustness profile"


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def profile_rows(report: ReportInput) -> list[plots.ProfileRow]:
    """Clean accuracy, accuracy under each attack (minimal ones included) near the cutoff, mean accuracy under each
    corruption."""
    rows = [plots.ProfileRow("clean", "clean", {role: report.model(role).clean.accuracy  # type: ignore[union-attr]
                                                for role in report.roles})]
    for attack_id in report.attack_ids:
        points = {role: report.point_near_cutoff(role, attack_id) for role in report.roles}
        first = next((p for p in points.values() if p is not None), None)
        if first is None:
            continue
        native = report.native_text(first.epsilon, first)
        label = f"{report.attack_name(attack_id)}, ε = {eps_text(first.epsilon)}" + (f" ({native})" if native else "")
        if any(p is not None and report.upper_bound(role, attack_id, p.epsilon) for role, p in points.items()):
            label += " (upper bound: the attack failed)"
        rows.append(plots.ProfileRow(label, "attack", {role: p.robust_accuracy if p else None
                                                       for role, p in points.items()}))
    for corruption_id in report.corruption_ids:
        results = {role: report.corruption_result(role, corruption_id) for role in report.roles}
        levels = sorted({p.severity for r in results.values() if r for p in r.points})
        span = f"{levels[0]}–{levels[-1]}" if len(levels) > 1 and levels == list(range(levels[0], levels[-1] + 1)) \
            else ", ".join(map(str, levels))
        rows.append(plots.ProfileRow(f"{corruption_id}, severities {span}", "corruption",
                                     {role: _mean([p.accuracy for p in r.points]) if r else None
                                      for role, r in results.items()}))
    return rows


def _worst_corruption(report: ReportInput, role: str) -> tuple[float, str] | None:
    found = [(p.accuracy, f"{cid} at severity {p.severity}") for cid in report.corruption_ids
             if (r := report.corruption_result(role, cid)) for p in r.points if p.accuracy is not None]
    return min(found, key=lambda item: item[0]) if found else None


def sentences(report: ReportInput, rows: list[plots.ProfileRow]) -> list[str]:
    """The naive model's weakest attack and corruption, and what hardening changed."""
    out = []
    clean = rows[0].accuracy.get("naive")
    lowest = lowest_accuracy(report, "naive")
    if lowest is not None:
        out.append(f"Under attack, the naive model's lowest accuracy is {pct(lowest.accuracy)} ({lowest.attack_id}, "
                   f"ε = {report.eps_native(lowest.point.epsilon, lowest.point)}), against {pct(clean)} on clean "
                   "images.")
    worst = _worst_corruption(report, "naive")
    corruptions = [row.accuracy.get("naive") for row in rows if row.kind == "corruption"]
    if worst is not None:
        out.append(f"Under natural corruptions its accuracy averages {pct(_mean(corruptions))} over the corruptions "
                   f"and severities run; the lowest is {pct(worst[0])} ({worst[1]}).")
    if "hardened" in report.roles:
        changes = [row.accuracy["hardened"] - row.accuracy["naive"] for row in rows if row.kind == "attack"
                   and row.accuracy.get("hardened") is not None and row.accuracy.get("naive") is not None]
        if changes:
            out.append(f"Hardening changed accuracy under attack by {100 * _mean(changes):+.1f} percentage points "
                       "on average over the attacks above.")
        natural = hardening_sentence(report)
        if natural:
            out.append(natural)
    return out


def build(report: ReportInput) -> dict[str, Any] | None:
    """The profile plot, its table and sentences; None for a run without corruptions."""
    if not report.corruption_ids:
        return None
    rows = profile_rows(report)
    table = []
    for row in rows:
        values = [row.accuracy.get(role) for role in report.roles]
        change = values[1] - values[0] if len(values) == 2 and None not in values else None
        table.append({"label": row.label, "kind": row.kind, "values": [pct(v) for v in values],
                      "change": "" if change is None else f"{100 * change:+.1f}"})
    mce = [num(m.mean_corruption_error, 2) for role in report.roles if (m := report.model(role))]
    return {"plot": plots.data_uri(plots.profile_plot(rows)), "rows": table, "roles": report.roles,
            "sentences": sentences(report, rows), "mce": mce, "cutoff": eps_text(report.cutoff),
            "has_minimal": bool(report.attack_ids_of_kind("minimal"))}
