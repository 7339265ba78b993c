"""Certified robustness: randomized smoothing's certified accuracy against the L2 radius, per σ and model, with the
guarantee in words, how the smoothed classifier differs from the base model on clean images, and the limitations.
Left out when the plan has no `certification` section."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_label, interval_text, pct
from harness.report import plots
from harness.report.inputs import ReportInput
from harness.results.certification import NOISE_TRAINED, CertificationResult, SigmaResult
from harness.results.uncertainty import shown

TITLE = "Certified robustness (randomized smoothing)"


def _cell(value: float | None, interval: Any) -> dict[str, str]:
    return {"value": pct(value), "interval": interval_text(shown(interval), lambda v: pct(v, 0))}


def model_kind(result: CertificationResult) -> str:
    """'noise-trained (Gaussian noise augmentation at σ = 0.25)' or 'plain (never trained with noise)'."""
    if result.model_kind == NOISE_TRAINED:
        return f"noise-trained (Gaussian noise augmentation at σ = {result.training_sigma:g})"
    return "plain (never trained with Gaussian noise: a certificate is valid but usually small)"


def _cost(report: ReportInput, role: str, sigma: float) -> str:
    entry = ((report.manifest.extra.get("certification") or {}).get("cost") or {}).get(role, {}).get(f"{sigma:g}") or {}
    rate = entry.get("forward_passes_per_second")
    used = (entry.get("precision") or {}).get("used", "float32")
    return f"{rate:,.0f}/s ({used})" if rate else f"– ({used})"


def _row(report: ReportInput, role: str, result: CertificationResult, found: SigmaResult,
         epsilons: list[float]) -> dict[str, Any]:
    native = report.native_text(found.sigma)
    points = [found.find(epsilon=eps) for eps in epsilons]
    return {"role": role, "sigma": f"{found.sigma:g}", "native": native,
            "smoothed": _cell(found.smoothed_accuracy, found.intervals.get("smoothed_accuracy")),
            "abstained": pct(found.abstention_rate), "certify_abstained": pct(found.certify_abstention_rate),
            "at": [_cell(p.certified_accuracy, p.intervals.get("certified_accuracy")) if p else None
                   for p in points],
            "median": "–" if found.median_radius is None else f"{found.median_radius:.3f}",
            "max": f"{found.max_radius:.3f}", "passes": f"{found.forward_passes:,}",
            "cost": _cost(report, role, found.sigma)}


def _comparison(report: ReportInput, results: dict[str, CertificationResult], epsilon: float) -> str | None:
    """Whether the noise-trained model certifies more than the plain one at the headline ε's radius, and why not."""
    kinds = {r.model_kind: (role, r) for role, r in results.items()}
    if len(kinds) < 2:
        return None
    (plain_role, plain), (noisy_role, noisy) = kinds["plain"], kinds[NOISE_TRAINED]
    radius = plain.radius_of(epsilon)

    def best(result: CertificationResult) -> tuple[float, SigmaResult | None]:
        scored = [((p.certified_accuracy or 0.0), s) for s in result.sigmas if (p := s.find(epsilon=epsilon))]
        return max(scored, key=lambda pair: pair[0], default=(0.0, None))

    (plain_best, plain_sigma), (noisy_best, noisy_sigma) = best(plain), best(noisy)
    if plain_sigma is None or noisy_sigma is None:
        return None
    head = (f"At r = {radius:.3g} (ε = {eps_label(epsilon)}), the noise-trained {noisy_role} model certifies "
            f"{pct(noisy_best)} of the images (best σ = {noisy_sigma.sigma:g}) and the plain {plain_role} model "
            f"{pct(plain_best)} (σ = {plain_sigma.sigma:g}). ")
    constant = plain_sigma.smoothed_accuracy is not None and plain.base_accuracy is not None and (
        plain_sigma.smoothed_accuracy < plain.base_accuracy - 0.1)
    why = (" The plain model's smoothed accuracy there "
           f"({pct(plain_sigma.smoothed_accuracy)}) is far below its base accuracy ({pct(plain.base_accuracy)}): "
           "under this noise it gives most noisy copies one class, so it certifies the images of that class, often "
           "at the largest radius n samples allow, and misclassifies the others. Its certified accuracy measures the "
           "share of that class among the certified images, not robustness." if constant else "")
    if noisy_best > plain_best:
        return head + "Training with noise made the smoothed classifier both accurate and certifiable." + why
    return head + "The noise-trained model does not certify more." + (why or (
        " On these images the plain model is already stable under this noise; with few certified images the "
        "difference is within the intervals."))


def build(report: ReportInput) -> dict[str, Any] | None:
    results = {role: model.certification for role in report.roles
               if (model := report.model(role)) is not None and model.certification is not None}
    if not results:
        return None
    first = next(iter(results.values()))
    epsilons = sorted({p.epsilon for r in results.values() for s in r.sigmas for p in s.points
                       if p.epsilon is not None})
    epsilon_radii = [(first.radius_of(e), f"ε {eps_label(e)}") for e in epsilons]
    panels = [(f"{role}: {r.model_kind}", [plots.CertifiedCurve(
        s.sigma, [p.radius for p in s.points], [p.certified_accuracy for p in s.points],
        [shown(p.intervals.get("certified_accuracy")) for p in s.points]) for s in r.sigmas])
        for role, r in results.items()]
    headline = report.cutoff if report.cutoff in epsilons else (epsilons[len(epsilons) // 2] if epsilons else None)
    uncovered = [w for w in report.run.document.warnings if w.startswith("certification cannot cover")]
    return {
        "plot": plots.data_uri(plots.certified_plot(panels, epsilon_radii)),
        "n0": first.n0, "n": first.n, "alpha": f"{first.alpha:g}", "confidence": pct(1 - first.alpha, 1),
        "n_images": first.n_images, "n_test": first.n_test, "dimension": first.dimension,
        "sqrt_d": f"{first.dimension ** 0.5:.4g}",
        "conversions": [{"eps": eps_label(e), "native": report.native_text(e), "radius": f"{first.radius_of(e):.4g}"}
                        for e in epsilons],
        "epsilons": [f"ε {eps_label(e)}" for e in epsilons],
        "epsilon_radii": [f"r {first.radius_of(e):.3g}" for e in epsilons],
        "models": [{"role": role, "kind": model_kind(r), "base": pct(r.base_accuracy),
                    "smoothed": ", ".join(f"{pct(s.smoothed_accuracy)} at σ {s.sigma:g}" for s in r.sigmas),
                    "abstained": ", ".join(f"{pct(s.abstention_rate)} at σ {s.sigma:g}" for s in r.sigmas)}
                   for role, r in results.items()],
        "rows": [_row(report, role, r, s, epsilons) for role, r in results.items() for s in r.sigmas],
        "comparison": _comparison(report, results, headline) if headline is not None else None,
        "max_radius": ", ".join(f"{s.max_radius:.3g} at σ {s.sigma:g}" for s in first.sigmas),
        "uncovered": uncovered,
        "native_note": report.native_note(),
    }
