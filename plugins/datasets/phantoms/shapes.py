"""Shape, texture and bookkeeping helpers shared by the generated mammogram and brain-MRI phantoms.

Textures and shapes work on float64 H×W arrays; pixel sizes are given for a 64-pixel reference patch and the
callers scale them with the image size. `make_bundle` turns generated arrays into a patient-split DatasetBundle
with the shared helpers of `common.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from harness.data.splits import grouped_stratified_split
from harness.errors import DataError, PlanError
from harness.registry.contracts import DatasetBundle, NativeUnits, TensorSplit
from harness_plugins.datasets.common import (
    SPLITS,
    build_splits,
    class_counts,
    content_sha256,
    describe_fractions,
    group_counts,
)

REFERENCE_SIZE = 64
CONTENT_HASH = ("sha256 of: common.content_sha256 (per split in order: name, float32 image bytes, int64 labels), "
                "then per split its name and its sample ids and patient ids in order (the split assignment)")


# ---------------------------------------------------------------------------------------------- validation


def check_range_pair(values: Sequence[float], key: str) -> None:
    """PlanError naming `key` unless `values` is [low, high] with low ≤ high."""
    if len(values) != 2 or values[0] > values[1]:
        raise PlanError(f"expected [min, max] with min ≤ max, got {list(values)}", key=key)


def check_weights(values: Sequence[float], count: int, key: str) -> None:
    """PlanError naming `key` unless `values` holds `count` non-negative weights with a positive sum."""
    if len(values) != count or sum(values) <= 0:
        raise PlanError(f"expected {count} non-negative weights with a positive sum, got {list(values)}", key=key)


# ---------------------------------------------------------------------------------------------- patients


def patient_layout(rng: np.random.Generator, n_patients: int, per_patient: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Patient index and within-patient item index of every sample, with `per_patient` = [min, max] items."""
    counts = rng.integers(per_patient[0], per_patient[1] + 1, size=n_patients)
    patient_idx = np.repeat(np.arange(n_patients), counts)
    item_idx = np.concatenate([np.arange(k) for k in counts])
    return patient_idx, item_idx


def patient_labels(rng: np.random.Generator, patient_idx: np.ndarray, positive_fraction: float,
                   concordance: float = 0.75) -> np.ndarray:
    """Labels correlated within a patient: each item keeps the patient's label with probability `concordance`,
    otherwise draws afresh, so the marginal positive rate stays `positive_fraction`."""
    n_patients = int(patient_idx.max()) + 1
    patient = rng.random(n_patients) < positive_fraction
    fresh = rng.random(len(patient_idx)) < positive_fraction
    keep = rng.random(len(patient_idx)) < concordance
    return np.where(keep, patient[patient_idx], fresh).astype(np.int64)


# ---------------------------------------------------------------------------------------------- textures


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def paint(image: np.ndarray, alpha: np.ndarray, value: float | np.ndarray) -> None:
    """Composite `value` over `image` in place with opacity `alpha` in [0,1]."""
    image += alpha * (value - image)


def standardise(field_: np.ndarray) -> np.ndarray:
    """Zero mean and unit standard deviation per image (over the last two axes)."""
    field_ = field_ - field_.mean(axis=(-2, -1), keepdims=True)
    return field_ / np.maximum(field_.std(axis=(-2, -1), keepdims=True), 1e-12)


def power_law_noise(rng: np.random.Generator, n: int, size: int, beta: float) -> np.ndarray:
    """N×size×size Gaussian fields with power spectrum ∝ 1/f^β (β≈3 for mammographic parenchyma), unit std."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    amplitude = radius ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    spectrum = np.fft.rfft2(rng.standard_normal((n, size, size))) * amplitude
    return standardise(np.fft.irfft2(spectrum, s=(size, size)))


def smooth_noise(rng: np.random.Generator, n: int, size: int, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise (correlation length `sigma` pixels), unit std per image."""
    white = rng.standard_normal((n, size, size))
    return standardise(ndimage.gaussian_filter(white, sigma=(0, sigma, sigma), mode="wrap"))


