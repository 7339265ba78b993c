"""One-line messages for failed criteria and failed runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.formatting import judged_text, threshold_label

if TYPE_CHECKING:
    from harness.results.model import CriterionResult


def failure_message(entry: CriterionResult, run_dir: str, show: Callable[[str], str] = str) -> str:
    """E.g. 'pgd_linf[eps=0.004]::robust_accuracy>=0.60: measured 0.231 < 0.60 (run directory: runs/…)', or
    'pgd_linf[eps=0.004]::lower(robust_accuracy)>=0.70: measured 0.713, one-sided lower 95% bound 0.629 (Wilson
    score) < 0.70 (run directory: runs/…)'; a regression gate names its approved run (its path through `show`):
    '…: measured 0.612, approved 0.656 (runs/…), drop 0.044 > 0.020; paired on …'; an inconclusive criterion
    '…: inconclusive: more_iterations, <detail>; measured 0.713 … (run directory: runs/…)'."""
    threshold = threshold_label(float(entry.threshold))
    if entry.inconclusive:
        detail = f"{entry.inconclusive}; {judged_text(entry)}, required {entry.op} {threshold}"
    elif entry.baseline is not None:
        from harness.results.baselines import baseline_outcome

        detail = baseline_outcome(entry, show)
    elif entry.measured is None or (entry.bounded and entry.bound_value is None):
        detail = f"{entry.note or 'not measured'}; required {entry.op} {threshold}"
    else:
        detail = f"{judged_text(entry)} {'<' if entry.op == '>=' else '>'} {threshold}"
    return f"{entry.id}: {detail} (run directory: {run_dir})"


def one_line(error: BaseException | None) -> str:
    """An error on one line: a HarnessError's own line, else 'Type: message'."""
    from harness.errors import HarnessError

    if isinstance(error, HarnessError):
        return error.one_line()
    return f"{type(error).__name__}: {' '.join(str(error).split())}"
