"""The last lines of every `harness run` (also with --quiet): warnings, the verdict, the failed criteria, and where
the evidence is."""

from __future__ import annotations

from pathlib import Path

from harness.formatting import judged_text
from harness.results.baselines import baseline_outcome
from harness.results.view import RunResults


def closing_lines(view: RunResults) -> list[str]:
    """Plain lines (no markup): warnings, the verdict, each failed criterion with value and threshold, and the
    paths of report.pdf and results.json."""
    verdict = view.verdict
    lines = [f"harness: warning: {warning}" for warning in view.warnings]
    if verdict is not None:
        inconclusive = f", {verdict.n_inconclusive} inconclusive" if verdict.n_inconclusive else ""
        lines.append(f"harness: verdict {verdict.word} "
                     f"({verdict.n_passed} of {verdict.n_criteria} criteria passed{inconclusive})")
    for criterion in view.criteria:
        if criterion.inconclusive and not criterion.passed:
            lines.append(f"harness: {criterion.id}: {criterion.inconclusive}")
        elif not criterion.passed and criterion.baseline is not None:
            lines.append(f"harness: failed {criterion.id}: {baseline_outcome(criterion)}")
        elif not criterion.passed:
            lines.append(f"harness: failed {criterion.id}: {judged_text(criterion)}, required {criterion.op} "
                         f"{criterion.threshold:g}")
    for name in ("report.pdf", "results.json"):
        path = Path(view.run_dir) / name
        if path.exists():
            lines.append(f"harness: {name}: {path}")
    return lines
