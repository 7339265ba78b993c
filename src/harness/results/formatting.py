"""How numbers are written in the console, the report and file keys: rates, scores and epsilons."""

from __future__ import annotations

import math


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


def threshold_label(value: float) -> str:
    """A criterion threshold as criterion ids write it: two decimals when exact (0.80), else as short as possible."""
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"
