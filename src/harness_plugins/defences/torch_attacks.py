"""Fast plain-torch L∞ attacks for adversarial training and validation selection.

These craft training batches and score rounds on the validation split; the harness's reported robustness
always comes from the attack plugins (foolbox), never from here. Adversarials are crafted with the model in
eval mode (BatchNorm running statistics untouched) and only the perturbation receives gradients, so the
model's parameter gradients are neither computed nor disturbed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Objective = Callable[[torch.Tensor], torch.Tensor]  # logits -> scalar to maximise
Start = Literal["none", "uniform", "gaussian"]
GAUSSIAN_START_STD = 0.001  # TRADES' start: x + 0.001·N(0, 1) (Zhang et al. 2019, reference code)


def cross_entropy_objective(labels: torch.Tensor) -> Objective:
    """Summed cross-entropy against the true labels (the untargeted attack objective)."""
    return lambda logits: F.cross_entropy(logits.float(), labels, reduction="sum")


def initial_delta(images: torch.Tensor, epsilon: float, start: Start,
                  generator: torch.Generator | None) -> torch.Tensor:
    """The starting perturbation, drawn on the CPU from `generator` (so CPU and CUDA runs draw alike)."""
    if start == "none":
        return torch.zeros_like(images)
    if start == "uniform":
        noise = (torch.rand(images.shape, generator=generator) * 2 - 1) * epsilon
    else:
        noise = torch.randn(images.shape, generator=generator) * GAUSSIAN_START_STD
    return noise.to(device=images.device, dtype=images.dtype)


def linf_pgd(model: nn.Module, images: torch.Tensor, objective: Objective, epsilon: float, steps: int,
             step_size: float, start: Start = "uniform", generator: torch.Generator | None = None,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
             loss_scale: float = 1.0) -> torch.Tensor:
    """L∞ PGD (Madry et al. 2018): `steps` signed-gradient ascent steps, projected on the ε-ball and [0,1].

    With steps=1, step_size=1.25ε and a uniform start this is FGSM-RS (Wong et al. 2020)."""
    was_training = model.training
    model.eval()
    x = images.detach()
    delta = ((x + initial_delta(x, epsilon, start, generator)).clamp(0, 1) - x).detach()
    try:
        for _ in range(steps):
            delta.requires_grad_(True)
            with autocast():
                logits = model(x + delta)
            (grad,) = torch.autograd.grad(objective(logits.float()) * loss_scale, delta)
            delta = (delta.detach() + step_size * grad.sign()).clamp(-epsilon, epsilon)
            delta = ((x + delta).clamp(0, 1) - x).detach()
    finally:
        model.train(was_training)
    return (x + delta).clamp(0, 1).detach()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted classes in eval mode (full precision)."""
    was_training = model.training
    model.eval()
    try:
        return model(images).argmax(1)
    finally:
        model.train(was_training)
