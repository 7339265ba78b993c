"""Part of Results: each minimal-perturbation attack's quantiles of the per-image minimal flipping epsilon."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.report import plots
from harness.report.inputs import ReportInput
from harness.results.formatting import eps_text
from harness.results.model import QUANTILES

TITLE = None  # continues Results


def attack_block(report: ReportInput, attack_id: str) -> dict[str, Any]:
    """One minimal attack: a quantile table per model and a histogram of the per-image values (samples.csv)."""
    table, captions, values = [], [], {}
    for role in report.roles:
        attack = report.attack_result(role, attack_id)
        summary = attack.min_epsilon if attack else None
        if summary:
            table.append({"role": role, "n": summary.n, "not_found": summary.n_not_found,
                          **{f"p{q}": eps_text(summary.quantile(q)) for q in QUANTILES},
                          "mean": eps_text(summary.mean_found)})
        samples = report.samples_for(role, attack_id)
        if samples:
            array = np.asarray([s.min_epsilon for s in samples if s.min_epsilon is not None], dtype=np.float64)
            values[role] = array
            captions.append(f"{role}: {int((np.isfinite(array) & (array > 0)).sum())} images shown; "
                            f"{int((array == 0).sum())} misclassified without attack (ε = 0) and "
                            f"{int(np.isinf(array).sum())} where the attack found no adversarial are not on the log "
                            "axis")
    histogram = None
    if values:
        attack = report.attack(attack_id)
        png = plots.min_epsilon_histogram(attack_id, attack.norm if attack else "linf", values, report.cutoff)
        histogram = plots.data_uri(png) if png else None
    return {"id": attack_id, "table": table, "histogram": histogram, "captions": captions}


def build(report: ReportInput) -> dict[str, Any] | None:
    """One block per minimal attack; left out when the plan has none."""
    blocks = [attack_block(report, attack_id) for attack_id in report.attack_ids_of_kind("minimal")]
    return {"attacks": blocks} if blocks else None
