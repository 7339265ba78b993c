"""The one source of a model's lowest accuracy under attack, for every section that states it.

It is the lowest accuracy at the grid ε closest to the susceptibility cutoff over the report's attack ids: the
per-image worst case over attacks (`attack: any`, first when the results carry one, never above any single attack
at its ε) and each of the plan's attacks, fixed-ε and minimal alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.report.inputs import ReportInput
from harness.results.model import AttackPoint


@dataclass(frozen=True)
class Lowest:
    """A model's lowest accuracy under attack and where it was measured."""

    accuracy: float
    attack_id: str
    point: AttackPoint


def attack_points(report: ReportInput, role: str) -> list[tuple[str, AttackPoint]]:
    """Each attack's point at the grid ε closest to the cutoff, in plan order (attacks without one left out)."""
    return [(attack_id, point) for attack_id in report.attack_ids
            if (point := report.point_near_cutoff(role, attack_id)) is not None]


def lowest_accuracy(report: ReportInput, role: str = "naive") -> Lowest | None:
    """The lowest accuracy under attack near the cutoff over every attack, or None without attacks."""
    found = [(point.robust_accuracy, attack_id, point) for attack_id, point in attack_points(report, role)
             if point.robust_accuracy is not None]
    if not found:
        return None
    accuracy, attack_id, point = min(found, key=lambda item: item[0])
    return Lowest(accuracy, attack_id, point)
