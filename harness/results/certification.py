"""Typed certification results (randomized smoothing): certified accuracy over a radius grid for each σ.

A model's `certification` entry in results.json. Every proportion carries its binomial interval (the run's method,
Wilson by default, through harness.results.uncertainty). Abstentions count as abstentions: never as correct.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from harness.results.intervals import Intervals, intervals_json, read_intervals

Json = dict[str, Any]
PLAIN, NOISE_TRAINED = "plain", "noise-trained"  # the kinds of model a certificate is for


def _radius_json(value: float) -> float | str:
    return "inf" if math.isinf(value) else value


def _radius_read(value: Any) -> float:
    return math.inf if value == "inf" else float(value)


@dataclass(frozen=True)
class CertifiedPoint:
    """Certified accuracy at one L2 radius: the share of certified images whose smoothed class is right with
    radius ≥ r. `epsilon` is the plan's L∞ ε this radius covers (r = ε·√d), None for a plain radius."""

    radius: float
    certified_accuracy: float | None
    n_certified: int  # images certified correct at this radius
    n: int  # images certified (the denominator)
    epsilon: float | None = None
    intervals: Intervals = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "intervals", MappingProxyType(dict(self.intervals)))

    def to_json(self) -> Json:
        """One entry of a σ's `points`."""
        return {"radius": self.radius, "epsilon": self.epsilon, "certified_accuracy": self.certified_accuracy,
                "n_certified": self.n_certified, "n": self.n, **intervals_json(self.intervals)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CertifiedPoint:
        """Read one point."""
        return cls(radius=raw["radius"], certified_accuracy=raw.get("certified_accuracy"),
                   n_certified=raw.get("n_certified", 0), n=raw.get("n", 0), epsilon=raw.get("epsilon"),
                   intervals=read_intervals(raw))


@dataclass(frozen=True)
class SigmaResult:
    """The smoothed classifier at one noise level σ: its certified-accuracy curve, its clean accuracy and
    abstentions (PREDICT), CERTIFY's abstentions, and the largest radius n samples can certify."""

    sigma: float
    points: tuple[CertifiedPoint, ...]
    smoothed_accuracy: float | None  # PREDICT returns the true class (abstentions count as wrong)
    abstention_rate: float | None  # PREDICT abstains
    certify_abstention_rate: float | None  # CERTIFY abstains (p_A's lower bound below 1/2)
    max_radius: float  # σ·Φ⁻¹(α^(1/n)): no image can be certified beyond it
    median_radius: float | None  # of the images certified correct
    forward_passes: int  # the base model's forward passes (n0 + n per image)
    precision: str = "float32"  # the options the samples ran under: float32 or bf16, channels-last (where they agreed)
    intervals: Intervals = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(self.points))
        object.__setattr__(self, "intervals", MappingProxyType(dict(self.intervals)))

    def find(self, radius: float | None = None, epsilon: float | None = None) -> CertifiedPoint | None:
        """The point at an L2 radius or at the radius of a plan ε (None when the grid lacks it)."""
        if epsilon is not None:
            return next((p for p in self.points if p.epsilon is not None and math.isclose(p.epsilon, epsilon)), None)
        if radius is None:
            return None
        return next((p for p in self.points if math.isclose(p.radius, radius, rel_tol=1e-9, abs_tol=1e-12)), None)

    def to_json(self) -> Json:
        """One entry of `sigmas`."""
        return {"sigma": self.sigma, "points": [p.to_json() for p in self.points],
                "smoothed_accuracy": self.smoothed_accuracy, "abstention_rate": self.abstention_rate,
                "certify_abstention_rate": self.certify_abstention_rate, "max_radius": _radius_json(self.max_radius),
                "median_radius": self.median_radius, "forward_passes": self.forward_passes,
                "precision": self.precision, **intervals_json(self.intervals)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> SigmaResult:
        """Read one σ."""
        return cls(sigma=raw["sigma"], points=tuple(CertifiedPoint.from_json(p) for p in raw.get("points", ())),
                   smoothed_accuracy=raw.get("smoothed_accuracy"), abstention_rate=raw.get("abstention_rate"),
                   certify_abstention_rate=raw.get("certify_abstention_rate"),
                   max_radius=_radius_read(raw.get("max_radius", 0.0)), median_radius=raw.get("median_radius"),
                   forward_passes=raw.get("forward_passes", 0), precision=raw.get("precision", "float32"),
                   intervals=read_intervals(raw))


@dataclass(frozen=True)
class CertificationResult:
    """One model's randomized-smoothing certification: settings, which images, what kind of model, each σ."""

    dimension: int  # d = C·H·W values per image: an L∞ ε is covered by the L2 radius ε·√d
    n0: int
    n: int
    alpha: float
    n_images: int  # test images certified
    n_test: int  # test images in the split
    base_accuracy: float | None  # the base model's clean accuracy on the certified images
    model_kind: str  # PLAIN or NOISE_TRAINED
    training_sigma: float | None  # the σ of the Gaussian noise augmentation it was trained with
    sigmas: tuple[SigmaResult, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", tuple(self.sigmas))

    def find(self, sigma: float | None) -> SigmaResult | None:
        """The result at one σ, or None."""
        if sigma is None:
            return None
        return next((s for s in self.sigmas if math.isclose(s.sigma, sigma)), None)

    def radius_of(self, epsilon: float) -> float:
        """The L2 radius that covers every L∞ perturbation of size ε: ε·√d."""
        return epsilon * math.sqrt(self.dimension)

    def to_json(self) -> Json:
        """A model's `certification` section."""
        return {"dimension": self.dimension, "n0": self.n0, "n": self.n, "alpha": self.alpha,
                "n_images": self.n_images, "n_test": self.n_test, "base_accuracy": self.base_accuracy,
                "model_kind": self.model_kind, "training_sigma": self.training_sigma,
                "sigmas": [s.to_json() for s in self.sigmas]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CertificationResult:
        """Read a `certification` section."""
        return cls(dimension=raw["dimension"], n0=raw["n0"], n=raw["n"], alpha=raw["alpha"],
                   n_images=raw["n_images"], n_test=raw.get("n_test", raw["n_images"]),
                   base_accuracy=raw.get("base_accuracy"), model_kind=raw.get("model_kind", PLAIN),
                   training_sigma=raw.get("training_sigma"),
                   sigmas=tuple(SigmaResult.from_json(s) for s in raw.get("sigmas", ())))
