"""The plan's `certification:` section: randomized smoothing (Cohen et al. 2019) of each model on the test split.

    certification:
      sigma: [0.12, 0.25, 0.5]   # noise levels on [0,1] pixels (the report shows them in native units too)
      n0: 100                    # selection samples per image (CERTIFY picks the top class from these)
      n: 1000                    # estimation samples per image (they bound the top class's probability)
      alpha: 0.001               # 1 − α: the certificate's confidence over the noise
      batch_size: 500            # noisy copies per forward pass
      n_images: 100              # certify this many test images, evenly spaced (default: all)
      radii: [0.5, 1.0]          # extra L2 radii for the curve (each plan ε's ε·√d is always in it)
      precision: auto            # auto: bf16 on CUDA where it agrees with float32 (as engine: auto); float32

Criteria on its metrics name a σ of this list (`sigma:`, optional when it has one) and, for `certified_accuracy`,
either an L∞ `epsilon:` (converted to the L2 radius ε·√d once the image size is known) or an L2 `radius:`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import PlanError
from harness.plan.params import LineLookup, build_dataclass

ErrorAt = Callable[[str, "str | None"], PlanError]  # (message, key path) → PlanError naming file and line
DEFAULT_RADII = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)


@dataclass
class CertificationSettings:
    """How the smoothed classifiers are certified (the plan's `certification:` mapping)."""

    sigma: list[float] = field(default_factory=lambda: [0.12, 0.25, 0.5], metadata={"gt": 0, "max": 1})
    n0: int = field(default=100, metadata={"min": 1, "max": 10_000_000})
    n: int = field(default=1000, metadata={"min": 1, "max": 100_000_000})
    alpha: float = field(default=0.001, metadata={"gt": 0, "max": 0.25})
    batch_size: int = field(default=500, metadata={"min": 1, "max": 1_000_000})
    n_images: int | None = field(default=None, metadata={"min": 1})
    radii: list[float] = field(default_factory=lambda: list(DEFAULT_RADII), metadata={"min": 0, "max": 1000})
    precision: Literal["auto", "float32"] = "auto"

    @property
    def sigmas(self) -> list[float]:
        """The noise levels, in the plan's order."""
        return list(self.sigma)


def certification_settings(raw: Any, error: ErrorAt, lines: LineLookup) -> CertificationSettings | None:
    """Validate the `certification` mapping (None when the plan has none); `sigma` may be one number."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise error("expected a mapping, e.g. {sigma: [0.12, 0.25, 0.5], n: 1000}", "certification")
    raw = dict(raw)
    if isinstance(raw.get("sigma"), (int, float)) and not isinstance(raw.get("sigma"), bool):
        raw["sigma"] = [raw["sigma"]]
    try:
        settings = build_dataclass(CertificationSettings, raw, "certification", lines)
    except PlanError as exc:
        raise error(exc.detail, exc.key) from None
    if not settings.sigma:
        raise error("give at least one noise level, e.g. sigma: [0.25]", "certification.sigma")
    if len(set(settings.sigma)) != len(settings.sigma):
        raise error("noise levels must not repeat", "certification.sigma")
    return settings


def criterion_certification(metric: Any, item: dict[str, Any], settings: CertificationSettings | None, key: str,
                            error: ErrorAt) -> tuple[float | None, float | None, float | None]:
    """The (epsilon, radius, sigma) a criterion names, checked against the metric and the plan's certification."""
    epsilon, radius, sigma = item.get("epsilon"), item.get("radius"), item.get("sigma")
    if not getattr(metric.scope, "certified", False):
        for name, value in (("radius", radius), ("sigma", sigma)):
            if value is not None:
                raise error(f"metric {metric.name} takes no {name}", f"{key}.{name}")
        return epsilon, None, None
    if settings is None:
        raise error(f"metric {metric.name} needs a 'certification' section in the plan", f"{key}.metric")
    if sigma is None and len(settings.sigma) == 1:
        sigma = settings.sigma[0]
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or float(sigma) not in settings.sigma:
        raise error(f"metric {metric.name} needs 'sigma' naming one of the plan's noise levels "
                    f"({', '.join(f'{s:g}' for s in settings.sigma)}), got {sigma!r}", f"{key}.sigma")
    if not metric.scope.needs_radius:
        for name, value in (("epsilon", epsilon), ("radius", radius)):
            if value is not None:
                raise error(f"metric {metric.name} takes no {name} (it is measured on clean images)",
                            f"{key}.{name}")
        return None, None, float(sigma)
    if (epsilon is None) == (radius is None):
        raise error(f"metric {metric.name} needs exactly one of 'epsilon' (L∞, converted to the L2 radius ε·√d) "
                    "or 'radius' (L2)", key)
    name, value = ("epsilon", epsilon) if epsilon is not None else ("radius", radius)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise error(f"{name} must be a number ≥ 0, got {value!r}", f"{key}.{name}")
    return (float(value), None, float(sigma)) if name == "epsilon" else (None, float(value), float(sigma))
