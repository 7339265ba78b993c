"""Part of Results: each minimal-perturbation attack's quantiles of the per-image minimal flipping epsilon."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.formatting import eps_text
from harness.report import plots
from harness.report.inputs import ReportInput
from harness.results.model import QUANTILES
from harness.results.samples import SampleOutcome

TITLE = None  # continues Results


def _eps_cell(report: ReportInput, eps: float | None) -> dict[str, str | None]:
    """An epsilon and, where the data have native units, the same in those units."""
    finite = eps is not None and np.isfinite(eps)
    return {"eps": eps_text(eps), "native": report.native_text(eps) if finite else None}  # type: ignore[arg-type]


def caption(role: str, samples: list[SampleOutcome]) -> str:
    """Which of a model's test images the histogram shows, counted from samples.csv."""
    values = np.asarray([s.min_epsilon for s in samples if s.min_epsilon is not None], dtype=np.float64)
    wrong = sum(1 for s in samples if not s.clean_correct)
    shown, zero, not_found = (int((np.isfinite(values) & (values > 0)).sum()), int((values == 0).sum()),
                              int(np.isinf(values).sum()))
    left_out = [f"{not_found} where the attack found no adversarial"] if not_found else []
    left_out += [f"{zero} at ε = 0"] if zero else []
    return (f"{role}: {len(samples)} test images ({len(samples) - wrong} classified correctly without attack, {wrong} "
            f"misclassified), {shown} on the axis" + (f"; {' and '.join(left_out)} are not" if left_out else ""))


def attack_block(report: ReportInput, attack_id: str) -> dict[str, Any]:
    """One minimal attack: a quantile table per model and a histogram of the per-image values (samples.csv)."""
    table, captions, values = [], [], {}
    for role in report.roles:
        attack = report.attack_result(role, attack_id)
        summary = attack.min_epsilon if attack else None
        if summary:
            table.append({"role": role, "n": summary.n, "not_found": summary.n_not_found,
                          "quantiles": [_eps_cell(report, summary.quantile(q)) for q in QUANTILES],
                          "mean": _eps_cell(report, summary.mean_found)})
        samples = report.samples_for(role, attack_id)
        if samples:
            values[role] = np.asarray([s.min_epsilon for s in samples if s.min_epsilon is not None], dtype=np.float64)
            captions.append(caption(role, samples))
    histogram = None
    if values:
        attack, native = report.attack(attack_id), report.native
        png = plots.min_epsilon_histogram(attack_id, attack.norm if attack else "linf", values, report.cutoff,
                                          native.per_unit if native else None, native.unit if native else None)
        histogram = plots.data_uri(png) if png else None
    return {"id": attack_id, "table": table, "histogram": histogram, "captions": captions,
            "quantiles": [f"{q}th pct" if q != 50 else "median" for q in QUANTILES]}


def build(report: ReportInput) -> dict[str, Any] | None:
    """One block per minimal attack; left out when the plan has none."""
    blocks = [attack_block(report, attack_id) for attack_id in report.attack_ids_of_kind("minimal")]
    return {"attacks": blocks, "native_unit": report.native.unit if report.native else None} if blocks else None
