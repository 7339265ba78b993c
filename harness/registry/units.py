"""Native intensity units of a data set: how an epsilon on [0,1] pixels reads in HU or grey levels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NativeUnits:
    """How an epsilon on [0,1] pixels maps to the data's native intensity (e.g. 1.0 = 1500 HU).

    `offset` is the native value of intensity 0.0 when it is known (-1350 HU for a lung window W1500 L-600), so
    that absolute values can be recovered: native = offset + per_unit × intensity.
    """

    per_unit: float
    unit: str
    note: str = ""
    offset: float | None = None

    def describe(self, epsilon: float) -> str:
        """E.g. '6 HU' for epsilon 0.004 at a window width of 1500 HU."""
        value = epsilon * self.per_unit
        return f"{value:.3g} {self.unit}"
