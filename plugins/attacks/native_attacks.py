"""Native (plain-torch) attacks as harness attack plugins: FGSM, BIM, PGD, APGD-CE, APGD-DLR (targeted), Square.

They sit beside the Foolbox plugins under their own names (a plan that names `pgd_linf` keeps getting Foolbox's
PGD). The FGSM/BIM/PGD rows take the same plan keys as their Foolbox counterparts and, from the same random start,
give the same iterates up to rounding. Unlike Foolbox, every native attack stops an image at its first iterate
that the crafting model misclassifies and returns that iterate: success means "misclassified at any iterate",
never less than Foolbox's last-iterate rule. The harness judges every adversarial with the float32 eager model.

On a model prepared with `engine.static_shapes` (a compiled model), finished images are masked instead of
leaving the batch, so the batch keeps one shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.attacks.native.apgd import apgd
from harness.attacks.native.losses import cross_entropy, logit_spread, misclassified, targeted_dlr
from harness.attacks.native.pgd import pgd
from harness.attacks.native.square import square_linf
from harness.registry.contracts import AttackOutput, Norm
from harness.registry.hookspecs import hookimpl
from harness_plugins.attacks.params import (
    BIMParams,
    FGSMParams,
    PGDL2Params,
    PGDLinfParams,
    Strengthen,
    StrengthenedByTable,
    at_least,
    more_steps_and_restarts,
    positive,
)

Craft = Callable[[nn.Module, torch.Tensor, torch.Tensor, float, Any, Norm, bool], torch.Tensor]


@dataclass
class APGDParams:
    """APGD-CE: `steps` gradient evaluations with the adaptive step size; a uniform random start per restart."""

    steps: int = at_least(1, 100)
    restarts: int = at_least(1, 1)
    random_start: bool = True


@dataclass
class APGDTargetedParams(APGDParams):
    """APGD-DLR (APGD-T): the targeted DLR loss towards each of the `target_classes` most likely wrong classes."""

    target_classes: int = at_least(1, 9)


@dataclass
class SquareParams:
    """Square attack: `queries` logit queries per image; `p_init` is the first square's share of the image."""

    queries: int = at_least(1, 1000)
    p_init: float = positive(0.8, max=1)
    restarts: int = at_least(1, 1)


def more_queries_and_restarts(params: SquareParams, steps_factor: int, restarts: int) -> SquareParams:
    """Square with `steps_factor`× the queries and `restarts` restarts."""
    return SquareParams(queries=params.queries * steps_factor, p_init=params.p_init, restarts=restarts)


# ------------------------------------------------------------------------------------------ crafting


def _fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, params: FGSMParams, norm: Norm,
          compact: bool) -> torch.Tensor:
    """FGSM: one cross-entropy step of ε (from a uniform start with `random_start`)."""
    start = "uniform" if params.random_start else "none"
    return pgd(model, images, cross_entropy(labels), eps, norm, 1, eps, start, success=misclassified(labels),
               compact=compact)


def _iterated(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, params: BIMParams,
              norm: Norm, compact: bool) -> torch.Tensor:
    """BIM and PGD: `steps` cross-entropy steps of abs_stepsize (else rel_stepsize × ε), PGD with restarts."""
    size = params.abs_stepsize if params.abs_stepsize is not None else params.rel_stepsize * eps
    start = "uniform" if params.random_start else "none"
    return pgd(model, images, cross_entropy(labels), eps, norm, params.steps, size, start,
               success=misclassified(labels), restarts=getattr(params, "restarts", 1), compact=compact)


def _apgd_ce(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, params: APGDParams,
             norm: Norm, compact: bool) -> torch.Tensor:
    """APGD with cross-entropy."""
    return apgd(model, images, cross_entropy(labels), eps, norm, params.steps, misclassified(labels),
                "uniform" if params.random_start else "none", restarts=params.restarts)


def _apgd_targeted(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
                   params: APGDTargetedParams, norm: Norm, compact: bool) -> torch.Tensor:
    """APGD-T: targeted DLR towards the most likely wrong classes in turn, on the images not yet fooled."""
    with torch.no_grad():
        clean = model(images).float()
    ranked = clean.scatter(1, labels[:, None], float("-inf")).argsort(dim=1, descending=True)
    spread = logit_spread(clean)
    result, todo = images.detach().clone(), torch.arange(len(images), device=images.device)
    for rank in range(min(params.target_classes, clean.shape[1] - 1)):
        x, y = images[todo], labels[todo]
        loss = targeted_dlr(y, ranked[todo, rank], spread[todo])
        adv = apgd(model, x, loss, eps, norm, params.steps, misclassified(y),
                   "uniform" if params.random_start else "none", restarts=params.restarts)
        result[todo] = adv
        with torch.no_grad():
            todo = todo[model(adv).float().argmax(1) == y]
        if not len(todo):
            break
    return result


