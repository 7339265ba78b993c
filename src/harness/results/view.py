"""A typed, read-only view of one run's results: clean metrics, robust accuracy, per-sample outcomes, criteria."""

from __future__ import annotations

import csv
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

_EPS_TOLERANCE = 1e-12


def freeze(value: Any) -> Any:
    """A deep read-only copy of JSON data: mappings become MappingProxyType, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


@dataclass(frozen=True)
class CleanMetrics:
    """Clean (unattacked) metrics of one model on the test split; None where undefined on the data."""

    accuracy: float | None
    sensitivity: float | None
    specificity: float | None
    roc_auc: float | None
    n: int
    confusion_matrix: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class AttackPoint:
    """One attack at one epsilon for one model."""

    epsilon: float
    robust_accuracy: float | None
    robust_sensitivity: float | None
    robust_specificity: float | None
    attack_success_rate: float | None
    bound_violations: int
    n: int
    epsilon_native: str | None


@dataclass(frozen=True)
class CriterionResult:
    """One acceptance criterion with its measured value, threshold and outcome."""

    id: str
    metric: str
    model: str
    attack: str | None
    epsilon: float | None
    op: str
    threshold: float
    measured: float | None
    passed: bool
    description: str = ""
    note: str | None = None


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

    def fooled_at(self, epsilon: float) -> bool:
        """Whether the attack succeeded at this epsilon (KeyError if the attack did not run at it)."""
        for eps, success in self.success.items():
            if abs(eps - epsilon) <= _EPS_TOLERANCE:
                return success
        raise KeyError(f"attack {self.attack!r} did not run at epsilon {epsilon:g}")


@dataclass(frozen=True)
class Verdict:
    """Whether every criterion passed, and how many did."""

    passed: bool
    n_passed: int
    n_criteria: int


class RunResults:
    """Read-only, typed access to a run directory's results.json, manifest.json and samples.csv."""

    def __init__(self, run_dir: Path, results: Mapping[str, Any], manifest: Mapping[str, Any] | None = None) -> None:
        self._run_dir = Path(run_dir)
        self._results = freeze(results)
        self._manifest = freeze(manifest or {})

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResults:
        """Read a run directory written by the harness (any run, finished or interrupted)."""
        run_dir = Path(run_dir)
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        manifest_path = run_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
        return cls(run_dir, results, manifest)

    @classmethod
    def from_run(cls, run: Any) -> RunResults:
        """View a harness.run.runner.RunResult (no re-reading of the JSON files)."""
        return cls(run.run_dir, run.results, run.manifest)

    def __repr__(self) -> str:
        return f"RunResults({str(self._run_dir)!r}, verdict={self.verdict})"

    # -- the run as a whole -------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """The run directory."""
        return self._run_dir

    @property
    def raw(self) -> Mapping[str, Any]:
        """The whole results document (schema harness.results), read-only."""
        return self._results

    @property
    def manifest(self) -> Mapping[str, Any]:
        """The manifest (resolved plan, versions, hashes, device, timings), read-only."""
        return self._manifest

    @property
    def status(self) -> str:
        """'complete', or 'running' for a run that stopped early."""
        return str(self._results.get("status"))

    @property
    def plan_name(self) -> str:
        """The plan's name."""
        return str(self._results.get("plan", {}).get("name"))

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings recorded during the run (e.g. adversarial examples outside their bound)."""
        return tuple(self._results.get("warnings", ()))

    @property
    def verdict(self) -> Verdict | None:
        """The overall verdict, or None if the run did not reach the criteria."""
        raw = self._results.get("verdict")
        return None if raw is None else Verdict(bool(raw["passed"]), int(raw["n_passed"]), int(raw["n_criteria"]))

    @property
    def passed(self) -> bool:
        """Whether the run finished and every criterion passed."""
        verdict = self.verdict
        return verdict is not None and verdict.passed

    # -- models, clean metrics and the attack sweep -------------------------------------------------------
    @property
    def model_roles(self) -> tuple[str, ...]:
        """The evaluated model roles ('naive', and 'hardened' when the plan has a defence)."""
        return tuple(self._results.get("models", {}))

    @property
    def clean(self) -> Mapping[str, CleanMetrics]:
        """Clean metrics per model role."""
        return MappingProxyType({role: self.clean_metrics(role) for role in self.model_roles})

    def clean_metrics(self, model: str = "naive") -> CleanMetrics:
        """Clean metrics of one model role."""
        raw = self._model(model).get("clean", {})
        return CleanMetrics(accuracy=raw.get("accuracy"), sensitivity=raw.get("sensitivity"),
                            specificity=raw.get("specificity"), roc_auc=raw.get("roc_auc"), n=int(raw.get("n", 0)),
                            confusion_matrix=tuple(tuple(row) for row in raw.get("confusion_matrix", ())))

    def attacks(self, model: str = "naive") -> tuple[str, ...]:
        """The attack ids evaluated on one model role."""
        return tuple(self._model(model).get("attacks", {}))

    def points(self, attack: str, model: str = "naive") -> tuple[AttackPoint, ...]:
        """Every epsilon of one attack on one model role, in increasing epsilon."""
        attacks = self._model(model).get("attacks", {})
        if attack not in attacks:
            raise KeyError(f"attack {attack!r} was not run on the {model} model (run: {', '.join(attacks) or 'none'})")
        return tuple(_point(raw) for raw in attacks[attack].get("points", ()))

    def point(self, attack: str, epsilon: float, model: str = "naive") -> AttackPoint:
        """One attack at one epsilon on one model role."""
        points = self.points(attack, model)
        for point in points:
            if abs(point.epsilon - epsilon) <= _EPS_TOLERANCE:
                return point
        grid = ", ".join(f"{p.epsilon:g}" for p in points)
        raise KeyError(f"attack {attack!r} did not run at epsilon {epsilon:g} (grid: {grid})")

    def robust_accuracy(self, attack: str, epsilon: float, model: str = "naive") -> float | None:
        """Robust accuracy of one model role under one attack at one epsilon."""
        return self.point(attack, epsilon, model).robust_accuracy

    def min_epsilon(self, attack: str, model: str = "naive") -> Mapping[str, Any] | None:
        """Quantiles of the minimal flipping epsilon (minimal-perturbation attacks), or None."""
        self.points(attack, model)  # KeyError naming the attack if it was not run
        return self._model(model)["attacks"][attack].get("min_epsilon")

    def _model(self, model: str) -> Mapping[str, Any]:
        models = self._results.get("models", {})
        if model not in models:
            raise KeyError(f"model {model!r} was not evaluated in this run (evaluated: {', '.join(models) or 'none'})")
        return models[model]

    # -- criteria and samples -----------------------------------------------------------------------------
    @property
    def criteria(self) -> tuple[CriterionResult, ...]:
        """Every acceptance criterion, in plan order."""
        return tuple(_criterion(raw) for raw in self._results.get("criteria", ()))

    def criterion(self, criterion_id: str) -> CriterionResult:
        """One criterion by its id (e.g. 'pgd_linf[eps=0.004]::robust_accuracy>=0.60')."""
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        raise KeyError(f"no criterion {criterion_id!r} (have: {', '.join(c.id for c in self.criteria)})")

    @functools.cached_property
    def samples(self) -> tuple[SampleOutcome, ...]:
        """Per-sample outcomes from samples.csv (empty if the run wrote none)."""
        path = self._run_dir / "samples.csv"
        if not path.exists():
            return ()
        with path.open(encoding="utf-8", newline="") as handle:
            return tuple(_sample(row) for row in csv.DictReader(handle))

    def samples_for(self, attack: str, model: str = "naive") -> tuple[SampleOutcome, ...]:
        """Per-sample outcomes of one attack on one model role."""
        return tuple(s for s in self.samples if s.attack == attack and s.model == model)


def _point(raw: Mapping[str, Any]) -> AttackPoint:
    return AttackPoint(epsilon=float(raw["epsilon"]), robust_accuracy=raw.get("robust_accuracy"),
                       robust_sensitivity=raw.get("robust_sensitivity"),
                       robust_specificity=raw.get("robust_specificity"),
                       attack_success_rate=raw.get("attack_success_rate"),
                       bound_violations=int(raw.get("bound_violations", 0)), n=int(raw.get("n", 0)),
                       epsilon_native=raw.get("epsilon_native"))


def _criterion(raw: Mapping[str, Any]) -> CriterionResult:
    return CriterionResult(id=raw["id"], metric=raw["metric"], model=raw.get("model", "naive"),
                           attack=raw.get("attack"), epsilon=raw.get("epsilon"), op=raw["op"],
                           threshold=float(raw["threshold"]), measured=raw.get("measured"),
                           passed=bool(raw["passed"]), description=raw.get("description") or "",
                           note=raw.get("note"))


def _sample(row: Mapping[str, str]) -> SampleOutcome:
    success = {float(key.split("@", 1)[1]): value == "1"
               for key, value in row.items() if key and key.startswith("success@") and value not in ("", None)}
    raw_min = row.get("min_epsilon") or ""
    min_epsilon = None if raw_min == "" else (math.inf if raw_min == "inf" else float(raw_min))
    return SampleOutcome(model=row["model"], attack=row["attack"], sample_id=row["sample_id"], label=int(row["label"]),
                         clean_prediction=int(row["clean_prediction"]), clean_correct=row["clean_correct"] == "1",
                         success=MappingProxyType(success), min_epsilon=min_epsilon)
