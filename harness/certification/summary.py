"""Typed results from per-image certificates: certified accuracy over the radius grid, with intervals.

The grid is the plan's `radii` plus the L2 radius ε·√d of every L∞ ε the plan names (its epsilons, its L∞ attacks'
grids and its certification criteria): an L2 certificate of radius r covers every L∞ perturbation of size ε when
r ≥ ε·√d, because ‖δ‖₂ ≤ √d·‖δ‖∞.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from harness.certification.evaluate import SigmaOutcome
from harness.certification.smoothing import ABSTAIN
from harness.plan.certification import CertificationSettings
from harness.results.certification import NOISE_TRAINED, PLAIN, CertificationResult, CertifiedPoint, SigmaResult
from harness.results.uncertainty import IntervalSettings, proportion_interval
from harness.stats.smoothing import max_certifiable_radius

NOISE_PROVENANCE = "noise_augmentation"  # a model's provenance key: {"sigma": σ} when trained with Gaussian noise


def radius_grid(radii: Iterable[float], epsilons: Iterable[float], dimension: int) -> list[tuple[float, float | None]]:
    """(radius, the L∞ ε it covers or None), by radius; a radius equal to an ε's is tagged with the ε."""
    grid: dict[float, float | None] = {float(r): None for r in radii}
    for epsilon in sorted(set(float(e) for e in epsilons)):
        radius = epsilon * math.sqrt(dimension)
        same = next((r for r in grid if math.isclose(r, radius, rel_tol=1e-9, abs_tol=1e-12)), radius)
        grid.pop(same, None)
        grid[radius] = epsilon
    return sorted(grid.items())


def model_kind(provenance: Mapping[str, Any]) -> tuple[str, float | None]:
    """Whether the model was trained with Gaussian noise augmentation (and at which σ), from its provenance."""
    noise = provenance.get(NOISE_PROVENANCE)
    if isinstance(noise, Mapping) and noise.get("sigma") is not None:
        return NOISE_TRAINED, float(noise["sigma"])
    return PLAIN, None


def sigma_result(outcome: SigmaOutcome, sigma: float, labels: np.ndarray, n_test: int,
                 grid: list[tuple[float, float | None]], settings: CertificationSettings,
                 intervals: IntervalSettings | None, precision: str = "float32") -> SigmaResult:
    """One σ's result from its per-image outcomes (`labels`: the whole test split's)."""
    truth = np.asarray(labels)[outcome.indices]
    everyone = np.ones(len(truth), dtype=bool)
    mask = np.zeros(n_test, dtype=bool)
    mask[outcome.indices] = True
    subset = intervals.subset(mask) if intervals is not None else None
    correct = outcome.certified == truth  # an abstention (-1) is never correct

    def rate(hits: np.ndarray) -> float | None:
        return float(np.count_nonzero(hits)) / len(hits) if len(hits) else None

    def interval(hits: np.ndarray) -> dict[str, Any]:
        found = proportion_interval(hits, everyone, subset) if subset is not None else None
        return {} if found is None else {"value": found}

    points = []
    for radius, epsilon in grid:
        hits = correct & (outcome.radius >= radius)
        found = interval(hits)
        points.append(CertifiedPoint(radius=radius, certified_accuracy=rate(hits), n_certified=int(hits.sum()),
                                     n=len(truth), epsilon=epsilon,
                                     intervals={"certified_accuracy": found["value"]} if found else {}))
    smoothed = outcome.predicted == truth
    abstained = outcome.predicted == ABSTAIN
    stored = {name: found["value"] for name, hits in (("smoothed_accuracy", smoothed), ("abstention_rate", abstained))
              if (found := interval(hits))}
    radii = outcome.radius[correct]
    return SigmaResult(sigma=sigma, points=tuple(points), smoothed_accuracy=rate(smoothed),
                       abstention_rate=rate(abstained), certify_abstention_rate=rate(outcome.certified == ABSTAIN),
                       max_radius=max_certifiable_radius(sigma, settings.n, settings.alpha),
                       median_radius=float(np.median(radii)) if len(radii) else None,
                       forward_passes=len(truth) * (settings.n0 + settings.n), precision=precision, intervals=stored)


def certification_result(sigmas: list[SigmaResult], settings: CertificationSettings, dimension: int,
                         indices: np.ndarray, labels: np.ndarray, base_pred: np.ndarray,
                         provenance: Mapping[str, Any]) -> CertificationResult:
    """A model's certification from its σ results."""
    kind, trained_at = model_kind(provenance)
    base = np.asarray(base_pred)[indices] == np.asarray(labels)[indices]
    return CertificationResult(dimension=dimension, n0=settings.n0, n=settings.n, alpha=settings.alpha,
                               n_images=len(indices), n_test=len(labels),
                               base_accuracy=float(base.mean()) if len(base) else None, model_kind=kind,
                               training_sigma=trained_at, sigmas=tuple(sigmas))


def coverage_warnings(result: CertificationResult, epsilons: Iterable[float]) -> list[str]:
    """One warning per plan ε whose L2 radius ε·√d no σ of the plan can certify with n samples at α."""
    largest = max(result.sigmas, key=lambda s: s.max_radius, default=None)
    out = []
    for epsilon in sorted(set(epsilons)):
        radius = result.radius_of(epsilon)
        if largest is not None and radius > largest.max_radius:
            out.append(f"certification cannot cover ε={epsilon:g}: its L2 radius ε·√d = {radius:.3g} "
                       f"(d = {result.dimension}) is beyond the largest radius any image can be certified at, "
                       f"σ·Φ⁻¹(α^(1/n)) = {largest.max_radius:.3g} at σ = {largest.sigma:g} with n = {result.n} and "
                       f"α = {result.alpha:g}; a larger σ or n is needed")
    return out
