"""The one plain-torch projected gradient method: PGD, BIM and FGSM in L∞ or L2, with restarts and early stop.

Used by the native attack plugins, the attack-failure indicators and the defences (adversarial training and
validation selection). Only the input receives gradients: the model's parameter gradients are neither computed
into `.grad` nor disturbed, and the model runs in eval mode (its mode is restored afterwards).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from harness.attacks.native.losses import PerSampleLoss, Success
from harness.attacks.native.norms import Start, project, random_start, step
from harness.attacks.native.restarts import with_restarts

Autocast = Callable[[], contextlib.AbstractContextManager]


def logits_and_gradient(model: nn.Module, x: torch.Tensor, loss: PerSampleLoss, rows: torch.Tensor,
                        autocast: Autocast = contextlib.nullcontext,
                        loss_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(float32 logits, per-sample loss, d(Σ loss)/dx) at `x`: one forward and one backward.

    `loss_scale` multiplies the summed loss before the backward (fp16 training keeps small gradients off zero);
    the sign and direction of the gradient do not change. A model whose output ignores the input gets zeros.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        with autocast():
            logits = model(x)
        logits = logits.float()
        values = loss(logits, rows)
        (grad,) = torch.autograd.grad(values.sum() * loss_scale, x, allow_unused=True)
    return logits.detach(), values.detach(), torch.zeros_like(x) if grad is None else grad.detach()


def pgd(model: nn.Module, images: torch.Tensor, loss: PerSampleLoss, epsilon: float, norm: str, steps: int,
        step_size: float, start: Start = "none", generator: torch.Generator | None = None,
        success: Success | None = None, restarts: int = 1, autocast: Autocast = contextlib.nullcontext,
        loss_scale: float = 1.0, compact: bool = True) -> torch.Tensor:
    """Projected gradient ascent on `loss` (Madry et al. 2018) inside the ε-ball of `norm` and [0,1].

    Each step is `norms.step` then `norms.project`, from `start` (x, a uniform point of the ball, or TRADES'
    Gaussian). One step of ε without a random start is FGSM, steps of ε/10 from x are BIM.
    With `success` (a test on the logits the step computes anyway), an image stops at the first iterate that
    succeeds and that iterate is returned: success means "at any iterate", never less than the last iterate's.
    An image whose input gradient is exactly zero stops too (no step can move it).
    With `restarts` > 1 (needs `success`), images that did not succeed are attacked again from a new start;
    per image the first success is kept, else the last attempt. `compact` gathers the still-active images into a
    smaller batch (fast on CPU); `compact=False` keeps the batch's shape (finished images are masked), so a
    compiled model sees one shape.
    """
    x0 = images.detach()

    def attempt(rows: torch.Tensor, last: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        adv, hit = _descend(model, x0, rows, loss, epsilon, norm, steps, step_size, start, generator, success,
                            autocast, loss_scale, compact, check_last=not last)
        return adv, None if success is None else hit

    return with_restarts(model, x0, restarts, attempt)


def _descend(model: nn.Module, x0: torch.Tensor, rows: torch.Tensor, loss: PerSampleLoss, epsilon: float, norm: str,
             steps: int, step_size: float, start: Start, generator: torch.Generator | None, success: Success | None,
             autocast: Autocast, loss_scale: float, compact: bool,
             check_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One attempt on the images `rows`: (their final or first successful iterates, whether each succeeded)."""
    origin = x0[rows]
    adv = random_start(origin, epsilon, norm, start, generator)
    hit = torch.zeros(len(rows), dtype=torch.bool, device=x0.device)
    done = hit.clone()  # succeeded, or stuck: a zero input gradient leaves the iterate where it is for good
    every = torch.arange(len(rows), device=x0.device)
    for _ in range(steps):
        live = every[~done] if compact else every
        if not len(live) or bool(done.all()):
            break
        logits, _, grad = logits_and_gradient(model, adv[live], loss, rows[live], autocast, loss_scale)
        moved = project(origin[live], step(adv[live], grad, step_size, norm), epsilon, norm)
        if success is None:
            adv = moved if len(live) == len(adv) else adv.index_put((live,), moved)
            continue
        won = success(logits, rows[live]) & ~done[live]
        hit[live[won]] = True
        stuck = grad.flatten(1).abs().amax(1) == 0
        done[live[won | stuck]] = True
        keep = ~done[live]
        adv[live[keep]] = moved[keep]
    if success is not None and check_last and bool((~done).any()):
        live = every[~done]
        with torch.no_grad(), autocast():
            logits = model(adv[live]).float()
        hit[live[success(logits, rows[live])]] = True
    return adv, hit
