"""A supplied model behind its logits view: the load-time output checks, then the operating point.

The runner calls `apply_head` on every model it evaluates (naive, and hardened after a defence); the returned
bundle's module is `harness.attacks.heads.logits_view` of the supplied module, so clean metrics, attacks, the judge,
indicators, defences and corruptions all use the same logits and the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from harness.attacks.heads import logits_view, logits_view_at, supplied_module
from harness.attacks.operating_point import OperatingPoint, choose_point, declared_point
from harness.attacks.output_checks import check_outputs
from harness.data.batches import batches, predict_logits
from harness.errors import DataError, ModelError, PlanError
from harness.plan.heads import ModelHead
from harness.registry.contracts import DatasetBundle, ModelBundle

CHECK_IMAGES = 8  # images the output checks run on


@dataclass
class HeadResult:
    """The bundle behind its view, the operating point (None: argmax), and the checks' warnings."""

    bundle: ModelBundle
    point: OperatingPoint | None = None
    warnings: list[str] = field(default_factory=list)


def apply_head(bundle: ModelBundle, head: ModelHead, dataset: DatasetBundle, device: torch.device, batch_size: int,
               what: str, defence: str | None = None, check: bool = True) -> HeadResult:
    """Check the model's outputs (`check`), refuse a stochastic model a defence, and put it behind its view."""
    module = supplied_module(bundle.module)
    n_classes = len(dataset.class_names)
    warnings: list[str] = []
    if check:
        images, _ = next(iter(batches(dataset.splits["test"], CHECK_IMAGES)))
        report = check_outputs(module, images.to(device), head.output, n_classes, what)
        warnings = report.warnings
        if report.stochastic and defence is not None:
            raise ModelError(f"{what}: two forward passes on the same images differ, so defence '{defence}' cannot "
                             "be judged (its attacks would need EOT); make the model deterministic in eval mode")
    positive = dataset.positive_class
    if head.decision is None:
        return HeadResult(replace(bundle, module=logits_view(module, head.output)), None, warnings)
    if n_classes != 2:
        raise PlanError(f"decision: a threshold applies to a binary model; this data set has {n_classes} classes, "
                        "which are decided by argmax (per-class rules are not supported yet)", key="model.decision")
    if head.decision.threshold is not None:
        point = declared_point(head.decision.threshold)
    else:
        split = dataset.splits.get(head.decision.on)
        if split is None or len(split) == 0:
            raise DataError(f"decision.sensitivity chooses the threshold on the {head.decision.on} split, but data "
                            f"set '{dataset.name}' has no {head.decision.on} images")
        scores = predict_logits(logits_view(module, head.output), split, batch_size, device)
        point = choose_point(scores, np.asarray(split.labels), positive, head.decision.sensitivity,
                             head.decision.on)
    view = logits_view_at(module, head.output, point.threshold_logit, positive)
    return HeadResult(replace(bundle, module=view), point, warnings)
