"""The indicators' own plain-torch probes: input gradients, one-step FGSM, random noise, PGD, judged results."""

from __future__ import annotations

import torch
from torch import nn

from harness.attacks.judge import judge
from harness.attacks.native.losses import cross_entropy, misclassified
from harness.attacks.native.norms import step
from harness.attacks.native.pgd import logits_and_gradient, pgd


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d(cross-entropy)/d(input) per sample; model parameters get no .grad."""
    rows = torch.arange(len(x), device=x.device)
    return logits_and_gradient(model, x, cross_entropy(y), rows)[2]


def fast_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """FGSM (L∞: one signed step of ε) or its L2 form (one normalised step of ε), clipped to [0,1]."""
    return step(x, input_gradient(model, x, y), eps, norm).clamp(0, 1)


def random_noise(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """Uniform random-sign noise of L∞ norm ε, or a random direction of L2 norm ε; clipped to [0,1]."""
    if norm == "linf":
        signs = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
        return (x + eps * signs).clamp(0, 1)
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return step(x, direction, eps, "l2").clamp(0, 1)


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, restarts: int,
             generator: torch.Generator) -> torch.Tensor:
    """L∞ PGD (cross-entropy, step ε/10, first run from x, later ones from a random start); the first success."""
    adv = pgd(model, x, cross_entropy(y), eps, "linf", steps, eps / 10, "none", success=misclassified(y))
    if restarts > 1:
        left = ~fooled(model, x, adv, y, "linf", eps)
        if bool(left.any()):
            again = pgd(model, x[left], cross_entropy(y[left]), eps, "linf", steps, eps / 10, "uniform", generator,
                        success=misclassified(y[left]), restarts=restarts - 1)
            adv[left] = again
    return adv


def fooled(model: nn.Module, x: torch.Tensor, adv: torch.Tensor, y: torch.Tensor, norm: str,
           eps: float) -> torch.Tensor:
    """Misclassified by a valid adversarial (within ε in `norm`, inside [0,1]), judged by `model`."""
    return judge(model, x, y, adv, norm, eps).counted

