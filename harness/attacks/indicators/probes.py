"""The indicators' own plain-torch probes: input gradients, one-step FGSM, random noise, converging gradient attacks
(APGD on cross-entropy, small fixed steps on the margin loss) and trivial perturbations (toward white, black, a
class's mean image).

Every probe returns which images it flipped, judged like any adversarial: within ε and [0,1], by the model itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.attacks.judge import judge
from harness.attacks.native.apgd import apgd
from harness.attacks.native.losses import cross_entropy, margin, misclassified
from harness.attacks.native.norms import project, step
from harness.attacks.native.pgd import logits_and_gradient, pgd

CONVERGING_STEPS = 100  # APGD iterations per loss
SMALL_STEP, SMALL_STEPS = 0.005, 200  # the fixed-step probe: steps of min(0.005, ε/4) on [0,1] pixels, enough of
# them to cross the ε-ball's diameter twice, at most 200 (at ε = 1: 200 × 0.005 = ε)
CONVERGING = ("apgd_ce", "pgd_margin_small_steps")
RANDOM_START_MAX_EPSILON = 0.05  # above this ε the converging probes start from the clean image (a uniform start in
# a large ball is a random image, which a model may well classify as the true class)


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


def fooled(model: nn.Module, x: torch.Tensor, adv: torch.Tensor, y: torch.Tensor, norm: str,
           eps: float) -> torch.Tensor:
    """Misclassified by a valid adversarial (within ε in `norm`, inside [0,1]), judged by `model`."""
    return judge(model, x, y, adv, norm, eps).counted


def converging_attacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str,
                       generator: torch.Generator, steps: int = CONVERGING_STEPS) -> dict[str, torch.Tensor]:
    """Attacks that converge at any budget, the second on the images the first could not flip: APGD with
    cross-entropy (its step size adapts), then PGD on the margin loss with a fixed small step from the clean image
    (min(0.005, ε/4): no ε-proportional overshoot, where APGD's first steps of 2ε can leave the image's
    neighbourhood at large ε). Which images each flipped."""
    start = "uniform" if eps <= RANDOM_START_MAX_EPSILON else "none"
    small = min(SMALL_STEP, eps / 4)
    small_steps = min(SMALL_STEPS, math.ceil(4 * eps / small))
    runs = {"apgd_ce": lambda xs, ys: apgd(model, xs, cross_entropy(ys), eps, norm, steps, misclassified(ys), start,
                                           generator),
            "pgd_margin_small_steps": lambda xs, ys: pgd(model, xs, margin(ys), eps, norm, small_steps, small, "none",
                                                         success=misclassified(ys))}
    hits = {}
    todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for name in CONVERGING:
        hit = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        if bool(todo.any()):
            xs, ys = x[todo], y[todo]
            hit[todo] = fooled(model, xs, runs[name](xs, ys), ys, norm, eps)
        hits[name] = hit
        todo &= ~hit
    return hits


def trivial_perturbations(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str,
                          class_means: dict[str, tuple[int, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Move each image as far as ε allows toward all-white, all-black and each other class's mean image (at ε ≥ 1
    in L∞ these are the targets themselves): which images each flipped."""
    targets = dict(zip(trivial_names(class_means), [(None, torch.ones_like(x[:1])), (None, torch.zeros_like(x[:1])),
                                                    *class_means.values()], strict=True))
    hits = {}
    for name, (label, image) in targets.items():
        moved = project(x, image.expand_as(x), eps, norm)
        hit = fooled(model, x, moved, y, norm, eps)
        hits[name] = hit if label is None else hit & (y != label)  # a class's mean is a probe for the other classes
    return hits


def trivial_names(class_means: dict[str, tuple[int, torch.Tensor]]) -> list[str]:
    """The trivial perturbations' names, in the order they run."""
    return ["toward white", "toward black", *(f"toward the {name} mean image" for name in class_means)]
