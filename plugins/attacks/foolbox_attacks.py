"""Foolbox 3 attacks as harness attack plugins: FGSM, PGD, BIM, C&W, DeepFool and FMN.

Each plugin is one row of a small table (`FoolboxAttack`): the harness name, norm, kind, a Params
dataclass whose fields are passed verbatim to the foolbox constructor, and the foolbox class.

Foolbox 3.3.4 quirks handled here:
- Importing foolbox triggers scipy's DeprecationWarning for `scipy.ndimage.filters` (foolbox.attacks.blur);
  only that warning is silenced, at import time.
- `L2FMNAttack.project` does not project: it scales by `norms / norms` (always 1), so the adaptive
  L2 norm constraint of FMN never binds. `_L2FMN` replaces it with the projection onto the ε-ball.
- Minimal attacks return zeros (C&W) or the last iterate (DeepFool) where they fail; this plugin returns
  the clean input for those samples instead.
- DeepFool's `candidates` must be between 2 and the number of classes; it is clamped to the model's
  class count at run time.
- The attacks backpropagate with `loss.backward()`, which would also fill the model's parameter grads;
  parameters are frozen while an attack runs so a training loop that calls an attack is unaffected.
- Foolbox's L2 ε-clipping is computed in float32 and can exceed ε by rounding; results are shrunk
  towards the input until their norm, measured on the returned tensors, is at most ε.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import eagerpy as ep
import torch
from torch import nn

from harness.registry.contracts import AttackKind, AttackOutput, Norm
from harness.registry.hookspecs import hookimpl
from harness_plugins.attacks.params import (
    HARNESS_ONLY,
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

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Please import `gaussian_filter`", category=DeprecationWarning,
                            module=r"foolbox\.attacks\.blur")
    import foolbox as fb
    from foolbox.devutils import atleast_kd, flatten

BOUNDS = (0.0, 1.0)


@dataclass
class CWParams:
    """Carlini & Wagner L2; steps default 200 (foolbox: 10000, far too slow for a sweep)."""

    binary_search_steps: int = at_least(1, 9)
    steps: int = at_least(1, 200)
    stepsize: float = positive(0.01)
    confidence: float = field(default=0.0, metadata={"min": 0})
    initial_const: float = positive(0.001)
    abort_early: bool = True


@dataclass
class DeepFoolParams:
    """DeepFool; `candidates` is clamped to the model's class count at run time."""

    steps: int = at_least(1, 50)
    candidates: int = at_least(2, 10)
    overshoot: float = field(default=0.02, metadata={"min": 0})
    loss: Literal["logits", "crossentropy"] = "logits"


@dataclass
class FMNParams:
    """Fast Minimum Norm without an initial attack (so binary_search_steps has no effect)."""

    steps: int = at_least(1, 100)
    max_stepsize: float = positive(1.0)
    min_stepsize: float | None = positive(None)
    gamma: float = positive(0.05, max=1)
    binary_search_steps: int = at_least(1, 10)


# ------------------------------------------------------------------------------------- foolbox fixes


class _L2FMN(fb.attacks.L2FMNAttack):
    """Foolbox's L2 FMN with a working projection onto the L2 ball of radius ε around x0."""

    def project(self, x: ep.Tensor, x0: ep.Tensor, epsilon: ep.Tensor) -> ep.Tensor:
        """x0 + (x - x0) scaled down to L2 norm ≤ ε, per sample."""
        delta = x - x0
        norms = ep.maximum(flatten(delta).norms.l2(axis=-1), 1e-12)
        factor = atleast_kd(ep.minimum(1, epsilon / norms), x.ndim)
        return x0 + delta * factor


# ------------------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """Turn off requires_grad on the model's parameters for the duration, then restore it."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _num_classes(model: nn.Module, images: torch.Tensor) -> int:
    """The number of logits the model returns (one forward pass on one image)."""
    with torch.no_grad():
        return int(model(images[:1]).shape[-1])


