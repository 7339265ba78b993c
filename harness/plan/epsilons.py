"""EpsilonGrid: an attack's epsilons, matched exactly and named the same way everywhere.

Epsilons come from the plan (parsed once from YAML) and travel unchanged into results, criteria and samples.csv,
so equal epsilons are equal floats: the grid matches them exactly, never with a tolerance. Each epsilon's label
(`eps_label`, e.g. '0.004') names its samples.csv column (`success@0.004`) and appears in criterion ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from harness.formatting import eps_label

SUCCESS_PREFIX = "success@"


def success_column(epsilon: float) -> str:
    """The samples.csv column of per-image attack success at one epsilon."""
    return f"{SUCCESS_PREFIX}{eps_label(epsilon)}"


@dataclass(frozen=True)
class EpsilonGrid:
    """Distinct epsilons in increasing order."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(sorted(set(map(float, self.values)))))

    @classmethod
    def of(cls, *grids: Iterable[float]) -> EpsilonGrid:
        """The union of one or more lists of epsilons."""
        return cls(tuple(eps for grid in grids for eps in grid))

    def __iter__(self) -> Iterator[float]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, epsilon: object) -> bool:
        return epsilon in self.values

    def index(self, epsilon: float) -> int:
        """The position of an epsilon of the grid (KeyError naming the grid otherwise)."""
        try:
            return self.values.index(epsilon)
        except ValueError:
            raise KeyError(f"epsilon {eps_label(epsilon)} is not in the grid ({self.text()})") from None

    def closest(self, target: float) -> float | None:
        """The grid epsilon closest to `target` (the smaller on a tie), or None for an empty grid."""
        return min(self.values, key=lambda eps: abs(eps - target)) if self.values else None

    def text(self) -> str:
        """'0.001, 0.004': the grid as plans and messages write it."""
        return ", ".join(map(eps_label, self.values))

    def columns(self) -> list[str]:
        """The samples.csv success columns, one per epsilon."""
        return [success_column(eps) for eps in self.values]

    def by_column(self) -> dict[str, float]:
        """Each samples.csv success column → its epsilon."""
        return {success_column(eps): eps for eps in self.values}
