"""The runner's certification stage: randomized smoothing of one model at each σ of the plan, saved after each σ.

Rank 0 alone samples (under torchrun the others wait and receive the result). Each σ is resumable image by image
(checkpoints/certification/), its per-image certificates go to certification_samples.csv, and the manifest records
the cost as forward passes per second and the precision used (bf16 on CUDA only where it agreed with float32).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.certification.evaluate import certify_split, image_indices
from harness.certification.precision import choose_engine
from harness.certification.summary import certification_result, coverage_warnings, radius_grid, sigma_result
from harness.plan.schema import Plan
from harness.registry.contracts import DatasetBundle, ModelBundle
from harness.results.certification import SigmaResult
from harness.results.certification_samples import FILE_NAME, certification_rows, update_certification_samples
from harness.results.model import ModelResult
from harness.results.uncertainty import IntervalSettings
from harness.run import distributed

Timed = Callable[[str, Callable[[], Any]], Any]  # the runner's _stage
PROCEDURE = ("CERTIFY and PREDICT of Cohen, Rosenfeld & Kolter (2019): n0 selection and n estimation samples of "
             "Gaussian noise per image (per-image seed from the run seed, σ and the image's index; the same noise "
             "for every model), one-sided Clopper–Pearson bound at 1 − α, radius σ·Φ⁻¹(p_A); PREDICT reuses the n "
             "estimation samples (two-sided binomial test at α)")


class CertificationStage:
    """Certifies each model of the run on the plan's chosen test images."""

    def __init__(self, plan: Plan, dataset: DatasetBundle, run_dir: Path, device: torch.device,
                 progress: Callable[[str, int], Any], intervals: IntervalSettings | None,
                 echo: Callable[[str], None] = lambda line: None) -> None:
        assert plan.certification is not None
        self.plan, self.settings, self.dataset, self.run_dir = plan, plan.certification, dataset, run_dir
        self.device, self.progress, self.intervals, self.echo = device, progress, intervals, echo
        self.test = dataset.splits["test"]
        self.indices = image_indices(len(self.test), self.settings.n_images)
        self.dimension = int(np.prod(dataset.image_shape))
        self.epsilons = sorted({*plan.epsilons, *(e for spec in plan.attacks if spec.norm == "linf"
                                                  for e in spec.epsilons),
                                *(c.epsilon for c in plan.acceptance if c.sigma is not None and c.epsilon is not None)})
        radii = [*self.settings.radii, *(c.radius for c in plan.acceptance if c.radius is not None)]
        self.grid = radius_grid(radii, self.epsilons, self.dimension)

    def inputs(self) -> dict[str, Any]:
        """What decides the certificates (the resume fingerprint's `certification` part)."""
        return {"settings": dataclasses.asdict(self.settings), "images": self.indices.tolist(),
                "grid": [list(point) for point in self.grid]}

    def conversions(self) -> list[str]:
        """The ε → radius conversions, printed once."""
        return [f"harness: certification: ε {eps:g} (L∞) is covered by the L2 radius ε·√d = {eps:g}·√{self.dimension} "
                f"= {eps * self.dimension ** 0.5:.4g}" for eps in self.epsilons]

    def run(self, role: str, bundle: ModelBundle, clean_pred: np.ndarray, model: ModelResult, timed: Timed,
            run_fingerprint: str, manifest: dict[str, Any]) -> tuple[ModelResult, list[str]]:
        """`model` with its certification; `manifest` gets the cost and precision of each σ; coverage warnings."""
        results: list[SigmaResult] = []
        for sigma in self.settings.sigmas:
            raw = timed(f"{role}:certify:sigma={sigma:g}", lambda sigma=sigma: distributed.on_main(
                lambda: self._sigma(role, bundle, clean_pred, sigma, run_fingerprint, manifest)))
            results.append(SigmaResult.from_json(raw))  # every rank rebuilds it from rank 0's JSON
            self.echo(summary_line(role, results[-1], self.epsilons))
        result = certification_result(results, self.settings, self.dimension, self.indices, self.test.labels,
                                      clean_pred, bundle.provenance)
        return dataclasses.replace(model, certification=result), coverage_warnings(result, self.epsilons)

    def _sigma(self, role: str, bundle: ModelBundle, clean_pred: np.ndarray, sigma: float, run_fingerprint: str,
               manifest: dict[str, Any]) -> dict[str, Any]:
        classes = len(self.dataset.class_names)
        engine, choice = choose_engine(bundle.module, self.test, self.indices, sigma, self.settings, classes,
                                       self.device, self.plan.seed)
        bar = self.progress(f"{role}: certify σ={sigma:g}", len(self.indices))
        checkpoint = self.run_dir / "checkpoints" / "certification" / f"{role}__sigma{sigma:g}.npz"
        outcome = certify_split(bundle.module, self.test, self.indices, sigma, self.settings, classes, self.device,
                                self.plan.seed, engine, checkpoint, bar.advance, run_fingerprint)
        bar.close()
        update_certification_samples(self.run_dir / FILE_NAME, certification_rows(
            role, sigma, outcome.indices, outcome.certified, outcome.radius, outcome.p_lower, outcome.top_count,
            outcome.predicted, self.test.sample_ids, self.test.labels, clean_pred))
        passes = outcome.computed * (self.settings.n0 + self.settings.n)
        manifest.setdefault(role, {})[f"{sigma:g}"] = {
            "precision": choice, "images_computed": outcome.computed, "forward_passes": passes,
            "seconds": round(outcome.seconds, 3),
            "forward_passes_per_second": round(passes / outcome.seconds, 1) if outcome.seconds > 0 else None}
        return sigma_result(outcome, sigma, self.test.labels, len(self.test), self.grid, self.settings,
                            self.intervals, choice["used"]).to_json()


def summary_line(role: str, found: SigmaResult, epsilons: list[float]) -> str:
    """'harness: naive: smoothed at σ=0.25: accuracy 85.0%, abstained 5.0%; certified 70.0% at r=0.256 (ε 0.004)'."""
    at = "; ".join(f"certified {100 * p.certified_accuracy:.1f}% at r={p.radius:.3g} (ε {p.epsilon:g})"
                   for p in found.points if p.epsilon in epsilons and p.certified_accuracy is not None)
    accuracy = "n/a" if found.smoothed_accuracy is None else f"{100 * found.smoothed_accuracy:.1f}%"
    abstained = "n/a" if found.abstention_rate is None else f"{100 * found.abstention_rate:.1f}%"
    return f"harness: {role}: smoothed at σ={found.sigma:g}: accuracy {accuracy}, abstained {abstained}; {at}"


def describe(stage: CertificationStage) -> dict[str, Any]:
    """The manifest's `certification` section before any model runs."""
    return {"procedure": PROCEDURE, "settings": dataclasses.asdict(stage.settings), "dimension": stage.dimension,
            "n_images": len(stage.indices), "n_test": len(stage.test),
            "radius_grid": [{"radius": r, "epsilon": e} for r, e in stage.grid]}
