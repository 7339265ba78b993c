"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", arXiv:2003.01690): PGD with momentum and a per-image step size that halves at
checkpoints where the loss stopped rising, so it converges at any budget without a step-size parameter.

Steps, projections and starts are the shared ones of `norms`; the loss is any per-sample loss of `losses`
(cross-entropy for APGD-CE, targeted DLR for APGD-T). As in `pgd`, an image stops at its first successful iterate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.attacks.native.losses import PerSampleLoss, Success
from harness.attacks.native.norms import Start, project, random_start, step
from harness.attacks.native.pgd import logits_and_gradient
from harness.attacks.native.restarts import with_restarts

INITIAL_STEP = 2.0  # η⁽⁰⁾ = 2ε
MOMENTUM = 0.75  # α
RHO = 0.75  # a step size is kept while at least this share of the steps since the last checkpoint raised the loss
FIRST_CHECKPOINT, CHECKPOINT_SHRINK, CHECKPOINT_MIN = 0.22, 0.03, 0.06


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j = ⌈p_j·N⌉ where step sizes are reviewed: p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)."""
    previous, current, out = 0.0, FIRST_CHECKPOINT, []
    while current < 1:
        out.append(math.ceil(current * steps))
        previous, current = current, current + max(current - previous - CHECKPOINT_SHRINK, CHECKPOINT_MIN)
    return sorted(set(w for w in out if 0 < w < steps))


def apgd(model: nn.Module, images: torch.Tensor, loss: PerSampleLoss, epsilon: float, norm: str, steps: int,
         success: Success, start: Start = "uniform", generator: torch.Generator | None = None,
         restarts: int = 1) -> torch.Tensor:
    """APGD on `loss` in the ε-ball of `norm` and [0,1]; per image the first successful iterate, else the iterate
    with the highest loss of the last attempt. `steps` counts gradient evaluations (the start included)."""
    x0 = images.detach()
    return with_restarts(model, x0, restarts, lambda rows, last: _ascend(model, x0, rows, loss, epsilon, norm, steps,
                                                                         success, start, generator))


def _ascend(model: nn.Module, x0: torch.Tensor, rows: torch.Tensor, loss: PerSampleLoss, epsilon: float, norm: str,
            steps: int, success: Success, start: Start,
            generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD attempt on the images `rows`: (their first successful or best-loss iterates, success per image)."""
    origin = x0[rows]
    n = len(rows)
    x = random_start(origin, epsilon, norm, start, generator)
    found = x.clone()  # the first successful iterate
    hit = torch.zeros(n, dtype=torch.bool, device=x0.device)
    logits, value, grad = logits_and_gradient(model, x, loss, rows)
    hit |= success(logits, rows)
    found[hit] = x[hit]
    best_x, best_value, best_grad = x.clone(), value.clone(), grad.clone()
    previous = x.clone()
    eta = torch.full((n,), INITIAL_STEP * epsilon, device=x0.device, dtype=x0.dtype)
    rises = torch.zeros(n, device=x0.device)
    reduced_before = torch.zeros(n, dtype=torch.bool, device=x0.device)
    best_at_check = best_value.clone()
    reviews, last_review = checkpoints(steps), 0
    stuck = torch.zeros(n, dtype=torch.bool, device=x0.device)  # zero gradient, no momentum, at its best point:
    for i in range(1, steps):  # neither a step nor a restart from the best point can move it
        stuck |= ((grad.flatten(1).abs().amax(1) == 0) & (x == previous).flatten(1).all(1)
                  & (x == best_x).flatten(1).all(1))
        live = (~hit & ~stuck).nonzero()[:, 0]
        if not len(live):
            break
        xl, origin_l = x[live], origin[live]
        z = project(origin_l, step(xl, grad[live], eta[live], norm), epsilon, norm)
        alpha = 1.0 if i == 1 else MOMENTUM
        moved = project(origin_l, xl + alpha * (z - xl) + (1 - alpha) * (xl - previous[live]), epsilon, norm)
        previous[live] = xl
        x[live] = moved
        logits, new_value, new_grad = logits_and_gradient(model, moved, loss, rows[live])
        rises[live] += (new_value > value[live]).to(rises.dtype)
        value[live], grad[live] = new_value, new_grad
        won = success(logits, rows[live])
        found[live[won]] = moved[won]
        hit[live[won]] = True
        better = live[new_value > best_value[live]]
        best_x[better], best_value[better], best_grad[better] = x[better], value[better], grad[better]
        if i in reviews:
            window = i - last_review
            stalled = (rises < RHO * window) | (~reduced_before & (best_at_check >= best_value))
            halve = stalled & ~hit
            eta[halve] /= 2
            x[halve], previous[halve] = best_x[halve], best_x[halve]  # continue from the best point, no momentum
            value[halve], grad[halve] = best_value[halve], best_grad[halve]
            reduced_before, best_at_check, last_review = stalled, best_value.clone(), i
            rises.zero_()
    return torch.where(hit.view(-1, *([1] * (x.ndim - 1))), found, best_x), hit
