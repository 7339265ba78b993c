"""Randomized smoothing: class counts of a base model under Gaussian noise, and CERTIFY and PREDICT on them.

The smoothed classifier g(x) = argmax_c P(f(x + δ) = c), δ ~ N(0, σ²I), is what is certified (Cohen et al. 2019,
Algorithms 1 and 2): CERTIFY picks the top class ĉ_A from n0 selection samples, bounds its probability p_A from
below with n fresh estimation samples (one-sided Clopper–Pearson at 1 − α) and returns ĉ_A with radius
R = σ·Φ⁻¹(p_A), or abstains when p_A < 1/2. PREDICT returns the top class of the estimation samples when a
two-sided binomial test of its count against the runner-up's rejects equality at α, and abstains otherwise; it
reuses CERTIFY's estimation samples (each procedure's guarantee holds on its own). Noise is drawn on the CPU from a
generator seeded per image, so the counts do not depend on the device, the batch size or a resumed run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.data.batches import check_finite_logits
from harness.stats.smoothing import binomial_p_value, gaussian_radius, lower_confidence_bound

ABSTAIN = -1  # the class CERTIFY or PREDICT returns when it abstains


@dataclass(frozen=True)
class Certificate:
    """One image's outcome: CERTIFY's class and radius, the bound behind it, and PREDICT's class."""

    certified_class: int  # ĉ_A, or ABSTAIN
    radius: float  # σ·Φ⁻¹(p_A); 0.0 when CERTIFY abstains
    p_lower: float  # one-sided (1 − α) lower bound of P(f(x + δ) = ĉ_A)
    top_count: int  # estimation samples on ĉ_A
    predicted_class: int  # PREDICT's class, or ABSTAIN


def certify(selection: np.ndarray, estimation: np.ndarray, sigma: float, alpha: float) -> Certificate:
    """CERTIFY and PREDICT from the class counts of the n0 selection and n estimation samples of one image."""
    top = int(np.argmax(selection))  # ties: the lowest class index
    n = int(estimation.sum())
    count = int(estimation[top])
    p_lower = lower_confidence_bound(count, n, alpha)
    certified, radius = (ABSTAIN, 0.0) if p_lower < 0.5 else (top, gaussian_radius(sigma, p_lower))
    return Certificate(certified, radius, p_lower, count, predict(estimation, alpha))


def predict(counts: np.ndarray, alpha: float) -> int:
    """PREDICT: the top class when the binomial test of its count against the runner-up's has p ≤ α."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    first = int(counts[order[0]])
    second = int(counts[order[1]]) if len(order) > 1 else 0
    return int(order[0]) if binomial_p_value(first, first + second) <= alpha else ABSTAIN


def noise_batches(image: torch.Tensor, sigma: float, total: int, batch_size: int,
                  generator: torch.Generator) -> Iterator[torch.Tensor]:
    """`total` noisy copies x + σ·δ of one [0,1] image (C×H×W, on the CPU), in batches; not clipped to [0,1] (the
    guarantee is for Gaussian noise as drawn)."""
    left = total
    while left > 0:
        size = min(batch_size, left)
        noise = torch.randn((size, *image.shape), generator=generator, dtype=torch.float32)
        yield image.unsqueeze(0) + sigma * noise
        left -= size


def class_counts(model: nn.Module, image: torch.Tensor, sigma: float, total: int, batch_size: int,
                 generator: torch.Generator, num_classes: int, device: torch.device,
                 bf16: bool = False, channels_last: bool = False) -> np.ndarray:
    """How many of `total` noisy copies of `image` the model gives each class (int64 [num_classes]); forward passes
    batched in inference mode, under bf16 autocast when `bf16` (CUDA), in channels-last layout when asked."""
    counts = np.zeros(num_classes, dtype=np.int64)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for batch in noise_batches(image, sigma, total, batch_size, generator):
            batch = batch.to(device)
            logits = model(batch.contiguous(memory_format=torch.channels_last) if channels_last else batch).float()
            check_finite_logits(logits, "noisy copies of a test image (randomized smoothing)")
            classes = logits.argmax(dim=1).cpu().numpy()
            counts += np.bincount(classes, minlength=num_classes)[:num_classes]
    return counts


def certify_image(model: nn.Module, image: torch.Tensor, sigma: float, n0: int, n: int, alpha: float,
                  batch_size: int, generator: torch.Generator, num_classes: int, device: torch.device,
                  bf16: bool = False, channels_last: bool = False) -> Certificate:
    """CERTIFY (and PREDICT) for one image: n0 selection samples, then n estimation samples, from `generator`."""
    selection = class_counts(model, image, sigma, n0, batch_size, generator, num_classes, device, bf16, channels_last)
    estimation = class_counts(model, image, sigma, n, batch_size, generator, num_classes, device, bf16, channels_last)
    return certify(selection, estimation, sigma, alpha)
