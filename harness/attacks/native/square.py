"""The Square attack, L∞ (Andriushchenko et al. 2020, "Square Attack: a query-efficient black-box adversarial
attack via random search", arXiv:1912.00049): random search over square patches of ±ε, reading only logits.

It needs no gradients, so it attacks models that have none and is blind to gradient masking. Each query
proposes a new ±ε patch per channel in a random square; the proposal is kept when it lowers the margin
z_y − max_{j≠y} z_j. The square's area starts at `p_init` of the image and shrinks on the paper's schedule.
An image stops at its first successful iterate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from harness.attacks.native.losses import margin
from harness.attacks.native.restarts import with_restarts

SCHEDULE_LENGTH = 10_000  # the paper's schedule is written for 10 000 queries and rescaled to the budget
# (query in the 10 000-query schedule above which p is divided by the factor)
P_SCHEDULE = ((8000, 512), (6000, 256), (4000, 128), (2000, 64), (1000, 32), (500, 16), (200, 8), (50, 4), (10, 2))


def patch_fraction(p_init: float, query: int, queries: int) -> float:
    """The share of the image the square covers at `query` of `queries` (the paper's piecewise halving)."""
    at = int(query / queries * SCHEDULE_LENGTH)
    for above, factor in P_SCHEDULE:
        if at > above:
            return p_init / factor
    return p_init


@torch.no_grad()
def square_linf(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float, queries: int,
                p_init: float = 0.8, restarts: int = 1) -> torch.Tensor:
    """Square attack within ε in L∞ and [0,1]; per image the first success, else the lowest-margin point.

    Random draws come from the global torch RNG on the images' device (the sweep seeds it per batch).
    """
    x0 = images.detach()
    if x0.ndim == 5:  # a volume: squares through the depth, signs drawn per channel and slice
        return _as_slices(model, x0, lambda flat_model, flat: square_linf(
            flat_model, flat, labels, epsilon, queries, p_init, restarts))
    return with_restarts(model, x0, restarts, lambda rows, last: _search(model, x0[rows], labels[rows], epsilon,
                                                                         queries, p_init))


def _search(model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, epsilon: float, queries: int,
            p_init: float) -> tuple[torch.Tensor, torch.Tensor]:
    n, channels, height, width = x0.shape
    device = x0.device
    loss = margin(labels)  # > 0 exactly when misclassified; the search raises it
    rows = torch.arange(n, device=device)
    signs = torch.randint(0, 2, (n, channels, 1, width), device=device).to(x0.dtype) * 2 - 1
    delta = (epsilon * signs).expand(-1, -1, height, -1).clone()  # vertical stripes: the paper's start
    value = loss(model((x0 + delta).clamp(0, 1)).float(), rows)
    ys = torch.arange(height, device=device).view(1, 1, -1, 1)
    xs = torch.arange(width, device=device).view(1, 1, 1, -1)
    for query in range(1, queries):
        live = (value <= 0).nonzero()[:, 0]
        if not len(live):
            break
        side = _side(patch_fraction(p_init, query, queries), height, width)
        top = torch.randint(0, height - side + 1, (len(live), 1, 1, 1), device=device)
        left = torch.randint(0, width - side + 1, (len(live), 1, 1, 1), device=device)
        window = (ys >= top) & (ys < top + side) & (xs >= left) & (xs < left + side)
        patch = epsilon * (torch.randint(0, 2, (len(live), channels, 1, 1), device=device).to(x0.dtype) * 2 - 1)
        proposal = torch.where(window, patch, delta[live])
        new_value = loss(model((x0[live] + proposal).clamp(0, 1)).float(), rows[live])
        better = new_value > value[live]
        delta[live[better]] = proposal[better]
        value[live[better]] = new_value[better]
    return (x0 + delta).clamp(0, 1), value > 0


def _side(fraction: float, height: int, width: int) -> int:
    """The square's side for a patch covering `fraction` of the image: at least 1, at most the image minus 1."""
    side = int(round(math.sqrt(fraction * height * width)))
    return max(1, min(side, min(height, width) - 1))


class _SliceStack(nn.Module):
    """A volume model seen as a 2-D model of C·D channels (the Square search draws its patches per channel)."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.model, self.shape = model, shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the volumes the stacked slices form."""
        return self.model(x.reshape(len(x), *self.shape))


def _as_slices(model: nn.Module, x0: torch.Tensor, search: Any) -> torch.Tensor:
    """Run a 2-D search on N×C×D×H×W volumes as N×(C·D)×H×W stacks; volumes back."""
    n, c, d, h, w = x0.shape
    return search(_SliceStack(model, (c, d, h, w)), x0.reshape(n, c * d, h, w)).reshape(x0.shape)
