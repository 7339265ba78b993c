"""No attack of the harness breaks a certified image inside its radius: L2 PGD (harness.attacks.native.pgd) on the
smoothed classifier itself, then its prediction at the adversarial point estimated with many noise samples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.attacks.native.losses import cross_entropy
from harness.attacks.native.norms import l2_norms
from harness.attacks.native.pgd import pgd
from harness.certification.smoothing import ABSTAIN, certify_image, class_counts

SIGMA, ALPHA, CPU = 0.25, 0.001, torch.device("cpu")


def _base_model() -> nn.Module:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 2))
    return model.eval()


class SoftSmoothed(nn.Module):
    """A differentiable stand-in of the smoothed classifier: log of the mean softmax over fixed noise draws
    (the expectation PGD ascends when it attacks randomized smoothing, Salman et al. 2019)."""

    def __init__(self, base: nn.Module, draws: int = 128) -> None:
        super().__init__()
        self.base = base
        self.noise = SIGMA * torch.randn((draws, 1, 4, 4), generator=torch.Generator().manual_seed(9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noisy = (x.unsqueeze(1) + self.noise.unsqueeze(0)).reshape(-1, *x.shape[1:])
        probs = torch.softmax(self.base(noisy), dim=1).reshape(len(x), len(self.noise), -1).mean(1)
        return torch.log(probs + 1e-12)


@pytest.mark.slow  # about 4 s on an idle CPU core; 20 s on the shared machine
def test_pgd_on_the_smoothed_classifier_never_changes_a_certified_prediction_within_its_radius():
    base = _base_model()
    smoothed = SoftSmoothed(base)
    images = torch.rand((10, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    attacked = 0
    for k, image in enumerate(images):
        cert = certify_image(base, image, SIGMA, 100, 1000, ALPHA, 1100, torch.Generator().manual_seed(k), 2, CPU)
        if cert.certified_class == ABSTAIN or cert.radius < 0.05:
            continue
        radius = 0.999 * cert.radius
        target = torch.tensor([cert.certified_class])
        adversarial = pgd(smoothed, image.unsqueeze(0), cross_entropy(target), radius, "l2", steps=20,
                          step_size=2.5 * radius / 20, start="uniform", generator=torch.Generator().manual_seed(k))
        assert float(l2_norms(adversarial - image.unsqueeze(0))) <= cert.radius
        counts = class_counts(base, adversarial[0], SIGMA, 10_000, 10_000, torch.Generator().manual_seed(100 + k),
                              2, CPU)
        assert counts[cert.certified_class] > counts.sum() / 2, (k, cert, counts)
        attacked += 1
    assert attacked >= 5  # the test attacked enough certified images to mean something
