"""certification_samples.csv: one row per (model, σ, de-identified certified test image): CERTIFY's class and
radius, the bound behind it and PREDICT's class, so every certified accuracy in results.json can be recounted."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.storage.atomic import write_text_atomic

FILE_NAME = "certification_samples.csv"
ABSTAINED = "abstain"
COLUMNS = ["model", "sigma", "sample_id", "label", "base_prediction", "certified_class", "radius", "p_lower",
           "top_count", "smoothed_prediction"]


def _cls(value: int) -> str:
    return ABSTAINED if value < 0 else str(int(value))


def certification_rows(role: str, sigma: float, indices: np.ndarray, certified: np.ndarray, radius: np.ndarray,
                       p_lower: np.ndarray, top_count: np.ndarray, predicted: np.ndarray, sample_ids: Sequence[str],
                       labels: np.ndarray, base_pred: np.ndarray) -> list[dict[str, str]]:
    """The rows of one model at one σ, in test-split order."""
    rows = []
    for k, index in enumerate(np.asarray(indices, dtype=np.int64)):
        rows.append({"model": role, "sigma": f"{sigma:g}", "sample_id": str(sample_ids[index]),
                     "label": str(int(labels[index])), "base_prediction": str(int(base_pred[index])),
                     "certified_class": _cls(int(certified[k])), "radius": repr(float(radius[k])),
                     "p_lower": repr(float(p_lower[k])), "top_count": str(int(top_count[k])),
                     "smoothed_prediction": _cls(int(predicted[k]))})
    return rows


def update_certification_samples(path: Path, rows: list[dict[str, str]]) -> None:
    """Atomically rewrite the file with `rows` replacing any earlier rows of the same model and σ."""
    replaced = {(row["model"], row["sigma"]) for row in rows}
    kept = [row for row in read_certification_samples(path) if (row["model"], row["sigma"]) not in replaced] \
        if path.exists() else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows([*kept, *rows])
    write_text_atomic(path, buffer.getvalue())


def read_certification_samples(path: Path) -> list[dict[str, str]]:
    """The rows as written (strings)."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
