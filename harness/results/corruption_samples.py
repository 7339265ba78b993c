"""corruption_samples.csv: one row per (model, corruption, de-identified test image) with its prediction at each
severity, so every corruption accuracy in results.json can be recounted from the rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from harness.registry.severities import SEVERITY_LEVELS
from harness.storage.atomic import write_text_atomic

FILE_NAME = "corruption_samples.csv"
COLUMNS = ["model", "corruption", "sample_id", "label", "clean_prediction",
           *(f"prediction@{level}" for level in SEVERITY_LEVELS)]


def corruption_rows(role: str, corruption_id: str, severities: list[int], predictions: np.ndarray,
                    sample_ids: list[str], labels: np.ndarray, clean_pred: np.ndarray) -> list[dict[str, str]]:
    """The rows of one model and corruption; severities that did not run are left empty."""
    rows = []
    for i, sample_id in enumerate(sample_ids):
        row = {"model": role, "corruption": corruption_id, "sample_id": str(sample_id), "label": str(int(labels[i])),
               "clean_prediction": str(int(clean_pred[i]))}
        row.update({f"prediction@{level}": str(int(predictions[k, i])) for k, level in enumerate(severities)})
        rows.append(row)
    return rows


def update_corruption_samples(path: Path, rows: list[dict[str, str]]) -> None:
    """Atomically rewrite the file with `rows` replacing any earlier rows of the same model and corruption."""
    replaced = {(row["model"], row["corruption"]) for row in rows}
    kept = [row for row in read_corruption_samples(path) if (row["model"], row["corruption"]) not in replaced] \
        if path.exists() else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows([*kept, *rows])
    write_text_atomic(path, buffer.getvalue())


def read_corruption_samples(path: Path) -> list[dict[str, str]]:
    """The rows as written (strings; empty where a severity did not run)."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
