"""The embedded default data set: a seeded chest-CT lung-nodule phantom (benign vs malignant), in HU then windowed.

Each patch is built in Hounsfield units: lung parenchyma with correlated texture, vessels (in-plane lines and
cross-section dots), sometimes chest wall at one edge, a centred nodule, a small blur (scanner PSF) and
correlated quantum-like noise; then a lung window maps it to [0,1]. Benign nodules are small, smooth and round
or ovoid, sometimes calcified; malignant ones are larger, lobulated or spiculated or ill-defined, sometimes
part-solid. Sizes and margins overlap on purpose, so the task is learnable but not trivial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from harness.data.splits import grouped_stratified_split
from harness.errors import DataError, PlanError
from harness.registry.contracts import DatasetBundle, DatasetContext, NativeUnits
from harness.registry.hookspecs import hookimpl
from harness_plugins.datasets.common import (
    build_splits,
    class_counts,
    content_sha256,
    describe_fractions,
    fractions_from_list,
    group_counts,
)

GENERATOR_VERSION = 1
CLASS_NAMES = ["benign", "malignant"]
REFERENCE_SIZE = 64  # all pixel sizes below are given for a 64-pixel patch and scale with image_size
# Nominal in-plane pixel size at REFERENCE_SIZE: the phantom has no physical scale of its own; 0.7 mm is a typical
# chest-CT pixel (a 45 mm patch), so a nodule of 8 pixels reads as about 6 mm.
NOMINAL_PIXEL_SPACING_MM = 0.7


@dataclass
class PhantomParams:
    """Parameters of the generated CT nodule phantom (all optional)."""

    seed: int = 0
    n_patients: int = field(default=400, metadata={"min": 20, "max": 100_000})
    nodules_per_patient: list[int] = field(default_factory=lambda: [1, 3], metadata={"min": 1, "max": 50})
    malignant_fraction: float = field(default=0.5, metadata={"min": 0.05, "max": 0.95})
    image_size: int = field(default=64, metadata={"min": 32, "max": 512})
    window_center: float = field(default=-600.0, metadata={"min": -1500, "max": 1500})
    window_width: float = field(default=1500.0, metadata={"gt": 0, "max": 5000})
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15], metadata={"min": 0})

    def __post_init__(self) -> None:
        if len(self.nodules_per_patient) != 2 or self.nodules_per_patient[0] > self.nodules_per_patient[1]:
            raise PlanError(f"expected [min, max] with min ≤ max, got {self.nodules_per_patient}",
                            key="dataset.nodules_per_patient")
        fractions_from_list(self.split_fractions, "dataset.split_fractions")


@dataclass
class _Patient:
    """Label-independent traits shared by all nodules of one patient."""

    lung_hu: float
    texture_hu: float
    coarse_weight: float
    noise_hu: float
    scale: float
    vessel_rate: float


# ---------------------------------------------------------------------------------------------- generation


def generate(params: PhantomParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images (N×1×H×W float32 in [0,1]), labels, patient index and nodule index; a pure function of params."""
    rng = np.random.default_rng(params.seed)
    size = params.image_size
    lo, hi = params.nodules_per_patient
    per_patient = rng.integers(lo, hi + 1, size=params.n_patients)
    patient_idx = np.repeat(np.arange(params.n_patients), per_patient)
    nodule_idx = np.concatenate([np.arange(k) for k in per_patient])
    n = len(patient_idx)
    labels = np.zeros(n, dtype=np.int64)
    labels[: int(round(n * params.malignant_fraction))] = 1
    labels = rng.permutation(labels)
    patients = [_draw_patient(rng) for _ in range(params.n_patients)]
    hu = _background(rng, patients, patient_idx, size)
    grid = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(n):
        patient = patients[patient_idx[i]]
        s = size / REFERENCE_SIZE * patient.scale
        _draw_anatomy(rng, hu[i], grid, patient, s)
        _draw_nodule(rng, hu[i], grid, bool(labels[i]), s)
    hu = ndimage.gaussian_filter(hu, sigma=(0, 0.5 * size / REFERENCE_SIZE, 0.5 * size / REFERENCE_SIZE))
    hu += _noise(rng, patients, patient_idx, size)
    images = window(hu, params.window_center, params.window_width)
    return images[:, None], labels, patient_idx, nodule_idx