def quantile_per_image(fields: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The q[i]-quantile of image i (N×H×W fields, q of length N), shaped N×1×1 for broadcasting."""
    flat = np.sort(fields.reshape(len(fields), -1), axis=1)
    idx = np.clip(np.round(q * (flat.shape[1] - 1)).astype(int), 0, flat.shape[1] - 1)
    return flat[np.arange(len(fields)), idx][:, None, None]


# ---------------------------------------------------------------------------------------------- shapes


def rotated_polar(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray,
                  aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Ellipse-normalised radius (major axis kept) and angle around the origin, randomly rotated."""
    phi = rng.uniform(0, np.pi)
    u = xx * np.cos(phi) + yy * np.sin(phi)
    v = -xx * np.sin(phi) + yy * np.cos(phi)
    return np.hypot(u, v / aspect), np.arctan2(v, u)


def harmonic_radius(rng: np.random.Generator, theta: np.ndarray, radius: float, harmonics: tuple[int, int],
                    amp: tuple[float, float], n_terms: int) -> np.ndarray:
    """Boundary radius r(θ) = R·(1 + Σ a_k cos(kθ + φ_k)) over `n_terms` harmonics k drawn from [lo, hi]."""
    ks = np.arange(harmonics[0], harmonics[1] + 1)
    r = np.ones_like(theta)
    for k in rng.choice(ks, size=min(n_terms, len(ks)), replace=False):
        r += rng.uniform(*amp) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return radius * r


def spicule_opacity(rng: np.random.Generator, rho: np.ndarray, theta: np.ndarray, radius: float, count: int,
                    length: tuple[float, float], width: float) -> np.ndarray:
    """Opacity of `count` thin, tapering, slightly curved lines radiating from a margin of `radius` pixels."""
    angle = rng.uniform(0, 2 * np.pi, count)[:, None, None]
    reach = rng.uniform(*length, count)[:, None, None] * radius
    bend = rng.uniform(-0.25, 0.25, count)[:, None, None] / max(radius, 1.0)
    weight = rng.uniform(0.5, 1.0, count)[:, None, None]
    y, x = rho * np.sin(theta), rho * np.cos(theta)
    along = x * np.cos(angle) + y * np.sin(angle)  # rho·cos(θ - angle), for all spicules at once
    across = np.abs(y * np.cos(angle) - x * np.sin(angle) - bend * np.maximum(along - radius, 0) ** 2)
    taper = np.clip(1 - (along - 0.8 * radius) / reach, 0, 1) * (along > 0.4 * radius)
    line = sigmoid((width * (0.4 + 0.6 * taper) - across) / 0.3) * taper ** 0.7
    return (line * weight).max(axis=0, initial=0.0)


def blobs(yy: np.ndarray, xx: np.ndarray, centres: np.ndarray, sigmas: np.ndarray, aspects: np.ndarray,
          angles: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sum of elongated Gaussian specks (M centres as M×2 (y, x)); returns an H×W array."""
    dy = yy[None] - centres[:, 0, None, None]
    dx = xx[None] - centres[:, 1, None, None]
    c, s = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    u, v = dx * c + dy * s, (-dx * s + dy * c) / aspects[:, None, None]
    r2 = (u ** 2 + v ** 2) / sigmas[:, None, None] ** 2
    return (peaks[:, None, None] * np.exp(-0.5 * r2)).sum(axis=0)


def curvilinear_line(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, width: float,
                     half_length: float) -> np.ndarray:
    """Opacity of a gently curved line segment with soft ends, at a random place and orientation."""
    size = yy.shape[0]
    theta, c = rng.uniform(0, np.pi), rng.uniform(-0.01, 0.01) * REFERENCE_SIZE / size
    y0, x0 = rng.uniform(0, size, 2)
    t = (xx - x0) * np.cos(theta) + (yy - y0) * np.sin(theta)
    d = -(xx - x0) * np.sin(theta) + (yy - y0) * np.cos(theta) - c * t ** 2
    return sigmoid((half_length - np.abs(t)) / 2.0) * np.exp(-0.5 * (d / width) ** 2)


def quantise(images: np.ndarray, levels: int = 255) -> np.ndarray:
    """Clip to [0,1] and round to `levels` + 1 grey levels (e.g. 8-bit), as float32."""
    return (np.round(np.clip(images, 0.0, 1.0) * levels) / levels).astype(np.float32)


# ---------------------------------------------------------------------------------------------- bundles


def content_sha256_with_ids(splits: Mapping[str, TensorSplit]) -> str:
    """common.content_sha256 (images and labels per split) extended with each split's sample and patient ids."""
    digest = hashlib.sha256(content_sha256(splits).encode())
    for name in SPLITS:
        digest.update(name.encode())
        digest.update("\n".join(splits[name].sample_ids).encode())
        digest.update(b"\0")
        digest.update("\n".join(splits[name].group_ids).encode())
    return digest.hexdigest()


def make_bundle(plugin: str, prefix: str, class_names: list[str], images: np.ndarray, labels: np.ndarray,
                patient_idx: np.ndarray, item_idx: np.ndarray, seed: int, fractions: dict[str, float],
                native_units: NativeUnits | None, provenance: dict[str, Any],
                modality: str | None = None) -> DatasetBundle:
    """Split generated arrays by patient (stratified by label) and wrap them with counts and hashes."""
    group_ids = [f"{prefix}-patient-{p:04d}" for p in patient_idx]
    sample_ids = [f"{prefix}-{p:04d}-{k}" for p, k in zip(patient_idx, item_idx, strict=True)]
    assignment = grouped_stratified_split(labels, group_ids, seed, fractions)
    splits = build_splits(images, labels, sample_ids, group_ids, assignment)
    for name in ("train", "test"):
        if len(splits[name]) == 0:
            raise DataError(f"{plugin}: the {name} split is empty; raise n_patients or the {name} fraction")
    full = {
        **provenance,
        "content_sha256": content_sha256_with_ids(splits),
        "content_hash": CONTENT_HASH,
        "counts": class_counts(splits, class_names),
        "patients": group_counts(splits),
        "n_samples": sum(len(v) for v in splits.values()),
        "image_shape": list(images.shape[1:]),
        "split_method": (f"patient-grouped, label-stratified (harness.data.splits.grouped_stratified_split, "
                         f"seed {seed}, fractions {describe_fractions(fractions)})"),
    }
    return DatasetBundle(name=plugin, class_names=list(class_names), splits=splits, provenance=full,
                         native_units=native_units, positive_class=1, modality=modality)
