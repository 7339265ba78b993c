"""The shared plain-torch PGD: per-norm steps, early stop at the first success, restarts, and its Foolbox match."""

from __future__ import annotations

import foolbox as fb
import pytest
import torch
from attack_toys import one_torch_thread  # noqa: F401 - a fixture
from torch import nn

from harness.attacks.native.losses import cross_entropy, margin, misclassified
from harness.attacks.native.norms import project, random_start, step
from harness.attacks.native.pgd import pgd

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 3))
    return model.eval()


def _images(n: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


class Counting(nn.Module):
    """Counts the images each forward sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(len(x))
        return self.inner(x)


def test_steps_and_projections_per_norm() -> None:
    x0 = torch.full((2, 1, 2, 2), 0.5)
    grad = torch.tensor([1.0, -2.0, 0.0, 3.0]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    assert step(x0, grad, 0.1, "linf")[0].flatten().tolist() == pytest.approx([0.6, 0.4, 0.5, 0.6])
    moved = step(x0, grad, 0.1, "l2")
    assert (moved - x0).flatten(1).norm(dim=1).tolist() == pytest.approx([0.1, 0.1])
    far = x0 + torch.tensor([0.3, -0.3]).view(2, 1, 1, 1)
    assert (project(x0, far, 0.1, "linf") - x0).abs().max() == pytest.approx(0.1)
    assert (project(x0, far, torch.tensor([0.1, 0.2]), "linf") - x0)[1].abs().max() == pytest.approx(0.2)
    assert (project(x0, far, 0.2, "l2") - x0).flatten(1).norm(dim=1).tolist() == pytest.approx([0.2, 0.2])
    start = random_start(x0, 0.05, "linf", "uniform", torch.Generator().manual_seed(0))
    assert 0 < (start - x0).abs().max() <= 0.05
    ball = random_start(x0, 0.05, "l2", "uniform", torch.Generator().manual_seed(0))
    assert 0 < float((ball - x0).flatten(1).norm(dim=1).max()) <= 0.05 + 1e-6


@pytest.mark.parametrize("norm,eps,rel", [("linf", 0.03, 0.25), ("l2", 0.5, 0.1)])
def test_pgd_reproduces_foolbox_from_the_same_random_start(net: nn.Module, norm: str, eps: float, rel: float) -> None:
    images = _images()
    labels = net(images).argmax(1)
    attack = (fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD)(steps=7, rel_stepsize=rel)
    torch.manual_seed(3)
    _, (reference,), _ = attack(fb.PyTorchModel(net, bounds=(0, 1)), images, labels, epsilons=[eps])
    torch.manual_seed(3)
    ours = pgd(net, images, cross_entropy(labels), eps, norm, 7, rel * eps, "uniform")
    assert (ours - reference).abs().max() <= 1e-5


def test_early_stop_keeps_the_first_success_and_shrinks_the_batch(net: nn.Module) -> None:
    images = _images(16)
    labels = net(images).argmax(1)
    counting = Counting(net)
    adv = pgd(counting, images, cross_entropy(labels), 0.3, "linf", 10, 0.05, success=misclassified(labels))
    assert (adv - images).abs().max() <= 0.3 + 1e-6
    broken = net(adv).argmax(1) != labels
    assert broken.float().mean() >= 0.5
    assert counting.seen[0] == 16 and counting.seen[-1] < 16  # finished images leave the batch
    again = Counting(net)
    masked = pgd(again, images, cross_entropy(labels), 0.3, "linf", 10, 0.05, success=misclassified(labels),
                 compact=False)
    assert set(again.seen) == {16} and torch.allclose(masked, adv)  # same result, static shape
    # without early stop every image takes every step (and the last iterate may undo a success)
    plain = Counting(net)
    pgd(plain, images, cross_entropy(labels), 0.3, "linf", 10, 0.05)
    assert plain.seen == [16] * 10


def test_restarts_only_attack_what_is_left_and_keep_successes(net: nn.Module) -> None:
    images = _images(16, seed=4)
    labels = net(images).argmax(1)
    counting = Counting(net)
    torch.manual_seed(0)
    adv = pgd(counting, images, margin(labels), 0.02, "linf", 3, 0.005, "uniform", success=misclassified(labels),
              restarts=3)
    assert (adv - images).abs().max() <= 0.02 + 1e-6
    assert sum(counting.seen) < 3 * (3 + 1) * 16  # later restarts skip images that already broke
    assert counting.seen.count(16) >= 1


def test_parameter_gradients_and_training_mode_are_untouched(net: nn.Module) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).train()
    images = _images(8)
    stats = model[2].running_mean.clone()
    pgd(model, images, cross_entropy(torch.zeros(8, dtype=torch.int64)), 0.1, "linf", 3, 0.05)
    assert model.training and torch.equal(model[2].running_mean, stats)
    assert all(p.grad is None for p in model.parameters())
