"""The results document (versioned JSON schema) and the per-sample CSV, built from evaluation outcomes."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from harness.attacks.sweep import AttackOutcome
from harness.plan.schema import AttackSpec
from harness.registry.contracts import NativeUnits
from harness.results.metrics import rates
from harness.storage.atomic import write_text_atomic

SCHEMA = "harness.results"
SCHEMA_VERSION = 1


def new_results(plan_name: str, plan_sha256: str) -> dict[str, Any]:
    """An empty results document for a run that is starting."""
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "status": "running",
            "plan": {"name": plan_name, "sha256": plan_sha256}, "dataset": {}, "models": {},
            "criteria": [], "verdict": None, "warnings": []}


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or Infinity: such values become null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def attack_summary(spec: AttackSpec, outcome: AttackOutcome, labels: np.ndarray, clean_correct: np.ndarray,
                   positive_class: int, native: NativeUnits | None) -> dict[str, Any]:
    """Robust accuracy, sensitivity, specificity and success rate per epsilon for one attack."""
    points = []
    n_correct = int(clean_correct.sum())
    for k, eps in enumerate(outcome.epsilons):
        robust_correct = clean_correct & ~outcome.success[k]
        point = {f"robust_{key}": value for key, value in rates(labels, robust_correct, positive_class).items()}
        point.update({
            "epsilon": eps,
            "epsilon_native": native.describe(eps) if native else None,
            "n": int(len(labels)),
            "attack_success_rate": (float((clean_correct & outcome.success[k]).sum()) / n_correct
                                    if n_correct else None),
            "bound_violations": int(outcome.violations[k]),
        })
        points.append(point)
    summary: dict[str, Any] = {"attack": spec.attack, "norm": spec.norm, "kind": spec.kind,
                               "params": spec.params_dict(), "points": points}
    if outcome.min_epsilon is not None:
        summary["min_epsilon"] = min_epsilon_summary(outcome.min_epsilon)
    return summary


def min_epsilon_summary(min_eps: np.ndarray) -> dict[str, Any]:
    """Quantiles of per-image minimal epsilons that change the model's decision (inf where none was found)."""
    found = np.isfinite(min_eps)
    quantiles = {f"p{q}": finite_or_none(float(np.quantile(min_eps, q / 100, method="lower")))
                 for q in (10, 25, 50, 75, 90)} if len(min_eps) else {}
    return {"n": int(len(min_eps)), "n_not_found": int((~found).sum()),
            "median": quantiles.get("p50"),
            "mean_found": finite_or_none(float(min_eps[found].mean())) if found.any() else None,
            **quantiles}


def samples_csv(rows: list[dict[str, Any]], epsilons: list[float]) -> str:
    """CSV text with one row per (model, test image, attack): success per epsilon and minimal epsilon."""
    eps_columns = [f"success@{eps:g}" for eps in epsilons]
    header = ["model", "attack", "sample_id", "label", "clean_prediction", "clean_correct", *eps_columns,
              "min_epsilon"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def sample_rows(model_role: str, spec: AttackSpec, outcome: AttackOutcome, sample_ids: list[str],
                labels: np.ndarray, clean_pred: np.ndarray) -> list[dict[str, Any]]:
    """Rows for samples.csv for one model and attack."""
    rows = []
    for i, sample_id in enumerate(sample_ids):
        row: dict[str, Any] = {"model": model_role, "attack": spec.id, "sample_id": sample_id,
                               "label": int(labels[i]), "clean_prediction": int(clean_pred[i]),
                               "clean_correct": int(clean_pred[i] == labels[i])}
        for k, eps in enumerate(outcome.epsilons):
            row[f"success@{eps:g}"] = int(outcome.success[k, i])
        if outcome.min_epsilon is not None:
            value = outcome.min_epsilon[i]
            row["min_epsilon"] = f"{value:.9g}" if math.isfinite(value) else "inf"
        rows.append(row)
    return rows


def write_samples(path: Any, rows: list[dict[str, Any]], epsilons: list[float]) -> None:
    """Atomically write samples.csv."""
    write_text_atomic(path, samples_csv(rows, epsilons))
