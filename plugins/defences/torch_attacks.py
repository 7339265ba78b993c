"""The defences' attacks: the shared plain-torch L∞ PGD for adversarial training and validation selection.

These craft training batches and score rounds on the validation split; the harness's reported robustness
always comes from the attack plugins, never from here. The PGD itself is `harness.attacks.native.pgd`, the one
the native attack plugins and the indicators use.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from harness.attacks.model_mode import eval_mode
from harness.attacks.native.losses import PerSampleLoss, cross_entropy
from harness.attacks.native.norms import Start
from harness.attacks.native.pgd import Autocast, pgd

__all__ = ["cross_entropy", "linf_pgd", "predict"]


def linf_pgd(model: nn.Module, images: torch.Tensor, loss: PerSampleLoss, epsilon: float, steps: int,
             step_size: float, start: Start = "uniform", generator: torch.Generator | None = None,
             autocast: Autocast = contextlib.nullcontext, loss_scale: float = 1.0) -> torch.Tensor:
    """L∞ PGD on the whole batch (no early stop: training wants the last iterate of every image).

    With steps=1, step_size=1.25ε and a uniform start this is FGSM-RS (Wong et al. 2020)."""
    return pgd(model, images, loss, epsilon, "linf", steps, step_size, start, generator, autocast=autocast,
               loss_scale=loss_scale)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted classes in eval mode (full precision)."""
    with eval_mode(model):
        return model(images).argmax(1)
