"""Small finished run directories with chosen per-image outcomes, for tests of comparisons, gates and the history."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.plan.epsilons import EpsilonGrid
from harness.results.attack_outcome import AttackOutcome
from harness.results.build import attack_result, clean_metrics
from harness.results.model import DatasetSummary, ModelResult, PlanRef, ResultsDocument, Verdict
from harness.results.samples import sample_outcomes, write_samples
from harness.results.status import FAILED, PASSED
from harness.results.view import RunResults
from harness.storage.atomic import write_json_atomic

EPSILONS = [0.002, 0.004]
PGD_PARAMS = {"steps": 10, "rel_stepsize": 0.25, "abs_stepsize": None, "random_start": True, "restarts": 1}
DATA = "da" * 32


def outcomes(n: int, n_right: int, n_fooled: int) -> tuple[np.ndarray, np.ndarray]:
    """Images 0..n_right-1 right without attack; of those the last n_fooled fooled at both epsilons."""
    right = np.arange(n) < n_right
    fooled = right & (np.arange(n) >= n_right - n_fooled)
    return right, np.stack([fooled, fooled])


def write_run(run_dir: Path, *, n: int = 20, n_right: int = 16, n_fooled: int = 6, ids: list[str] | None = None,
              plan: str = "plan", data: str | None = DATA, params: dict | None = None, status: str | None = None,
              passed: bool = True, weights: str = "aa" * 32, right: np.ndarray | None = None,
              fooled: np.ndarray | None = None) -> Path:
    """A run directory (results.json, manifest.json, samples.csv) of one naive model and one attack, 'pgd'; finished
    (passed or failed by `passed`) unless `status` says otherwise."""
    run_dir = Path(run_dir)
    labels = np.arange(n) % 2
    default_right, default_fooled = outcomes(n, n_right, n_fooled)
    right = default_right if right is None else right
    fooled = default_fooled if fooled is None else fooled
    ids = ids or [f"id{i:03d}" for i in range(n)]
    prediction = np.where(right, labels, 1 - labels)
    logits = np.eye(2)[prediction] * 2.0
    outcome = AttackOutcome(EPSILONS, fooled, np.zeros(len(EPSILONS), dtype=int), None)
    result = attack_result("pgd_linf", "linf", "fixed_epsilon", params or PGD_PARAMS, outcome, labels, right, 1, None)
    model = ModelResult(weights, clean_metrics(labels, logits, 1)).with_attack("pgd", result)
    status = status or (PASSED if passed else FAILED)
    document = ResultsDocument(PlanRef(plan, "bb" * 32), status=status,
                               dataset=DatasetSummary("phantom", ("benign", "malignant"), 1, data, n),
                               models={"naive": model})
    if status in (PASSED, FAILED):
        document = replace(document, verdict=Verdict(passed, int(passed), 1))
    write_json_atomic(run_dir / "results.json", document.to_json())
    write_json_atomic(run_dir / "manifest.json", {"schema": "harness.manifest", "started_at": "2026-01-01T00:00:00Z",
                                                  "plan": {"name": plan, "file_sha256": "cc" * 32}})
    write_samples(run_dir / "samples.csv", sample_outcomes("naive", "pgd", outcome, ids, labels, prediction),
                  EpsilonGrid.of(EPSILONS))
    return run_dir


def load(run_dir: Path) -> RunResults:
    """The run directory as RunResults."""
    return RunResults.load(run_dir)