def _per_sample(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-sample boolean mask (N,) broadcastable against an N×... tensor."""
    return mask.reshape(-1, *([1] * (like.ndim - 1)))


def _fit_l2(x: torch.Tensor, adv: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Shrink each perturbation towards x until its float32 L2 norm is ≤ ε (undoes rounding overshoot)."""
    for attempt in range(8):
        delta = (adv - x).flatten(1).double()
        norms = delta.norm(dim=1)
        over = norms > epsilon
        if not bool(over.any()):
            break
        scale = torch.where(over, epsilon / norms * (1 - 2.0 ** -(22 - attempt)), torch.ones_like(norms))
        shrunk = (x.double() + (delta * scale[:, None]).view_as(x)).to(adv.dtype).clamp(*BOUNDS)
        adv = torch.where(_per_sample(over, adv), shrunk, adv)
    return adv


def _verbatim(kwargs: dict[str, Any], model: nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """Pass the Params through unchanged."""
    return kwargs


def _clamp_candidates(kwargs: dict[str, Any], model: nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """DeepFool: candidates ≤ the model's class count (and ≥ 2)."""
    return {**kwargs, "candidates": max(2, min(kwargs["candidates"], _num_classes(model, images)))}


def _no_init_attack(kwargs: dict[str, Any], model: nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """FMN: start from the input itself (no initial attack)."""
    return {**kwargs, "init_attack": None}


# ------------------------------------------------------------------------------------------- plugin


@dataclass(frozen=True)
class FoolboxAttack(StrengthenedByTable):
    """One foolbox attack exposed as a harness AttackPlugin."""

    name: str
    norm: Norm
    kind: AttackKind
    description: str
    Params: type
    attack_class: type
    adjust: Callable[[dict[str, Any], nn.Module, torch.Tensor], dict[str, Any]] = _verbatim
    iterative: bool = True
    strengthener: Strengthen | None = None  # how `strengthen` builds stronger params; None: it cannot
    requires_gradients: bool = True  # every Foolbox attack here follows the input gradient

    def build(self, params: Any, model: nn.Module, images: torch.Tensor) -> fb.Attack:
        """The foolbox attack object, constructed from the Params verbatim."""
        kwargs = {k: v for k, v in dataclasses.asdict(params).items() if k not in HARNESS_ONLY}
        return self.attack_class(**self.adjust(kwargs, model, images))

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
            epsilons: Sequence[float] | None, params: Any) -> AttackOutput:
        """Adversarials for one batch: one tensor per ε (fixed_epsilon) or one tensor (minimal)."""
        if params is None:
            params = self.Params()
        if self.kind == "fixed_epsilon" and not epsilons:
            return AttackOutput(adversarials=[])
        if images.shape[0] == 0:
            return AttackOutput(adversarials=[images.clone() for _ in (epsilons or [None])])
        with _frozen(model):
            fmodel = fb.PyTorchModel(model, bounds=BOUNDS, device=images.device)
            attack = self.build(params, model, images)
            if self.kind == "minimal":
                return AttackOutput(adversarials=[self._minimal(fmodel, attack, images, labels)])
            restarts = getattr(params, "restarts", 1)
            advs = self._fixed(fmodel, attack, images, labels, [float(e) for e in epsilons], restarts)
        return AttackOutput(adversarials=advs)

    def _fixed(self, fmodel: fb.Model, attack: fb.Attack, images: torch.Tensor, labels: torch.Tensor,
               epsilons: list[float], restarts: int) -> list[torch.Tensor]:
        """Run `restarts` times; per sample and ε keep the first success, else the last attempt."""
        best: list[torch.Tensor] = []
        best_success = torch.zeros(len(epsilons), images.shape[0], dtype=torch.bool, device=images.device)
        for attempt in range(restarts):
            _, clipped, success = attack(fmodel, images, labels, epsilons=epsilons)
            if attempt == 0:
                best = [c.detach() for c in clipped]
            else:
                best = [torch.where(_per_sample(best_success[k], b), b, c.detach())
                        for k, (b, c) in enumerate(zip(best, clipped, strict=True))]
            best_success |= success
            if bool(best_success.all()):
                break
        return [self._in_budget(images, adv.clamp(*BOUNDS), eps) for adv, eps in zip(best, epsilons,
                                                                                      strict=True)]

    def _in_budget(self, images: torch.Tensor, adv: torch.Tensor, epsilon: float) -> torch.Tensor:
        """Guarantee ‖adv − x‖ ≤ ε in this attack's norm (L∞ clipping is exact; L2 may round over)."""
        return _fit_l2(images, adv, epsilon) if self.norm == "l2" else adv

    @staticmethod
    def _minimal(fmodel: fb.Model, attack: fb.Attack, images: torch.Tensor,
                 labels: torch.Tensor) -> torch.Tensor:
        """Foolbox's raw minimal adversarial, clipped to bounds; the clean input where it failed."""
        raw, _, success = attack(fmodel, images, labels, epsilons=None)
        raw = raw.detach().clamp(*BOUNDS)
        return torch.where(_per_sample(success, raw), raw, images)


_GOODFELLOW = "Goodfellow et al. 2015, arXiv:1412.6572"
_MADRY = "Madry et al. 2018, arXiv:1706.06083"
_KURAKIN = "Kurakin et al. 2017, arXiv:1607.02533"
_CARLINI = "Carlini & Wagner 2017, arXiv:1608.04644"
_DEEPFOOL = "Moosavi-Dezfooli et al. 2016, arXiv:1511.04599"
_FMN = "Pintor et al. 2021, arXiv:2102.12827"

ATTACKS: tuple[FoolboxAttack, ...] = (
    FoolboxAttack("fgsm", "linf", "fixed_epsilon",
                  f"L∞ Fast Gradient Sign Method, one signed-gradient step of size ε ({_GOODFELLOW}).",
                  FGSMParams, fb.attacks.LinfFastGradientAttack, iterative=False),
    FoolboxAttack("pgd_linf", "linf", "fixed_epsilon",
                  f"L∞ Projected Gradient Descent with random start and restarts ({_MADRY}).",
                  PGDLinfParams, fb.attacks.LinfPGD, strengthener=more_steps_and_restarts),
    FoolboxAttack("bim_linf", "linf", "fixed_epsilon",
                  f"L∞ Basic Iterative Method, iterated FGSM clipped to the ε-ball ({_KURAKIN}).",
                  BIMParams, fb.attacks.LinfBasicIterativeAttack),
    FoolboxAttack("pgd_l2", "l2", "fixed_epsilon",
                  f"L2 Projected Gradient Descent with random start and restarts ({_MADRY}).",
                  PGDL2Params, fb.attacks.L2PGD, strengthener=more_steps_and_restarts),
    FoolboxAttack("cw_l2", "l2", "minimal",
                  f"Carlini-Wagner L2 minimal-perturbation attack, Adam on a tanh-box margin loss ({_CARLINI}).",
                  CWParams, fb.attacks.L2CarliniWagnerAttack),
    FoolboxAttack("deepfool_linf", "linf", "minimal",
                  f"DeepFool L∞ minimal-perturbation attack by iterative linearisation ({_DEEPFOOL}).",
                  DeepFoolParams, fb.attacks.LinfDeepFoolAttack, _clamp_candidates),
    FoolboxAttack("deepfool_l2", "l2", "minimal",
                  f"DeepFool L2 minimal-perturbation attack by iterative linearisation ({_DEEPFOOL}).",
                  DeepFoolParams, fb.attacks.L2DeepFoolAttack, _clamp_candidates),
    FoolboxAttack("fmn_linf", "linf", "minimal",
                  f"Fast Minimum-Norm L∞ attack with an adaptive ε-ball ({_FMN}).",
                  FMNParams, fb.attacks.LInfFMNAttack, _no_init_attack),
    FoolboxAttack("fmn_l2", "l2", "minimal",
                  f"Fast Minimum-Norm L2 attack with an adaptive ε-ball; foolbox's projection fixed ({_FMN}).",
                  FMNParams, _L2FMN, _no_init_attack),
)


@hookimpl
def harness_register_attacks() -> list[FoolboxAttack]:
    """The built-in foolbox attacks."""
    return list(ATTACKS)
