"""RunResults: the one read type of a run (what the runner returns, the report reads and pytest gates check)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.errors import HarnessError
from harness.plan.epsilons import EpsilonGrid
from harness.results import status as run_status
from harness.results.manifest import Manifest
from harness.results.model import (
    AttackPoint,
    AttackResult,
    CleanMetrics,
    CorruptionPoint,
    CorruptionResult,
    CriterionResult,
    DatasetSummary,
    DefenceResult,
    MinEpsilonSummary,
    ModelResult,
    PairedComparison,
    ResultsDocument,
    StatisticsSettings,
    Verdict,
    freeze,
    thaw,
)
from harness.results.samples import SampleOutcome, read_samples
from harness.storage.rundir import run_in_progress


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a run directory; HarnessError (one line) when missing or unreadable."""
    if not path.is_file():
        raise HarnessError(f"{path.name} not found at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path} does not hold a JSON object")
    return data


class RunResults:
    """Read-only, typed access to one run: results.json (a ResultsDocument), manifest.json and samples.csv."""

    def __init__(self, run_dir: Path, document: ResultsDocument, manifest: Mapping[str, Any] | None = None) -> None:
        self._run_dir = Path(run_dir)
        self._document = document
        self._manifest = freeze(manifest or {})

    @classmethod
    def load(cls, run_dir: str | Path, require_manifest: bool = False) -> RunResults:
        """Read a run directory written by the harness (finished or interrupted); HarnessError if unreadable."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise HarnessError(f"run directory {run_dir} does not exist")
        path = run_dir / "results.json"
        raw = read_json_object(path)
        try:
            document = ResultsDocument.from_json(raw)
        except ValueError as exc:
            raise HarnessError(f"{path}: {exc}") from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise HarnessError(f"{path} is not a valid harness results document ({type(exc).__name__}: "
                               f"{exc})") from None
        manifest_path = run_dir / "manifest.json"
        manifest = read_json_object(manifest_path) if require_manifest or manifest_path.exists() else {}
        return cls(run_dir, document, manifest)

    def __repr__(self) -> str:
        return f"RunResults({str(self._run_dir)!r}, verdict={self.verdict})"

    # -- the run as a whole -------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """The run directory."""
        return self._run_dir

    @property
    def document(self) -> ResultsDocument:
        """The typed results document (read-only dataclasses)."""
        return self._document

    @functools.cached_property
    def raw(self) -> Mapping[str, Any]:
        """The whole results document as JSON data (schema harness.results), read-only."""
        return freeze(self._document.to_json())

    @property
    def manifest(self) -> Mapping[str, Any]:
        """The manifest's JSON form (resolved plan, versions, hashes, device, timings), read-only."""
        return self._manifest

    @functools.cached_property
    def record(self) -> Manifest:
        """The manifest as the typed Manifest (harness.results.manifest): the one place manifest.json is decoded;
        `record.plan` is the plan with the defaults the run used."""
        return Manifest.from_json(thaw(self._manifest))  # sections hold plain data, the record itself is frozen

    @property
    def status(self) -> str:
        """running, passed, failed, error or interrupted (harness.results.status); a run recorded as running whose
        process is gone (killed) reads interrupted."""
        recorded = self._document.status
        return run_status.effective(recorded, recorded == run_status.RUNNING and run_in_progress(self._run_dir))

    @property
    def stage(self) -> str | None:
        """The stage in progress, or where an error or interruption stopped the run."""
        return self._document.stage

    @property
    def error(self) -> str | None:
        """The error line that stopped the run (error), or None."""
        return self._document.error

    @property
    def exit_code(self) -> int | None:
        """The exit code the run ended with (None while running or when killed)."""
        return self._document.exit_code

    @property
    def plan_name(self) -> str:
        """The plan's name."""
        return self._document.plan.name

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings recorded during the run (e.g. adversarial examples outside their bound)."""
        return self._document.warnings

    @property
    def verdict(self) -> Verdict | None:
        """The overall verdict, or None if the run did not reach the criteria."""
        return self._document.verdict

    @property
    def passed(self) -> bool:
        """Whether the run finished and every criterion passed."""
        return self.verdict is not None and self.verdict.passed

    @property
    def dataset(self) -> DatasetSummary | None:
        """The test data's name, classes, size and native units (None if the run stopped before loading it)."""
        return self._document.dataset

    @property
    def defence(self) -> DefenceResult | None:
        """The defence that hardened the model, or None."""
        return self._document.defence

    @property
    def statistics(self) -> StatisticsSettings | None:
        """How the intervals were computed (method, level, adjustment, cluster bootstrap); None for older runs."""
        return self._document.statistics

    @property
    def comparisons(self) -> tuple[PairedComparison, ...]:
        """Naive against hardened on the same test images: paired counts and exact McNemar p per attack and ε."""
        return self._document.comparisons

    # -- models, clean metrics and the attack sweep -------------------------------------------------------
    @property
    def model_roles(self) -> tuple[str, ...]:
        """The evaluated model roles ('naive', and 'hardened' when the plan has a defence)."""
        return tuple(self._document.models)

    def model(self, model: str = "naive") -> ModelResult:
        """Everything measured on one model role."""
        return self._document.model(model)

    @property
    def clean(self) -> Mapping[str, CleanMetrics]:
        """Clean metrics per model role."""
        return MappingProxyType({role: m.clean for role, m in self._document.models.items()})

    def clean_metrics(self, model: str = "naive") -> CleanMetrics:
        """Clean metrics of one model role."""
        return self.model(model).clean

    def attacks(self, model: str = "naive") -> tuple[str, ...]:
        """The attack ids evaluated on one model role."""
        return tuple(self.model(model).attacks)

    def attack(self, attack: str, model: str = "naive") -> AttackResult:
        """One attack on one model role: plugin, norm, kind, parameters, points and minimal epsilons."""
        return self.model(model).attack(attack, model)

    def points(self, attack: str, model: str = "naive") -> tuple[AttackPoint, ...]:
        """Every epsilon of one attack on one model role, in increasing epsilon."""
        return self.attack(attack, model).points

    def point(self, attack: str, epsilon: float, model: str = "naive") -> AttackPoint:
        """One attack at one epsilon on one model role."""
        return self.attack(attack, model).point(epsilon, attack)

    def robust_accuracy(self, attack: str, epsilon: float, model: str = "naive") -> float | None:
        """Robust accuracy of one model role under one attack at one epsilon."""
        return self.point(attack, epsilon, model).robust_accuracy

    def min_epsilon(self, attack: str, model: str = "naive") -> MinEpsilonSummary | None:
        """Quantiles of the minimal flipping epsilon (minimal-perturbation attacks), or None."""
        return self.attack(attack, model).min_epsilon

    def corruptions(self, model: str = "naive") -> tuple[str, ...]:
        """The corruption ids evaluated on one model role (the report takes the plan's order from the plan)."""
        return tuple(self.model(model).corruptions)

    def corruption(self, corruption: str, model: str = "naive") -> CorruptionResult:
        """One corruption on one model role: plugin, parameter and unit, a point per severity, corruption error."""
        return self.model(model).corruption(corruption, model)

    def corruption_point(self, corruption: str, severity: int, model: str = "naive") -> CorruptionPoint:
        """One corruption at one severity on one model role (accuracy, sensitivity, specificity, relative drop)."""
        return self.corruption(corruption, model).point(severity, corruption)

    @property
    def epsilons(self) -> EpsilonGrid:
        """Every epsilon any attack ran at, on any model."""
        return EpsilonGrid.of(*(a.grid for m in self._document.models.values() for a in m.attacks.values()))

    # -- criteria and samples -----------------------------------------------------------------------------
    @property
    def criteria(self) -> tuple[CriterionResult, ...]:
        """Every acceptance criterion, in plan order."""
        return self._document.criteria

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
        return read_samples(path, self.epsilons) if path.exists() else ()

    def samples_for(self, attack: str, model: str = "naive") -> tuple[SampleOutcome, ...]:
        """Per-sample outcomes of one attack on one model role."""
        return tuple(s for s in self.samples if s.attack == attack and s.model == model)