def window(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map HU to [0,1] with a window (center, width), clipping outside; float32."""
    return np.clip((hu - (center - width / 2.0)) / width, 0.0, 1.0).astype(np.float32)


def _draw_patient(rng: np.random.Generator) -> _Patient:
    return _Patient(lung_hu=rng.uniform(-880, -820), texture_hu=rng.uniform(12, 35),
                    coarse_weight=rng.uniform(0.2, 0.8), noise_hu=rng.uniform(15, 40),
                    scale=rng.uniform(0.85, 1.15), vessel_rate=rng.uniform(0.5, 2.5))


def _unit_noise(rng: np.random.Generator, n: int, size: int, sigma: float) -> np.ndarray:
    """Smoothed white noise, rescaled to unit standard deviation per image."""
    field_ = ndimage.gaussian_filter(rng.standard_normal((n, size, size)), sigma=(0, sigma, sigma))
    return field_ / field_.std(axis=(1, 2), keepdims=True)


def _background(rng: np.random.Generator, patients: list[_Patient], patient_idx: np.ndarray,
                size: int) -> np.ndarray:
    """Lung parenchyma in HU: patient mean plus a mix of fine and coarse correlated texture."""
    n, k = len(patient_idx), size / REFERENCE_SIZE
    fine, coarse = _unit_noise(rng, n, size, 1.2 * k), _unit_noise(rng, n, size, 3.5 * k)
    w = np.array([patients[p].coarse_weight for p in patient_idx])[:, None, None]
    amp = np.array([patients[p].texture_hu for p in patient_idx])[:, None, None]
    mean = np.array([patients[p].lung_hu for p in patient_idx])[:, None, None]
    return mean + amp * (np.sqrt(w) * coarse + np.sqrt(1 - w) * fine)


def _noise(rng: np.random.Generator, patients: list[_Patient], patient_idx: np.ndarray, size: int) -> np.ndarray:
    """Quantum-like noise: slightly correlated Gaussian noise with the patient's sigma in HU."""
    sigma = np.array([patients[p].noise_hu for p in patient_idx])[:, None, None]
    return sigma * _unit_noise(rng, len(patient_idx), size, 0.6 * size / REFERENCE_SIZE)


def _paint(hu: np.ndarray, alpha: np.ndarray, value: float | np.ndarray) -> None:
    """Composite `value` over `hu` in place with opacity `alpha` in [0,1]."""
    hu += alpha * (value - hu)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _draw_anatomy(rng: np.random.Generator, hu: np.ndarray, grid: np.ndarray, patient: _Patient,
                  s: float) -> None:
    """Chest wall at one edge (sometimes), in-plane vessels and vessel cross-sections."""
    size = hu.shape[0]
    yy, xx = grid
    if rng.random() < 0.2:
        side = rng.integers(4)
        depth, bend = rng.uniform(3, 13) * s, rng.uniform(-0.01, 0.01) / s
        along, across = (xx, yy) if side % 2 == 0 else (yy, xx)
        across = across if side < 2 else size - 1 - across
        boundary = depth + bend * (along - size / 2) ** 2
        tissue = rng.uniform(20, 60) + 25 * _unit_noise(rng, 1, size, 2.0 * s)[0]
        _paint(hu, _sigmoid((boundary - across) / 0.8), tissue)
    for _ in range(rng.poisson(patient.vessel_rate)):
        _paint_vessel(rng, hu, yy, xx, s)
    for _ in range(rng.poisson(1.2)):
        y0, x0 = rng.uniform(0, size, 2)
        radius = rng.uniform(0.7, 2.0) * s
        rho = np.hypot(yy - y0, xx - x0)
        _paint(hu, _sigmoid((radius - rho) / 0.5), rng.uniform(-100, 40))


def _paint_vessel(rng: np.random.Generator, hu: np.ndarray, yy: np.ndarray, xx: np.ndarray, s: float) -> None:
    """An in-plane vessel: a gently curved segment that tapers, with partial-volume dimming when thin."""
    size = hu.shape[0]
    theta, c = rng.uniform(0, np.pi), rng.uniform(-0.008, 0.008) / s
    y0, x0 = rng.uniform(0, size, 2)
    t = (xx - x0) * np.cos(theta) + (yy - y0) * np.sin(theta)
    d = -(xx - x0) * np.sin(theta) + (yy - y0) * np.cos(theta) - c * t**2
    half = rng.uniform(8, 40) * s
    width = rng.uniform(0.45, 1.5) * s * np.clip(1 - 0.5 * t / half, 0.3, 1.5)
    extent = _sigmoid((half - np.abs(t)) / 2.0)
    peak = min(1.0, width.mean() / (1.1 * s)) * rng.uniform(0.7, 1.0)
    _paint(hu, peak * extent * np.exp(-0.5 * (d / width) ** 2), rng.uniform(-100, 40))


def _draw_nodule(rng: np.random.Generator, hu: np.ndarray, grid: np.ndarray, malignant: bool,
                 s: float) -> None:
    """One nodule near the patch centre, painted over the anatomy."""
    size = hu.shape[0]
    cy, cx = size / 2 - 0.5 + rng.uniform(-2.5, 2.5, 2) * s
    yy, xx = grid[0] - cy, grid[1] - cx
    if malignant:
        _malignant(rng, hu, yy, xx, s)
    else:
        _benign(rng, hu, yy, xx, s)


def _polar(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, aspect: float) -> tuple[np.ndarray, ...]:
    """Radius (ellipse-normalised, major axis kept) and angle around the nodule centre, randomly rotated."""
    phi = rng.uniform(0, np.pi)
    u = xx * np.cos(phi) + yy * np.sin(phi)
    v = -xx * np.sin(phi) + yy * np.cos(phi)
    return np.hypot(u, v / aspect), np.arctan2(v, u), np.hypot(xx, yy), np.arctan2(yy, xx)


def _lobulated_radius(rng: np.random.Generator, theta: np.ndarray, radius: float, harmonics: range,
                      amp: tuple[float, float], n_terms: int) -> np.ndarray:
    """Boundary radius r(θ) = R·(1 + Σ a_k cos(kθ + φ_k)) over a few random harmonics."""
    r = np.ones_like(theta)
    for k in rng.choice(list(harmonics), size=min(n_terms, len(harmonics)), replace=False):
        r += rng.uniform(*amp) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return radius * r


def _benign(rng: np.random.Generator, hu: np.ndarray, yy: np.ndarray, xx: np.ndarray, s: float) -> None:
    """Small, smooth, round or ovoid; soft tissue, sometimes calcified, rarely ground-glass."""
    radius = rng.uniform(2.5, 6.0) * s
    rho, theta, rho0, _ = _polar(rng, yy, xx, rng.uniform(0.7, 1.0))
    mild = rng.random() < 0.2
    r = _lobulated_radius(rng, theta, radius, range(2, 5), (0.04, 0.12) if mild else (0.0, 0.05), 2)
    solid = _sigmoid((r - rho) / (rng.uniform(0.35, 0.8) * s))
    if rng.random() < 0.08:  # inflammatory ground-glass opacity
        _paint(hu, solid, rng.uniform(-600, -400))
        return
    _paint(hu, solid, rng.uniform(0, 60))
    if rng.random() < 0.35:
        _calcify(rng, hu, yy, xx, rho0, radius, solid, s)


def _calcify(rng: np.random.Generator, hu: np.ndarray, yy: np.ndarray, xx: np.ndarray, rho0: np.ndarray,
             radius: float, solid: np.ndarray, s: float) -> None:
    """Benign calcification pattern: central, laminated, popcorn or diffuse (+200..+1000 HU)."""
    value = rng.uniform(200, 1000)
    kind = rng.choice(["central", "laminated", "popcorn", "diffuse"], p=[0.35, 0.2, 0.25, 0.2])
    if kind == "central":
        alpha = _sigmoid((rng.uniform(0.25, 0.5) * radius - rho0) / 0.4)
    elif kind == "laminated":
        ring = np.exp(-0.5 * ((rho0 - rng.uniform(0.45, 0.75) * radius) / (0.45 * s)) ** 2)
        alpha = np.maximum(ring, _sigmoid((0.2 * radius - rho0) / 0.4))
    elif kind == "popcorn":
        alpha = np.zeros_like(rho0)
        for _ in range(rng.integers(3, 7)):
            oy, ox = rng.uniform(-0.55, 0.55, 2) * radius
            blob = _sigmoid((rng.uniform(0.5, 1.1) * s - np.hypot(yy - oy, xx - ox)) / 0.35)
            alpha = np.maximum(alpha, blob)
    else:
        alpha = np.full_like(rho0, rng.uniform(0.5, 0.9))
        value = rng.uniform(200, 500)
    _paint(hu, alpha * solid, value)


def _malignant(rng: np.random.Generator, hu: np.ndarray, yy: np.ndarray, xx: np.ndarray, s: float) -> None:
    """Larger; lobulated, spiculated or ill-defined; sometimes part-solid with a ground-glass halo."""
    radius = rng.uniform(4.5, 11.0) * s
    rho, theta, rho0, theta0 = _polar(rng, yy, xx, rng.uniform(0.65, 1.0))
    kind = rng.choice(["lobulated", "spiculated", "ill_defined"], p=[0.4, 0.35, 0.25])
    if kind == "lobulated":
        r = _lobulated_radius(rng, theta, radius, range(2, 6), (0.05, 0.15), rng.integers(2, 4))
    else:
        r = _lobulated_radius(rng, theta, radius, range(2, 6), (0.02, 0.09), 2)
    edge = rng.uniform(1.0, 1.8) * s if kind == "ill_defined" else rng.uniform(0.4, 0.8) * s
    if rng.random() < 0.3:  # part-solid: ground-glass halo around a smaller solid core
        halo = r * rng.uniform(1.3, 1.8)
        _paint(hu, _sigmoid((halo - rho) / (1.2 * s)), rng.uniform(-560, -400))
        r = r * rng.uniform(0.5, 0.8)
    solid = _sigmoid((r - rho) / edge)
    value = rng.uniform(10, 70)
    _paint(hu, solid, value)
    if kind == "spiculated":
        _paint(hu, _spicules(rng, rho0, theta0, float(r.mean()), s), value)
    if rng.random() < 0.05:  # eccentric stippled calcification, uncommon
        oy, ox = rng.uniform(-0.5, 0.5, 2) * radius
        fleck = _sigmoid((0.7 * s - np.hypot(yy - oy, xx - ox)) / 0.35)
        _paint(hu, fleck * solid, rng.uniform(200, 600))


def _spicules(rng: np.random.Generator, rho: np.ndarray, theta: np.ndarray, radius: float,
              s: float) -> np.ndarray:
    """Opacity of thin tapering spikes radiating from the nodule margin."""
    alpha = np.zeros_like(rho)
    for angle in rng.uniform(0, 2 * np.pi, rng.integers(5, 15)):
        length = rng.uniform(0.5, 1.6) * radius
        base = rng.uniform(0.5, 1.1) * s
        along = rho * np.cos(theta - angle)
        across = np.abs(rho * np.sin(theta - angle))
        taper = np.clip(1 - (along - 0.9 * radius) / length, 0, 1) * (along > 0.5 * radius)
        spike = _sigmoid((base * taper - across) / 0.35) * taper ** 0.5
        alpha = np.maximum(alpha, spike * rng.uniform(0.6, 0.95))
    return alpha


# ---------------------------------------------------------------------------------------------- plugin


class PhantomCT:
    """Dataset plugin 'phantom_ct': the generated CT lung-nodule phantom."""

    name = "phantom_ct"
    description = "Generated chest-CT lung-nodule phantom (benign vs malignant), lung window, seeded; no PHI."
    identifiers = "synthetic"
    Params = PhantomParams

    def load(self, params: PhantomParams, context: DatasetContext) -> DatasetBundle:
        """Generate the phantom and split it by patient, stratified by label."""
        images, labels, patient_idx, nodule_idx = generate(params)
        group_ids = [f"phantom-patient-{p:04d}" for p in patient_idx]
        sample_ids = [f"phantom-{p:04d}-{k}" for p, k in zip(patient_idx, nodule_idx, strict=True)]
        fractions = fractions_from_list(params.split_fractions, "dataset.split_fractions")
        assignment = grouped_stratified_split(labels, group_ids, params.seed, fractions)
        splits = build_splits(images, labels, sample_ids, group_ids, assignment)
        for name in ("train", "test"):
            if len(splits[name]) == 0:
                raise DataError(f"phantom_ct: the {name} split is empty; raise n_patients "
                                f"(now {params.n_patients}) or the {name} fraction")
        return DatasetBundle(
            name=self.name, class_names=list(CLASS_NAMES), splits=splits, positive_class=1,
            provenance=self._provenance(params, splits, fractions),
            native_units=NativeUnits(float(params.window_width), "HU",
                                     f"lung window W{params.window_width:g} L{params.window_center:g}",
                                     offset=float(params.window_center - params.window_width / 2)),
            modality="CT", pixel_spacing_mm=NOMINAL_PIXEL_SPACING_MM * REFERENCE_SIZE / params.image_size)

    def _provenance(self, params: PhantomParams, splits: dict, fractions: dict[str, float]) -> dict[str, Any]:
        return {
            "source": "harness_plugins.datasets.phantoms.ct (generated CT lung-nodule phantom, no patient data)",
            "generator_version": GENERATOR_VERSION,
            "seed": params.seed,
            "content_sha256": content_sha256(splits),
            "counts": class_counts(splits, CLASS_NAMES),
            "patients": group_counts(splits),
            "n_samples": sum(len(v) for v in splits.values()),
            "image_shape": [1, params.image_size, params.image_size],
            "window": {"center_hu": params.window_center, "width_hu": params.window_width},
            "pixel_spacing": f"nominal {NOMINAL_PIXEL_SPACING_MM:g} mm at {REFERENCE_SIZE} pixels (no physical scale)",
            "split_method": (f"patient-grouped, label-stratified (harness.data.splits.grouped_stratified_split, "
                             f"seed {params.seed}, fractions {describe_fractions(fractions)})"),
        }


@hookimpl
def harness_register_datasets() -> list[Any]:
    """Register the phantom_ct dataset."""
    return [PhantomCT()]
