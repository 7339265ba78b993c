"""A seeded 3-D chest-CT lung-nodule phantom (benign vs malignant): C×D×H×W volumes in HU, then a lung window.

Each volume is built in Hounsfield units on an isotropic voxel grid: lung parenchyma at about −850 HU with
correlated 3-D texture, vessels as tapering 3-D tubes, a nodule near the centre, a small 3-D blur (scanner PSF)
and correlated noise. Benign nodules are small smooth spheroids, sometimes calcified; malignant ones are larger,
lobulated (overlapping lobes) or spiculated (thin tapering spikes leaving the surface). Every edge is a sigmoid
one or two voxels wide (partial volume). Sizes overlap on purpose, so the task is learnable but not trivial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from harness.errors import PlanError
from harness.registry.contracts import DatasetBundle, DatasetContext, NativeUnits
from harness.registry.hookspecs import hookimpl
from harness_plugins.datasets.common import fractions_from_list
from harness_plugins.datasets.phantoms.ct import window
from harness_plugins.datasets.phantoms.shapes import make_bundle, paint, patient_layout, sigmoid

GENERATOR_VERSION = 1
CLASS_NAMES = ["benign", "malignant"]
REFERENCE_MM = 32.0  # the volume is a 32 mm cube whatever its voxel count: voxel size = 32 mm / volume_size


@dataclass
class Phantom3DParams:
    """Parameters of the generated 3-D CT nodule phantom (all optional)."""

    seed: int = 0
    n_patients: int = field(default=150, metadata={"min": 20, "max": 100_000})
    nodules_per_patient: list[int] = field(default_factory=lambda: [1, 2], metadata={"min": 1, "max": 20})
    malignant_fraction: float = field(default=0.5, metadata={"min": 0.05, "max": 0.95})
    volume_size: int = field(default=32, metadata={"min": 16, "max": 128})
    window_center: float = field(default=-600.0, metadata={"min": -1500, "max": 1500})
    window_width: float = field(default=1500.0, metadata={"gt": 0, "max": 5000})
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15], metadata={"min": 0})

    def __post_init__(self) -> None:
        if len(self.nodules_per_patient) != 2 or self.nodules_per_patient[0] > self.nodules_per_patient[1]:
            raise PlanError(f"expected [min, max] with min ≤ max, got {self.nodules_per_patient}",
                            key="dataset.nodules_per_patient")
        fractions_from_list(self.split_fractions, "dataset.split_fractions")


def voxel_mm(params: Phantom3DParams) -> float:
    """The isotropic voxel size in mm."""
    return REFERENCE_MM / params.volume_size


def generate(params: Phantom3DParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Volumes (N×1×D×H×W float32 in [0,1]), labels, patient index and nodule index; a pure function of params."""
    rng = np.random.default_rng(params.seed)
    size, mm = params.volume_size, voxel_mm(params)
    patient_idx, nodule_idx = patient_layout(rng, params.n_patients, params.nodules_per_patient)
    n = len(patient_idx)
    labels = np.zeros(n, dtype=np.int64)
    labels[: int(round(n * params.malignant_fraction))] = 1
    labels = rng.permutation(labels)
    lung = rng.uniform(-880, -820, params.n_patients)[patient_idx]
    texture = rng.uniform(12, 35, params.n_patients)[patient_idx]
    noise = rng.uniform(15, 40, params.n_patients)[patient_idx]
    vessels = rng.uniform(0.8, 2.5, params.n_patients)[patient_idx]
    grid = (np.mgrid[0:size, 0:size, 0:size].astype(np.float64) + 0.5) * mm  # voxel centres in mm (z, y, x)
    hu = lung[:, None, None, None] + texture[:, None, None, None] * _unit_noise(rng, n, size, 1.5 / mm)
    for i in range(n):
        for _ in range(rng.poisson(vessels[i])):
            _vessel(rng, hu[i], grid)
        _nodule(rng, hu[i], grid, bool(labels[i]))
    hu = ndimage.gaussian_filter(hu, sigma=(0, *(0.5 / mm,) * 3))
    hu += noise[:, None, None, None] * _unit_noise(rng, n, size, 0.6 / mm)
    return window(hu, params.window_center, params.window_width)[:, None], labels, patient_idx, nodule_idx


def _unit_noise(rng: np.random.Generator, n: int, size: int, sigma: float) -> np.ndarray:
    """Smoothed 3-D white noise, unit standard deviation per volume."""
    field_ = ndimage.gaussian_filter(rng.standard_normal((n, size, size, size)), sigma=(0, sigma, sigma, sigma))
    return field_ / field_.std(axis=(1, 2, 3), keepdims=True)


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(3)
    return vector / np.linalg.norm(vector)


