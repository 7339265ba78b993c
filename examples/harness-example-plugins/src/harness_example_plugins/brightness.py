"""Attack plugin `brightness_shift_linf`: every pixel moved by +ε or −ε, whichever hurts the true class more.

A gradient-free baseline: if such a trivial change flips a model, stronger attacks are not needed to show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from harness import AttackOutput


@dataclass
class BrightnessParams:
    """The plan's keys for this attack (the harness validates them from the annotations)."""

    directions: Literal["both", "brighter", "darker"] = "both"


class BrightnessShift:
    """A uniform brightness shift of size ε (L∞), picked per image by the true-class margin."""

    name = "brightness_shift_linf"
    description = "Every pixel shifted by +ε or −ε (whichever lowers the true-class margin); gradient-free."
    norm = "linf"
    kind = "fixed_epsilon"
    iterative = False  # one try per direction: the indicators treat it like a single-step attack
    requires_gradients = False  # reads logits only, so it can attack models that give no gradients
    Params = BrightnessParams

    def strengthen(self, params: BrightnessParams, steps_factor: int, restarts: int) -> None:
        """Nothing to strengthen: both directions are always tried."""
        return None

    @torch.no_grad()
    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilons: Sequence[float] | None,
            params: BrightnessParams) -> AttackOutput:
        """One adversarial batch per ε; the harness checks each against its bound and re-classifies it."""
        signs = {"both": (1.0, -1.0), "brighter": (1.0,), "darker": (-1.0,)}[params.directions]
        adversarials = []
        for eps in epsilons or ():
            candidates = [(images + sign * eps).clamp(0, 1) for sign in signs]
            margins = torch.stack([_margin(model(c).float(), labels) for c in candidates])  # [n_signs, N]
            best = margins.argmin(dim=0)
            stacked = torch.stack(candidates)  # [n_signs, N, C, H, W]
            adversarials.append(stacked[best, torch.arange(len(images))])
        return AttackOutput(adversarials)


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """True-class logit minus the largest other logit, per sample (negative: misclassified)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return true - others
