"""The resumable certification of one model at one σ: CERTIFY and PREDICT for each chosen test image.

Each image's noise comes from a generator seeded by (run seed, σ, the image's index in the test split), so the
outcome does not depend on which images ran before it, and both models see the same noise (paired). After every
CHECKPOINT_EVERY images the outcomes so far are saved (harness.storage.checkpoint) and a rerun continues from the
first unfinished image, under the same fingerprint only.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.attacks.sweep import batch_seed
from harness.certification.precision import EAGER, SmoothingEngine
from harness.certification.smoothing import certify_image
from harness.plan.certification import CertificationSettings
from harness.registry.contracts import Split
from harness.storage.checkpoint import load_arrays, save_arrays

CHECKPOINT_EVERY = 8  # images between checkpoints
NOT_RUN = -2  # an image not yet certified


@dataclass
class SigmaOutcome:
    """Per certified image (in `indices` order): CERTIFY's class (-1 abstain), radius and bound, the estimation
    samples on its class, and PREDICT's class (-1 abstain); `seconds` this attempt spent."""

    indices: np.ndarray
    certified: np.ndarray
    radius: np.ndarray
    p_lower: np.ndarray
    top_count: np.ndarray
    predicted: np.ndarray
    seconds: float = 0.0
    computed: int = 0  # images certified by this attempt (the others came from the checkpoint)


def image_indices(n_test: int, n_images: int | None) -> np.ndarray:
    """The test images to certify: all, or `n_images` evenly spaced over the split (first and last included)."""
    if n_images is None or n_images >= n_test:
        return np.arange(n_test, dtype=np.int64)
    return np.unique(np.linspace(0, n_test - 1, n_images).round().astype(np.int64))


def noise_generator(seed: int, sigma: float, index: int) -> torch.Generator:
    """The CPU generator of one image's noise at one σ."""
    return torch.Generator().manual_seed(batch_seed(seed, "certification", repr(float(sigma)), int(index)))


def certify_split(model: nn.Module, split: Split, indices: np.ndarray, sigma: float,
                  settings: CertificationSettings, num_classes: int, device: torch.device, seed: int,
                  engine: SmoothingEngine = EAGER, checkpoint: Path | None = None,
                  on_image: Callable[[int], None] | None = None, run_fingerprint: str = "") -> SigmaOutcome:
    """CERTIFY and PREDICT every image of `indices` at `sigma`; continued from `checkpoint` when it was made under
    the same settings and `run_fingerprint` (harness.run.fingerprint)."""
    m = len(indices)
    which = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
    fingerprint = (f"images={m}:{which};sigma={sigma!r};n0={settings.n0};n={settings.n};alpha={settings.alpha!r};"
                   f"batch={settings.batch_size};engine={engine.name};seed={seed};run={run_fingerprint}")
    saved = load_arrays(checkpoint, fingerprint)
    state = saved or {"next": np.array(0), "certified": np.full(m, NOT_RUN, dtype=np.int64),
                      "radius": np.zeros(m), "p_lower": np.zeros(m), "top_count": np.zeros(m, dtype=np.int64),
                      "predicted": np.full(m, NOT_RUN, dtype=np.int64)}
    start = int(state["next"])
    if on_image and start:
        on_image(start)
    began = time.perf_counter()
    prepared = engine.prepare(model) if start < m else model
    for position in range(start, m):
        index = int(indices[position])
        certificate = certify_image(prepared, split[index][0], sigma, settings.n0, settings.n, settings.alpha,
                                    settings.batch_size, noise_generator(seed, sigma, index), num_classes, device,
                                    engine.bf16, engine.channels_last)
        state["certified"][position] = certificate.certified_class
        state["radius"][position] = certificate.radius
        state["p_lower"][position] = certificate.p_lower
        state["top_count"][position] = certificate.top_count
        state["predicted"][position] = certificate.predicted_class
        state["next"] = np.array(position + 1)
        if (position + 1) % CHECKPOINT_EVERY == 0 or position + 1 == m:
            save_arrays(checkpoint, fingerprint, **state)
        if on_image:
            on_image(1)
    return SigmaOutcome(np.asarray(indices, dtype=np.int64), state["certified"], state["radius"], state["p_lower"],
                        state["top_count"], state["predicted"], time.perf_counter() - began, m - start)
