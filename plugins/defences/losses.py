"""How each defence turns one training batch into a loss: PGD/FGSM-RS adversarial cross-entropy, or TRADES."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from harness_plugins.defences import torch_attacks
from harness_plugins.defences.parallel import plain, train_forward
from harness_plugins.defences.precision import Precision


class BatchLoss(Protocol):
    """Builds a batch's training loss; returns (loss, logits of the adversarial inputs trained on).

    `model` may be a DDP wrapper (under torchrun): attacks run on `plain(model)`, training passes through it."""

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
                 generator: torch.Generator, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class AdversarialCrossEntropy:
    """Cross-entropy on a batch whose first `adversarial_fraction` is replaced by L∞ PGD adversarials.

    PGD adversarial training (Madry et al. 2018) and, with one step of α from a uniform start, FGSM-RS
    (Wong et al. 2020). The batch arrives shuffled, so the adversarial part is a random subset."""

    steps: int
    rel_stepsize: float
    random_start: bool = True
    adversarial_fraction: float = 1.0
    abs_stepsize: float | None = None  # overrides rel_stepsize × ε (FGSM-RS's α)

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
                 generator: torch.Generator, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
        n_adv = int(round(self.adversarial_fraction * len(images)))
        inputs = images
        if n_adv > 0:
            step = self.abs_stepsize if self.abs_stepsize is not None else self.rel_stepsize * epsilon
            adv = torch_attacks.linf_pgd(
                plain(model), images[:n_adv], torch_attacks.cross_entropy(labels[:n_adv]), epsilon,
                self.steps, step, "uniform" if self.random_start else "none", generator, precision.autocast,
                precision.attack_loss_scale)
            inputs = torch.cat([adv, images[n_adv:]])
        model.train()
        with precision.autocast():
            (logits,) = train_forward(model, inputs)
        return F.cross_entropy(logits.float(), labels), logits.detach()


@dataclass(frozen=True)
class TradesLoss:
    """TRADES (Zhang et al. 2019): CE(f(x), y) + β·KL(f(x) ‖ f(x')), x' maximising the KL in the ε-ball."""

    beta: float
    steps: int
    rel_stepsize: float

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
                 generator: torch.Generator, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
        attacked = plain(model)
        attacked.eval()
        with torch.no_grad(), precision.autocast():
            clean_probs = F.softmax(attacked(images).float(), dim=1)

        def kl_to_clean(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return F.kl_div(F.log_softmax(logits, dim=1), clean_probs[rows], reduction="none").sum(1)

        adv = torch_attacks.linf_pgd(attacked, images, kl_to_clean, epsilon, self.steps, self.rel_stepsize * epsilon,
                                     "gaussian", generator, precision.autocast, precision.attack_loss_scale)
        model.train()
        with precision.autocast():
            logits_clean, logits_adv = (logits.float() for logits in train_forward(model, images, adv))
        robust = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1), reduction="batchmean")
        return F.cross_entropy(logits_clean, labels) + self.beta * robust, logits_adv.detach()
