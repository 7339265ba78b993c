"""The judged attack: run an attack plugin, check every adversarial against its bound, judge it with the float32
eager model. The sweep, the indicators and the example images all count adversarials through this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.data.batches import check_finite_logits
from harness.errors import AttackError
from harness.registry.contracts import AttackPlugin

BOUND_TOLERANCE = 1e-6


@dataclass
class Judgement:
    """Per-sample verdict on one batch of adversarials (tensors on the images' device)."""

    fooled: torch.Tensor  # bool: the judge's prediction differs from the label
    distance: torch.Tensor  # float64: ‖adversarial − image‖ in the attack's norm
    valid: torch.Tensor  # bool: inside [0,1] and, for a fixed-ε attack, within ε
    logits: torch.Tensor  # float32: the judge's logits of the adversarials

    @property
    def counted(self) -> torch.Tensor:
        """Fooled by a valid adversarial: what counts as a success."""
        return self.fooled & self.valid

    def as_numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fooled, distance, valid) as host arrays."""
        return self.fooled.cpu().numpy(), self.distance.cpu().numpy(), self.valid.cpu().numpy()


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample L∞ or L2 norm of a batch of perturbations (float64)."""
    flat = delta.flatten(1).double()
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(p=2, dim=1)


@torch.no_grad()
def judge(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, adversarial: torch.Tensor, norm: str,
          epsilon: float | None) -> Judgement:
    """Check each adversarial against its bound (ε when given, and [0,1]) and classify it with `model`.

    `model` is the float32 eager model behind its logits view (harness.attacks.heads): whatever crafted the
    adversarial, this decides whether it fools. The argmax of the view is the device's decision, thresholded at
    its operating point for a binary model, so a success means the thresholded decision left the label.
    """
    if adversarial.shape != images.shape:
        raise AttackError(f"adversarial batch has shape {tuple(adversarial.shape)}, expected {tuple(images.shape)}")
    adversarial = adversarial.to(images.device, images.dtype)
    if not torch.isfinite(adversarial).all():
        raise AttackError("the attack returned NaN or Inf pixels")
    distance = perturbation_norm(adversarial - images, norm)
    flat = adversarial.flatten(1)
    in_box = (flat.amin(1) >= -BOUND_TOLERANCE) & (flat.amax(1) <= 1 + BOUND_TOLERANCE)
    valid = in_box if epsilon is None else in_box & (distance <= epsilon + BOUND_TOLERANCE)
    logits = model(adversarial).float()
    check_finite_logits(logits, "adversarial images")
    return Judgement(fooled=logits.argmax(dim=1) != labels, distance=distance, valid=valid, logits=logits)


def run_plugin(plugin: AttackPlugin, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
               epsilons: Sequence[float] | None, params: Any, attack_id: str,
               seed: int | None = None) -> list[torch.Tensor]:
    """The plugin's adversarials for one batch (one tensor per ε, or one for a minimal attack).

    With `seed`, the global torch RNG is seeded first (stochastic attacks draw from it). A plugin failure or a
    wrong number of adversarial sets is an AttackError naming the attack.
    """
    if seed is not None:
        torch.manual_seed(seed)
    try:
        output = plugin.run(model, images, labels, None if epsilons is None else list(epsilons), params)
    except (RuntimeError, ValueError, AssertionError) as exc:
        raise AttackError(f"attack {attack_id!r} failed: {exc}") from exc
    expected = 1 if epsilons is None else len(epsilons)
    if len(output.adversarials) != expected:
        raise AttackError(f"attack {attack_id!r} returned {len(output.adversarials)} adversarial sets, "
                          f"expected {expected}")
    return output.adversarials


def judged_attack(plugin: AttackPlugin, model: nn.Module, judge_model: nn.Module, images: torch.Tensor,
                  labels: torch.Tensor, epsilons: Sequence[float] | None, params: Any, norm: str, attack_id: str,
                  seed: int | None = None) -> list[tuple[torch.Tensor, Judgement]]:
    """Attack → bound check → judge: (adversarial, Judgement) per ε (one pair for a minimal attack).

    `model` crafts (it may be a compiled or reduced-precision copy), `judge_model` (the float32 eager model)
    decides.
    """
    adversarials = run_plugin(plugin, model, images, labels, epsilons, params, attack_id, seed)
    bounds = [None] if epsilons is None else list(epsilons)
    out = []
    for adv, eps in zip(adversarials, bounds, strict=True):
        verdict = judge(judge_model, images, labels, adv, norm, eps)
        out.append((adv.detach().to(images.device, images.dtype), verdict))
    return out
