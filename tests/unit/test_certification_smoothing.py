"""Randomized smoothing against closed forms: a linear binary classifier's smoothed prediction and exact radius,
and the one-sided Clopper–Pearson bound behind every certificate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from harness.certification.smoothing import ABSTAIN, certify, certify_image, predict
from harness.stats.smoothing import gaussian_radius, lower_confidence_bound, max_certifiable_radius

SIGMA, ALPHA, DIM = 0.25, 0.001, 16


class Linear(nn.Module):
    """f(x) = 1[w·x + b > 0] as two logits (0, w·x + b)."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(score), score], dim=1)


def _linear() -> tuple[Linear, torch.Tensor]:
    w = torch.linspace(-1.0, 1.0, DIM)
    return Linear(w, 0.05), w


def _exact_radius(x: torch.Tensor, w: torch.Tensor, b: float) -> float:
    """Under N(0, σ²I), P(f(x+δ)=1) = Φ((w·x+b)/(σ‖w‖)), so σ·Φ⁻¹(p_A) is the distance |w·x+b|/‖w‖ to the
    decision boundary: the exact certified radius of the smoothed linear classifier."""
    return abs(float(x.flatten() @ w) + b) / float(w.norm())


def _image(shift: float) -> torch.Tensor:
    return (torch.full((1, 4, 4), 0.5) + shift * torch.linspace(-1.0, 1.0, DIM).reshape(1, 4, 4)).clamp(0, 1)


def test_the_certified_radius_is_below_the_exact_one_and_approaches_it_as_n_grows():
    model, w = _linear()
    x = _image(0.12)  # margin ≈ one σ: p_A ≈ 0.85, far from both 1/2 and the cap α^(1/n)
    exact = _exact_radius(x, w, model.b)
    gaps = []
    for n in (1_000, 10_000, 200_000):
        generator = torch.Generator().manual_seed(11)
        cert = certify_image(model, x, SIGMA, 100, n, ALPHA, 20_000, generator, 2, torch.device("cpu"))
        assert cert.certified_class == 1 and cert.predicted_class == 1  # the smoothed prediction is sign(w·x + b)
        assert 0 < cert.radius < exact
        gaps.append(exact - cert.radius)
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[-1] < 0.03 * exact


def test_no_certified_radius_exceeds_the_exact_one_over_many_images():
    model, w = _linear()
    for k, shift in enumerate(np.linspace(-0.3, 0.3, 13)):
        x = _image(float(shift))
        cert = certify_image(model, x, SIGMA, 100, 2_000, ALPHA, 2_100, torch.Generator().manual_seed(k), 2,
                             torch.device("cpu"))
        exact = _exact_radius(x, w, model.b)
        assert cert.radius <= exact
        if cert.certified_class != ABSTAIN:
            assert cert.certified_class == int(float(x.flatten() @ w) + model.b > 0)


def test_the_lower_bound_is_the_one_sided_clopper_pearson_bound():
    # every sample on the top class: the bound is α^(1/n), so no image certifies beyond σ·Φ⁻¹(α^(1/n))
    assert lower_confidence_bound(1000, 1000, ALPHA) == pytest.approx(ALPHA ** (1 / 1000))
    assert max_certifiable_radius(1.0, 1000, ALPHA) == pytest.approx(2.4633, abs=1e-3)  # Cohen et al.'s 2.46σ
    from scipy.stats import beta

    assert lower_confidence_bound(830, 1000, ALPHA) == pytest.approx(beta.ppf(ALPHA, 830, 171))
    assert gaussian_radius(0.5, 0.5) == 0.0 and gaussian_radius(0.5, 0.3) == 0.0


def test_certify_abstains_below_one_half_and_predict_abstains_on_a_tie():
    cert = certify(np.array([60, 40]), np.array([520, 480]), SIGMA, ALPHA)
    assert cert.certified_class == ABSTAIN and cert.radius == 0.0 and cert.predicted_class == ABSTAIN
    assert predict(np.array([0, 1000]), ALPHA) == 1
    sure = certify(np.array([0, 100]), np.array([3, 997]), SIGMA, ALPHA)
    assert sure.certified_class == 1
    assert sure.radius == pytest.approx(SIGMA * _ppf(lower_confidence_bound(997, 1000, ALPHA)))


def _ppf(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def test_the_noise_does_not_depend_on_the_noise_batch_size_beyond_the_stream():
    model, _ = _linear()
    x = _image(0.05)
    a = certify_image(model, x, SIGMA, 100, 1000, ALPHA, 1100, torch.Generator().manual_seed(3), 2,
                      torch.device("cpu"))
    b = certify_image(model, x, SIGMA, 100, 1000, ALPHA, 1100, torch.Generator().manual_seed(3), 2,
                      torch.device("cpu"))
    assert a == b and math.isfinite(a.radius)


def test_the_speed_options_are_used_only_where_their_classes_agree_with_float32_eager():
    from harness.certification.precision import EAGER, choose_engine
    from harness.plan.certification import CertificationSettings
    from harness.registry.contracts import TensorSplit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2)).eval()
    images = torch.rand((6, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    split = TensorSplit(images, np.zeros(6, dtype=np.int64), [f"s{i}" for i in range(6)], [f"g{i}" for i in range(6)])
    settings = CertificationSettings(sigma=[0.25], n0=50, n=100)
    engine, record = choose_engine(model, split, np.arange(6), 0.25, settings, 2, torch.device("cpu"), 0)
    assert engine.channels_last and not engine.bf16 and record["used"] == "float32, channels-last"
    assert record["candidates"][0]["worst_difference_points"] <= 1.0 and record["probe_images"] == 4
    pinned, why = choose_engine(model, split, np.arange(6), 0.25, CertificationSettings(precision="float32"), 2,
                                torch.device("cpu"), 0)
    assert pinned == EAGER and why["reason"] == "precision: float32 in the plan"
