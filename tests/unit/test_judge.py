"""The judged-attack primitive: bound checks, the float32 judge, and errors naming the attack."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from harness.attacks.judge import BOUND_TOLERANCE, judge, judged_attack, perturbation_norm
from harness.errors import AttackError, ModelError
from harness.registry.contracts import AttackOutput


class MeanThreshold(nn.Module):
    """Class 1 when the mean pixel exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1, keepdim=True) - 0.5
        return torch.cat([-50 * m, 50 * m], dim=1)


@dataclass
class Scripted:
    """Returns the same adversarials whatever it is asked (to test the checks around a plugin)."""

    adversarials: list[torch.Tensor]
    name: str = "scripted"

    def run(self, model, images, labels, epsilons, params):
        return AttackOutput(self.adversarials)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.tensor([0.45, 0.55, 0.49]).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    return images, torch.tensor([0, 1, 0])


def test_judge_counts_only_valid_adversarials_that_fool_the_judge() -> None:
    images, labels = _batch()
    adversarial = images.clone()
    adversarial[0] += 0.1  # crosses 0.5 but 0.1 > ε: invalid
    adversarial[1] -= 0.06  # crosses 0.5 within ε: counted
    adversarial[2] += 0.02  # crosses 0.5 within ε: counted
    verdict = judge(MeanThreshold(), images, labels, adversarial, "linf", 0.06)
    assert verdict.fooled.tolist() == [True, True, True]
    assert verdict.valid.tolist() == [False, True, True]
    assert verdict.counted.tolist() == [False, True, True]
    assert verdict.logits.dtype == torch.float32 and verdict.logits.shape == (3, 2)
    assert verdict.distance[0] == pytest.approx(0.1)
    outside_box = images.clone()
    outside_box[2, 0, 0, 0] = 1 + 2 * BOUND_TOLERANCE
    assert not judge(MeanThreshold(), images, labels, outside_box, "linf", None).valid[2]
    assert perturbation_norm(torch.full((1, 1, 2, 2), 0.5), "l2").item() == pytest.approx(1.0)


def test_judge_rejects_a_wrong_shape_nan_pixels_and_nan_logits() -> None:
    images, labels = _batch()
    with pytest.raises(AttackError, match="shape"):
        judge(MeanThreshold(), images, labels, images[:2], "linf", 0.1)
    with pytest.raises(AttackError, match="NaN"):
        judge(MeanThreshold(), images, labels, images * float("nan"), "linf", 0.1)

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((len(x), 2), float("nan"))

    with pytest.raises(ModelError, match="NaN or Inf logits"):
        judge(Broken(), images, labels, images, "linf", 0.1)


def test_judged_attack_checks_the_number_of_sets_and_names_the_attack() -> None:
    images, labels = _batch()
    plugin = Scripted([images.clone()])
    with pytest.raises(AttackError, match="'pgd' returned 1 adversarial sets, expected 2"):
        judged_attack(plugin, MeanThreshold(), MeanThreshold(), images, labels, [0.1, 0.2], None, "linf", "pgd")

    class Failing(Scripted):
        def run(self, model, images, labels, epsilons, params):
            raise RuntimeError("out of ideas")

    with pytest.raises(AttackError, match="attack 'x' failed: out of ideas"):
        judged_attack(Failing([]), MeanThreshold(), MeanThreshold(), images, labels, [0.1], None, "linf", "x")


def test_the_judge_model_decides_not_the_crafting_model() -> None:
    images, labels = _batch()
    adversarial = images.clone()
    adversarial[1] -= 0.06
    always_wrong = nn.Sequential(MeanThreshold(), nn.Flatten())  # same decisions
    flipped = lambda x: -MeanThreshold()(x)  # noqa: E731 - a crafting model that disagrees everywhere
    ((adv, verdict),) = judged_attack(Scripted([adversarial]), flipped, always_wrong, images, labels, [0.06], None,
                                      "linf", "a")
    assert verdict.counted.tolist() == [False, True, False] and torch.equal(adv, adversarial)