def _vessel(rng: np.random.Generator, hu: np.ndarray, grid: np.ndarray) -> None:
    """A straight tapering 3-D tube through a random point, with partial-volume dimming when thin."""
    extent = hu.shape[0] * (grid[0, 1, 0, 0] - grid[0, 0, 0, 0])
    point, axis = rng.uniform(0, extent, 3), _unit_vector(rng)
    offset = grid - point[:, None, None, None]
    along = np.tensordot(axis, offset, axes=1)
    across = np.sqrt(np.maximum((offset**2).sum(0) - along**2, 0.0))
    radius = rng.uniform(0.5, 1.8) * np.clip(1 - along / (2 * extent), 0.4, 1.5)
    peak = min(1.0, float(radius.mean()) / 1.0) * rng.uniform(0.7, 1.0)
    paint(hu, peak * sigmoid((radius - across) / 0.4), rng.uniform(-100, 40))


def _nodule(rng: np.random.Generator, hu: np.ndarray, grid: np.ndarray, malignant: bool) -> None:
    """One nodule near the centre: a smooth spheroid (benign) or a lobulated or spiculated one (malignant)."""
    extent = hu.shape[0] * (grid[0, 1, 0, 0] - grid[0, 0, 0, 0])
    centre = extent / 2 + rng.uniform(-2.0, 2.0, 3)
    offset = grid - centre[:, None, None, None]
    axes = rng.uniform(0.7, 1.0, 3) if not malignant else rng.uniform(0.65, 1.0, 3)
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    local = np.tensordot(rotation, offset, axes=1) / axes[:, None, None, None]
    rho = np.sqrt((local**2).sum(0))
    if not malignant:
        radius = rng.uniform(2.5, 5.5)
        solid = sigmoid((radius - rho) / rng.uniform(0.35, 0.7))
        paint(hu, solid, rng.uniform(0, 60))
        if rng.random() < 0.35:  # central calcification
            paint(hu, sigmoid((rng.uniform(0.25, 0.5) * radius - rho) / 0.4), rng.uniform(200, 1000))
        return
    radius = rng.uniform(4.0, 9.0)
    value = rng.uniform(10, 70)
    solid = sigmoid((radius - rho) / rng.uniform(0.4, 0.8))
    if rng.random() < 0.5:  # lobulated: overlapping lobes on the surface
        for _ in range(rng.integers(3, 7)):
            lobe = _unit_vector(rng) * radius * rng.uniform(0.5, 0.9)
            distance = np.sqrt(((local - lobe[:, None, None, None]) ** 2).sum(0))
            solid = np.maximum(solid, sigmoid((radius * rng.uniform(0.4, 0.65) - distance) / 0.5))
    paint(hu, solid, value)
    if rng.random() < 0.6:  # spiculated: thin tapering spikes leaving the surface
        paint(hu, _spicules(rng, offset, radius), value)


def _spicules(rng: np.random.Generator, offset: np.ndarray, radius: float) -> np.ndarray:
    """Opacity of thin tapering spikes radiating from the nodule surface."""
    alpha = np.zeros(offset.shape[1:])
    rho = np.sqrt((offset**2).sum(0))
    for _ in range(rng.integers(5, 12)):
        direction = _unit_vector(rng)
        along = np.tensordot(direction, offset, axes=1)
        across = np.sqrt(np.maximum(rho**2 - along**2, 0.0))
        length = rng.uniform(0.6, 1.4) * radius
        taper = np.clip(1 - (along - 0.9 * radius) / length, 0, 1) * (along > 0.5 * radius)
        spike = sigmoid((rng.uniform(0.5, 0.9) * taper - across) / 0.35) * taper**0.5
        alpha = np.maximum(alpha, spike * rng.uniform(0.6, 0.95))
    return alpha


class Phantom3DCT:
    """Dataset plugin 'phantom_ct_3d': the generated 3-D CT lung-nodule phantom."""

    name = "phantom_ct_3d"
    description = ("Generated 3-D chest-CT lung-nodule phantom (benign vs malignant), C×D×H×W volumes, lung "
                   "window, seeded; no PHI.")
    identifiers = "synthetic"
    Params = Phantom3DParams

    def load(self, params: Phantom3DParams, context: DatasetContext) -> DatasetBundle:
        """Generate the volumes and split them by patient, stratified by label."""
        images, labels, patient_idx, nodule_idx = generate(params)
        fractions = fractions_from_list(params.split_fractions, "dataset.split_fractions")
        mm = voxel_mm(params)
        provenance = {
            "source": "harness_plugins.datasets.phantoms.ct3d (generated 3-D CT lung-nodule phantom, no patient "
                      "data)",
            "generator_version": GENERATOR_VERSION, "seed": params.seed,
            "window": {"center_hu": params.window_center, "width_hu": params.window_width},
            "voxel_spacing_mm": [mm, mm, mm],
        }
        bundle = make_bundle(self.name, "phantom3d", CLASS_NAMES, images, labels, patient_idx, nodule_idx,
                             params.seed, fractions,
                             NativeUnits(float(params.window_width), "HU",
                                         f"lung window W{params.window_width:g} L{params.window_center:g}",
                                         offset=float(params.window_center - params.window_width / 2)),
                             provenance, modality="CT")
        bundle.pixel_spacing_mm = mm
        bundle.voxel_spacing_mm = (mm, mm, mm)
        return bundle


@hookimpl
def harness_register_datasets() -> list[Any]:
    """Register the phantom_ct_3d dataset."""
    return [Phantom3DCT()]
