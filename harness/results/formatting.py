"""How numbers are written in the console, the report and file keys: rates, scores and epsilons."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.results.model import CriterionResult


def missing(value: float | None) -> bool:
    """Whether a value is absent or NaN (shown as 'n/a')."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: float | None, digits: int = 1) -> str:
    """0.269 → '26.9%'; None → 'n/a'."""
    return "n/a" if missing(value) else f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    """A rate or score with fixed decimals; None → 'n/a'."""
    return "n/a" if missing(value) else f"{value:.{digits}f}"


def trimmed(value: float | None) -> str:
    """A rate or score with at most 3 decimals and no trailing zeros (0.8, 0.656); None → 'n/a'."""
    if missing(value):
        return "n/a"
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:g}"


def eps_label(epsilon: float) -> str:
    """An epsilon as a key: samples.csv columns, criterion ids, console headers and messages (0.004, 1e-05)."""
    return f"{epsilon:g}"


def eps_text(epsilon: float | None) -> str:
    """An epsilon for reading (4 significant digits); None → 'n/a', infinity → 'not found'."""
    if epsilon is None:
        return "n/a"
    if math.isinf(epsilon):
        return "not found"
    return f"{epsilon:.4g}"


def severity_text(value: float, unit: str) -> str:
    """A corruption severity's parameter value in its unit: '43 HU (σ)', '1.5 mm FWHM', '40 JPEG quality'."""
    return f"{value:g} {unit}".strip()


def threshold_label(value: float) -> str:
    """A criterion threshold as criterion ids write it: two decimals when exact (0.80), else as short as possible."""
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def format_value(value: float) -> str:
    """A measured value: three decimals, or three significant digits for small values."""
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


def level_text(confidence: float) -> str:
    """A confidence level as a percentage: 95%, 98.75% (after Holm's adjustment)."""
    return f"{100 * confidence:.4g}%"


def judged_text(entry: CriterionResult) -> str:
    """What was compared with the threshold: 'measured 0.231', or with a bound 'measured 0.713, one-sided lower 95%
    bound 0.629 (Wilson score)', and the subgroup or (for `corruption: any`) the corruption it was measured on."""
    text = f"measured {format_value(float(entry.measured))}" if entry.measured is not None else "not measured"
    if entry.subgroup:
        where = ", ".join(f"{k}={v}" for k, v in entry.subgroup.items())
        text += f" in {'the worst subgroup, ' if entry.subgroup_rule == 'worst' else 'subgroup '}{where}"
    if entry.corruption and entry.measured is not None and entry.note:
        text += f" ({entry.note})"  # e.g. which corruption was the worst
    if entry.bounded and entry.bound_value is not None:
        text += (f", one-sided {entry.judged_on} {level_text(entry.confidence or 0.95)} bound "
                 f"{format_value(float(entry.bound_value))}" + (f" ({entry.interval})" if entry.interval else ""))
    return text


def interval_text(bounds: tuple[float, float] | None, write: Callable[[float | None], str]) -> str:
    """'50.0%–83.5%' with each end written by `write` (pct, num); '' without an interval."""
    return "" if bounds is None else f"{write(bounds[0])}–{write(bounds[1])}"