def _square(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, params: SquareParams,
            norm: Norm, compact: bool) -> torch.Tensor:
    """Square attack (L∞, score-based)."""
    return square_linf(model, images, labels, eps, params.queries, params.p_init, params.restarts)


# ------------------------------------------------------------------------------------------ plugin


@dataclass(frozen=True)
class NativeAttack(StrengthenedByTable):
    """One native attack exposed as a harness AttackPlugin (fixed-ε: one adversarial set per ε)."""

    name: str
    norm: Norm
    description: str
    Params: type
    craft: Craft
    iterative: bool = True
    requires_gradients: bool = True
    strengthener: Strengthen | None = None
    kind: str = "fixed_epsilon"

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
            epsilons: Sequence[float] | None, params: Any) -> AttackOutput:
        """Adversarials for one batch, one tensor per ε."""
        params = params if params is not None else self.Params()
        if not epsilons:
            return AttackOutput(adversarials=[])
        if images.shape[0] == 0:
            return AttackOutput(adversarials=[images.clone() for _ in epsilons])
        compact = not getattr(model, "static_shapes", False)
        return AttackOutput(adversarials=[self.craft(model, images, labels, float(eps), params, self.norm, compact)
                                          for eps in epsilons])


_GOODFELLOW = "Goodfellow et al. 2015, arXiv:1412.6572"
_MADRY = "Madry et al. 2018, arXiv:1706.06083"
_KURAKIN = "Kurakin et al. 2017, arXiv:1607.02533"
_CROCE = "Croce & Hein 2020, arXiv:2003.01690"
_SQUARE = "Andriushchenko et al. 2020, arXiv:1912.00049"
_EARLY = "plain torch, stops each image at its first misclassified iterate"

ATTACKS: tuple[NativeAttack, ...] = (
    NativeAttack("native_fgsm", "linf", f"L∞ FGSM, one signed-gradient step of size ε ({_GOODFELLOW}); {_EARLY}.",
                 FGSMParams, _fgsm, iterative=False),
    NativeAttack("native_bim_linf", "linf",
                 f"L∞ Basic Iterative Method, iterated FGSM clipped to the ε-ball ({_KURAKIN}); {_EARLY}.",
                 BIMParams, _iterated),
    NativeAttack("native_pgd_linf", "linf",
                 f"L∞ PGD with random start and restarts ({_MADRY}); {_EARLY}.",
                 PGDLinfParams, _iterated, strengthener=more_steps_and_restarts),
    NativeAttack("native_pgd_l2", "l2", f"L2 PGD with random start and restarts ({_MADRY}); {_EARLY}.",
                 PGDL2Params, _iterated, strengthener=more_steps_and_restarts),
    NativeAttack("apgd_ce_linf", "linf",
                 f"L∞ Auto-PGD on cross-entropy, momentum and adaptive step size ({_CROCE}); {_EARLY}.",
                 APGDParams, _apgd_ce, strengthener=more_steps_and_restarts),
    NativeAttack("apgd_ce_l2", "l2",
                 f"L2 Auto-PGD on cross-entropy, momentum and adaptive step size ({_CROCE}); {_EARLY}.",
                 APGDParams, _apgd_ce, strengthener=more_steps_and_restarts),
    NativeAttack("apgd_dlr_linf", "linf",
                 f"L∞ targeted Auto-PGD on the DLR loss (APGD-T) towards the likeliest wrong classes ({_CROCE}); "
                 f"{_EARLY}.", APGDTargetedParams, _apgd_targeted, strengthener=more_steps_and_restarts),
    NativeAttack("apgd_dlr_l2", "l2",
                 f"L2 targeted Auto-PGD on the DLR loss (APGD-T) towards the likeliest wrong classes ({_CROCE}); "
                 f"{_EARLY}.", APGDTargetedParams, _apgd_targeted, strengthener=more_steps_and_restarts),
    NativeAttack("square_linf", "linf",
                 f"L∞ Square attack, score-based random search that needs no gradients ({_SQUARE}); stops each "
                 "image at its first misclassified query.", SquareParams, _square, requires_gradients=False,
                 strengthener=more_queries_and_restarts),
)


@hookimpl
def harness_register_attacks() -> list[NativeAttack]:
    """The built-in native attacks."""
    return list(ATTACKS)
