"""Corruption plugin `contrast_loss`: each image's contrast pulled towards its own mean, as on a washed-out display
or an under-exposed acquisition. Defined on [0,1] intensities, so it fits any modality; deterministic."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from harness import SEVERITY_LEVELS, CorruptionContext, PlanError, Severity


@dataclass
class ContrastParams:
    """The plan's keys for this corruption; `amount` is what the severities set."""

    amount: float = field(default=0.3, metadata={"min": 0, "max": 1})  # 0: unchanged, 1: a flat grey image


class ContrastLoss:
    """Blend every image with its mean intensity: x' = (1 − amount)·x + amount·mean(x)."""

    name = "contrast_loss"
    description = "Contrast pulled towards each image's mean (washed-out display or under-exposure); deterministic."
    modality = "any"  # "CT" or "MRI" restricts it to data sets of that modality
    requires_unit = None  # the parameter is on [0,1] intensities, not in native units such as HU
    parameter = "amount"
    unit = "fraction of contrast lost"
    # Exactly five levels, 1 (slightest) to 5 (most harmful), values strictly monotone: the core checks this when
    # the registry is built and refuses the plugin, in one line, otherwise.
    severities = tuple(Severity(level, name, value) for level, name, value in zip(
        SEVERITY_LEVELS, ("slight", "mild", "moderate", "strong", "severe"), (0.1, 0.2, 0.35, 0.5, 0.7), strict=True))
    Params = ContrastParams

    def params_for(self, level: int, base: ContrastParams | None = None) -> ContrastParams:
        """`base` (default: ContrastParams()) with `amount` set to the value of severity `level`."""
        if level not in SEVERITY_LEVELS:
            raise PlanError(f"corruption '{self.name}': severity must be one of 1, 2, 3, 4, 5, got {level!r}")
        return dataclasses.replace(base or ContrastParams(), amount=self.severities[level - 1].value)

    def apply(self, images: torch.Tensor, indices: Sequence[int], params: ContrastParams,
              context: CorruptionContext) -> torch.Tensor:
        """New float32 images in [0,1]: each depends only on itself and `amount` (no randomness, so no seed)."""
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return ((1 - params.amount) * images + params.amount * mean).clamp(0, 1).to(torch.float32)
