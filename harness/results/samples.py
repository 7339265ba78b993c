"""samples.csv: one row per (model, attack, de-identified test image) with success per epsilon and minimal epsilon."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from harness.formatting import eps_label
from harness.plan.epsilons import SUCCESS_PREFIX, EpsilonGrid, success_column
from harness.results.attack_outcome import AttackOutcome
from harness.storage.atomic import write_text_atomic

FIXED_COLUMNS = ["model", "attack", "sample_id", "label", "clean_prediction", "clean_correct"]


@dataclass(frozen=True)
class SampleOutcome:
    """One row of samples.csv: one model, attack and de-identified test image."""

    model: str
    attack: str
    sample_id: str
    label: int
    clean_prediction: int
    clean_correct: bool
    success: Mapping[float, bool]  # epsilon -> attack succeeded (only the attack's own epsilons)
    min_epsilon: float | None  # minimal-perturbation attacks only; math.inf where none was found

    def __post_init__(self) -> None:
        object.__setattr__(self, "success", MappingProxyType(dict(self.success)))

    def fooled_at(self, epsilon: float) -> bool:
        """Whether the attack succeeded at this epsilon (KeyError if the attack did not run at it)."""
        if epsilon not in self.success:
            raise KeyError(f"attack {self.attack!r} did not run at epsilon {eps_label(epsilon)}")
        return self.success[epsilon]

    def row(self) -> dict[str, object]:
        """The CSV row: 1/0 flags, minimal epsilon to 9 significant digits ('inf' where none was found)."""
        row: dict[str, object] = {"model": self.model, "attack": self.attack, "sample_id": self.sample_id,
                                  "label": self.label, "clean_prediction": self.clean_prediction,
                                  "clean_correct": int(self.clean_correct)}
        row.update({success_column(eps): int(hit) for eps, hit in self.success.items()})
        if self.min_epsilon is not None:
            row["min_epsilon"] = f"{self.min_epsilon:.9g}" if math.isfinite(self.min_epsilon) else "inf"
        return row


def sample_outcomes(model_role: str, attack_id: str, outcome: AttackOutcome, sample_ids: list[str],
                    labels: np.ndarray, clean_pred: np.ndarray) -> list[SampleOutcome]:
    """The rows of one model and attack."""
    return [SampleOutcome(model=model_role, attack=attack_id, sample_id=sample_id, label=int(labels[i]),
                          clean_prediction=int(clean_pred[i]), clean_correct=bool(clean_pred[i] == labels[i]),
                          success={eps: bool(outcome.success[k, i]) for k, eps in enumerate(outcome.epsilons)},
                          min_epsilon=None if outcome.min_epsilon is None else float(outcome.min_epsilon[i]))
            for i, sample_id in enumerate(sample_ids)]


def samples_csv(samples: list[SampleOutcome], grid: EpsilonGrid) -> str:
    """CSV text: the fixed columns, one success column per epsilon of the grid, then min_epsilon."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*FIXED_COLUMNS, *grid.columns(), "min_epsilon"], lineterminator="\n")
    writer.writeheader()
    for sample in samples:
        writer.writerow(sample.row())
    return buffer.getvalue()


def write_samples(path: Path, samples: list[SampleOutcome], grid: EpsilonGrid) -> None:
    """Atomically write samples.csv."""
    write_text_atomic(path, samples_csv(samples, grid))


def read_samples(path: Path, grid: EpsilonGrid) -> tuple[SampleOutcome, ...]:
    """Rows of samples.csv; success columns are keyed by the grid's epsilons (the run's, from results.json).

    Raises OSError, UnicodeDecodeError, csv.Error, KeyError or ValueError for an unreadable file.
    """
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        known = grid.by_column()
        columns = {name: known.get(name, float(name[len(SUCCESS_PREFIX):]))
                   for name in reader.fieldnames or () if name.startswith(SUCCESS_PREFIX)}
        return tuple(_sample(row, columns) for row in reader)


def _sample(row: Mapping[str, str], columns: Mapping[str, float]) -> SampleOutcome:
    raw_min = row.get("min_epsilon") or ""
    return SampleOutcome(model=row["model"], attack=row["attack"], sample_id=row["sample_id"], label=int(row["label"]),
                         clean_prediction=int(row["clean_prediction"]), clean_correct=row["clean_correct"] == "1",
                         success={eps: row[name] == "1" for name, eps in columns.items() if row.get(name)},
                         min_epsilon=None if raw_min == "" else float(raw_min))
