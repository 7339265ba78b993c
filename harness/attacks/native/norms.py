"""One step, projection and random start per norm (L∞ and L2), shared by every native attack.

The arithmetic follows Foolbox 3 (signed or L2-normalised gradient step, then `x0 + clip(x − x0)` onto the
ε-ball, then [0,1]), so native and Foolbox iterates agree up to rounding.
"""

from __future__ import annotations

from typing import Literal

import torch

Start = Literal["none", "uniform", "gaussian"]
GAUSSIAN_START_STD = 0.001  # TRADES' start: x + 0.001·N(0, 1) (Zhang et al. 2019, reference code)
L2_FLOOR = 1e-12  # smallest L2 norm divided by


def per_sample(values: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """A per-sample vector (N,) shaped to broadcast against an N×... tensor; scalars pass through."""
    if isinstance(values, torch.Tensor) and values.ndim == 1:
        return values.view(-1, *([1] * (like.ndim - 1)))
    return values


def l2_norms(x: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, floored at 1e-12 (safe to divide by)."""
    return x.flatten(1).norm(p=2, dim=1).clamp_min(L2_FLOOR)


def step(x: torch.Tensor, grad: torch.Tensor, size: torch.Tensor | float, norm: str) -> torch.Tensor:
    """One ascent step: `size`·sign(grad) (L∞) or `size`·grad/‖grad‖₂ (L2); `size` scalar or per sample."""
    size = per_sample(size, x)
    if norm == "linf":
        return x + size * grad.sign()
    return x + size * (grad * per_sample(1 / l2_norms(grad), grad))


def project(x0: torch.Tensor, x: torch.Tensor, epsilon: torch.Tensor | float, norm: str) -> torch.Tensor:
    """x moved into the ε-ball around x0 (scalar or per-sample ε) and into [0,1]."""
    delta = x - x0
    if norm == "linf":
        eps = per_sample(epsilon, x)
        delta = delta.clamp(-eps, eps)
    else:
        eps = epsilon if not isinstance(epsilon, torch.Tensor) else epsilon.to(x.dtype)
        delta = delta * per_sample(torch.clamp(eps / l2_norms(delta), max=1.0), x)
    return (x0 + delta).clamp(0, 1)


def random_start(x0: torch.Tensor, epsilon: float, norm: str, start: Start,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The first iterate, clipped to [0,1]: x0 itself, a uniform point of the ε-ball, or x0 + 0.001·N(0,1).

    Noise is drawn from `generator` on its device (the global RNG on x0's device when None) and moved to x0.
    """
    if start == "none":
        return x0.clone()
    device = generator.device if generator is not None else x0.device
    if start == "gaussian":
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype) * GAUSSIAN_START_STD
    elif norm == "linf":
        noise = torch.rand(x0.shape, generator=generator, device=device, dtype=x0.dtype) * (2 * epsilon) - epsilon
    else:  # uniform in the L2 ball: the first n coordinates of a uniform point on the (n+1)-sphere in R^(n+2)
        n = x0[0].numel()
        sphere = torch.randn((len(x0), n + 2), generator=generator, device=device, dtype=x0.dtype)
        noise = epsilon * (sphere / sphere.norm(dim=1, keepdim=True))[:, :n].reshape(x0.shape)
    return (x0 + noise.to(x0.device)).clamp(0, 1)
