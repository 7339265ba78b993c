"""The runner's corruption stage: the plan's natural corruptions judged by one model, saved after each corruption.

Rank 0 alone corrupts and classifies (corruptions cost seconds, not the minutes of an attack sweep); every rank
then holds the same result. Each corruption is resumable batch by batch (checkpoints/corruptions/), its per-image
predictions go to corruption_samples.csv, and after the last one a strip of example images is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.corruptions.evaluate import corrupted_predictions, severity_params
from harness.corruptions.examples import save_corruption_examples
from harness.corruptions.fit import corruption_context, describe_context
from harness.plan.corruptions import CorruptionSpec
from harness.plan.params import params_to_dict
from harness.plan.schema import Plan
from harness.registry.contracts import DatasetBundle
from harness.results.build import corruption_result, mean_corruption_error
from harness.results.corruption_samples import FILE_NAME, corruption_rows, update_corruption_samples
from harness.results.model import CorruptionResult, ModelResult
from harness.results.uncertainty import IntervalSettings
from harness.run import distributed

Timed = Callable[[str, Callable[[], Any]], Any]  # the runner's _stage: run work as a named, timed stage
EVALUATION = ("each test image corrupted at each severity (per-image seed from the run seed, the corruption's name "
              "and the image's index) and classified by the float32 model; no attack")


class CorruptionStage:
    """Runs the plan's corruptions on the test split for one model at a time."""

    def __init__(self, plan: Plan, registry: Any, dataset: DatasetBundle, run_dir: Path, device: torch.device,
                 batch_size: int, progress: Callable[[str, int], Any],
                 intervals: IntervalSettings | None = None) -> None:
        self.plan, self.registry, self.dataset, self.run_dir = plan, registry, dataset, run_dir
        self.device, self.batch_size, self.progress, self.intervals = device, batch_size, progress, intervals
        self.context = corruption_context(dataset, plan.seed)

    def inputs(self) -> dict[str, Any]:
        """What decides the corrupted images (the resume fingerprint's `corruptions` part): each corruption's plugin,
        severities and parameters at each severity, and what the corruptions know of the data."""
        return {"context": describe_context(self.dataset, self.context),
                "corruptions": [{"id": spec.id, "corruption": spec.corruption, "severities": list(spec.severities),
                                 "params": [params_to_dict(p) for p in severity_params(
                                     self.registry.get("corruption", spec.corruption), spec)]}
                                for spec in self.plan.corruptions]}

    def describe(self) -> dict[str, Any]:
        """The manifest's `corruptions` section: what the corruptions knew of the data, and each severity's value."""
        levels = {spec.id: {str(s.level): s.value for s in self.registry.get("corruption", spec.corruption).severities
                            if s.level in spec.severities} for spec in self.plan.corruptions}
        return {"context": describe_context(self.dataset, self.context), "severity_values": levels,
                "evaluation": EVALUATION, "batch_size": self.batch_size}

    def run(self, role: str, module: nn.Module, spec: CorruptionSpec, clean_pred: np.ndarray, model: ModelResult,
            timed: Timed, run_fingerprint: str = "") -> ModelResult:
        """`model` with this corruption's result and the updated mean corruption error; its batch checkpoint is
        reused only under the same `run_fingerprint` (harness.run.fingerprint: weights, data, corruption inputs)."""
        raw = timed(f"{role}:corruption:{spec.id}", lambda: distributed.on_main(
            lambda: self._evaluate(role, module, spec, clean_pred, model.clean.accuracy, run_fingerprint).to_json()))
        result = CorruptionResult.from_json(raw)  # every rank rebuilds it from rank 0's JSON
        every = {**model.corruptions, spec.id: result}
        return model.with_corruption(spec.id, result, mean_corruption_error(every.values()))

    def examples(self, role: str, module: nn.Module, timed: Timed) -> None:
        """Save the strip of one test image at every severity of every corruption (rank 0)."""
        test = self.dataset.splits["test"]
        timed(f"{role}:corruption_examples", lambda: distributed.on_main(lambda: save_corruption_examples(
            self.run_dir, role, module, test, self.plan.corruptions, self.registry, self.context,
            self.dataset.positive_class, self.device), share=False))

    def _evaluate(self, role: str, module: nn.Module, spec: CorruptionSpec, clean_pred: np.ndarray,
                  clean_accuracy: float | None, run_fingerprint: str) -> CorruptionResult:
        plugin = self.registry.get("corruption", spec.corruption)
        test = self.dataset.splits["test"]
        bar = self.progress(f"{role}: corruption {spec.id}", len(test))
        checkpoint = self.run_dir / "checkpoints" / "corruptions" / f"{role}__{spec.id}.npz"
        predictions = corrupted_predictions(module, test, plugin, spec, self.context, self.batch_size, self.device,
                                            checkpoint, bar.advance, run_fingerprint)
        bar.close()
        update_corruption_samples(self.run_dir / FILE_NAME, corruption_rows(
            role, spec.id, spec.severities, predictions, test.sample_ids, test.labels, clean_pred))
        return corruption_result(plugin, spec.params_dict(), spec.severities, predictions, test.labels,
                                 clean_accuracy, self.dataset.positive_class, self.intervals)
