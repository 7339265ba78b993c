"""Warnings and deviations: the run's own warnings and everything a reviewer should know that departs from plan."""

from __future__ import annotations

from typing import Any

from harness.report.inputs import ReportInput
from harness.report.text import reduce_command, short_hash

TITLE = "Warnings and deviations"


def warnings(report: ReportInput) -> list[str]:
    """The run's warnings, then deviations the report finds in the results, manifest and files."""
    run, manifest = report.run, report.manifest
    out = list(run.warnings)
    resumed = list(manifest.resumed_at)
    if resumed:
        out.append(f"The run stopped (interrupted, killed or an error) and was resumed {len(resumed)} "
                   f"time{'s' if len(resumed) != 1 else ''} (at {', '.join(map(str, resumed))}); the work finished "
                   "before each stop was kept, and --resume refused any change to what decides the numbers.")
    stopped = report.stop_description()
    if stopped:
        out.append(f"The run did not finish as planned ({stopped}); sections may be missing numbers.")
    if report.plan_source_verified is False:
        out.append(f"{report.plan.copy} no longer hashes to the plan file sha256 the manifest recorded "
                   "(it was changed after the run); Appendix A shows the changed copy.")
    if report.overrides:
        out.append("The plan was changed on the command line (recorded in the manifest): "
                   + "; ".join(reduce_command([o]) for o in report.overrides) + ".")
    for role, info in manifest.models.items():
        if isinstance(info, dict) and info.get("cache_hit"):
            out.append(f"The {role} model's weights were loaded from the harness cache (trained earlier from "
                       f"identical settings and data; weights sha256 {short_hash(info.get('weights_sha256'))}).")
    for role in report.roles:
        for attack_id in report.attack_ids:
            attack = report.attack_result(role, attack_id)
            total = sum(p.bound_violations for p in attack.points) if attack else 0
            if total and not any(f"{role}/{attack_id}" in w for w in out):
                out.append(f"{role}/{attack_id}: {total} adversarial examples were outside their ε bound and were "
                           "not counted as successes.")
    out += [f"Criterion {c.id} could not be measured ({c.note or 'no value'}); it counts as failed."
            for c in run.criteria if c.measured is None]
    if run.verdict and run.verdict.n_criteria == 0:
        out.append("The plan defines no acceptance criteria.")
    out += [f"No adversarial examples were saved for the {role} model." for role in report.roles
            if role not in report.examples]
    out += [f"{int((~ex.within_bound).sum())} of the {role} model's saved examples exceed the ε bound of their "
            "attack." for role, ex in report.examples.items()
            if ex.within_bound is not None and not ex.within_bound.all()]
    return out + report.problems


def build(report: ReportInput) -> dict[str, Any]:
    """The numbered list of warnings (empty: the run went as planned)."""
    return {"warnings": warnings(report)}
