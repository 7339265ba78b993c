"""A seeded brain-MRI phantom: axial T1 post-contrast-like slices with or without an enhancing tumour.

Each slice has scalp fat (bright), skull (dark), a CSF rim, cortex (grey matter) folded by sulci around white
matter, deep grey nuclei and lateral ventricles (CSF, dark) whose size depends on the slice level and the
patient, and normal enhancing structures: choroid plexus in the ventricles, the superior sagittal sinus and
cortical veins, sometimes a larger parenchymal vessel. A tumour slice adds a ring-enhancing (necrotic centre) or
solid enhancing lesion with surrounding vasogenic oedema (darker on T1) of varying size, strength and location.
Then a small blur, a smooth multiplicative bias field and Rician noise; each slice is scaled so the median of
its head pixels maps to 0.5 and clipped to [0,1] (MRI has no absolute intensity unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from harness.registry.contracts import DatasetBundle, DatasetContext
from harness.registry.hookspecs import hookimpl
from harness_plugins.datasets.common import fractions_from_list
from harness_plugins.datasets.phantoms.shapes import (
    REFERENCE_SIZE,
    check_range_pair,
    harmonic_radius,
    make_bundle,
    paint,
    patient_labels,
    patient_layout,
    sigmoid,
    smooth_noise,
)

GENERATOR_VERSION = 1
CLASS_NAMES = ["no_tumour", "tumour"]
TYPED_CLASS_NAMES = ["no_tumour", "glioma", "meningioma", "pituitary"]  # `classes: 4`
NORMALISATION = ("per slice: the median of the head (pixels above a quarter of the 99th percentile) → 0.5, "
                 "then clipped to [0,1]")


@dataclass
class BrainMRIParams:
    """Parameters of the generated brain-MRI phantom (all optional)."""

    seed: int = 0
    n_patients: int = field(default=400, metadata={"min": 20, "max": 100_000})
    slices_per_patient: list[int] = field(default_factory=lambda: [1, 2], metadata={"min": 1, "max": 20})
    tumour_fraction: float = field(default=0.5, metadata={"min": 0.05, "max": 0.95})
    image_size: int = field(default=64, metadata={"min": 32, "max": 512})
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15], metadata={"min": 0})
    lesion_radius: list[float] = field(default_factory=lambda: [2.0, 9.0], metadata={"gt": 0, "max": 20})
    enhancement: list[float] = field(default_factory=lambda: [0.15, 0.45], metadata={"min": 0, "max": 1})
    ring_fraction: float = field(default=0.6, metadata={"min": 0.0, "max": 1.0})  # ring-enhancing vs solid
    mimic_rate: float = field(default=1.0, metadata={"min": 0.0, "max": 10.0})  # bright veins per slice
    noise_scale: float = field(default=1.0, metadata={"min": 0.0, "max": 5.0})  # multiplies the Rician sigma
    bias_strength: float = field(default=0.2, metadata={"min": 0.0, "max": 0.6})
    classes: Literal[2, 4] = 2  # 4: the tumour's type (glioma, meningioma, pituitary) is the class

    def __post_init__(self) -> None:
        check_range_pair(self.slices_per_patient, "dataset.slices_per_patient")
        check_range_pair(self.lesion_radius, "dataset.lesion_radius")
        check_range_pair(self.enhancement, "dataset.enhancement")
        fractions_from_list(self.split_fractions, "dataset.split_fractions")


@dataclass
class _Head:
    """Patient-level anatomy, tissue contrast, coil and (if any) tumour traits shared by the patient's slices."""

    half_axes: tuple[float, float]  # (left-right, antero-posterior) in reference pixels
    tilt: float
    tissue: dict[str, float]
    ventricles: float
    noise: float
    bias: np.ndarray
    tumour_at: tuple[float, float]  # in normalised head coordinates
    tumour_ring: bool


@dataclass
class _Slice:
    """Coordinates of one slice in the head frame: pixel grids, normalised radius and angle, scale."""

    yy: np.ndarray
    xx: np.ndarray
    u: np.ndarray  # left-right, pixels
    v: np.ndarray  # antero-posterior, pixels (positive = posterior)
    outline: np.ndarray  # normalised elliptic radius with a slightly irregular head outline (1 = outer scalp)
    theta: np.ndarray
    axes: tuple[float, float]  # the head's half axes in pixels (left-right, antero-posterior)
    layers: np.ndarray  # normalised radii where skull, CSF rim and cortex begin (outside in)
    scale: float  # pixels per reference pixel times the slice's head scale
    level: float  # 0 = skull base … 1 = vertex

    @property
    def mean_axis(self) -> float:
        """Mean half axis in pixels (converts normalised radii to pixels)."""
        return 0.5 * (self.axes[0] + self.axes[1])

    @property
    def brain_edge(self) -> float:
        """Normalised radius of the brain surface."""
        return float(self.layers[-1])

    def point(self, radial: float, angle: float) -> tuple[float, float]:
        """Head-frame pixel coordinates (u, v) of normalised radius `radial` at `angle`."""
        return radial * self.axes[0] * np.cos(angle), radial * self.axes[1] * np.sin(angle)


# ---------------------------------------------------------------------------------------------- generation


def generate(params: BrainMRIParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images (N×1×H×W float32 in [0,1]), labels, patient and slice index; a pure function of params."""
    rng = np.random.default_rng(params.seed)
    size = params.image_size
    patient_idx, slice_idx = patient_layout(rng, params.n_patients, params.slices_per_patient)
    labels = patient_labels(rng, patient_idx, params.tumour_fraction)
    if params.classes == 4:  # one tumour type per patient (drawn only here: the two-class stream is unchanged)
        labels = labels * rng.integers(1, 4, params.n_patients)[patient_idx]
    heads = [_draw_head(rng, params) for _ in range(params.n_patients)]
    grid = np.mgrid[0:size, 0:size].astype(np.float64)
    images = np.empty((len(labels), size, size))
    for i in range(len(labels)):
        head = heads[patient_idx[i]]
        geometry = _slice_geometry(rng, head, grid, size)
        images[i] = _anatomy(rng, head, geometry, params)
        if labels[i] and params.classes == 4:
            TYPED[int(labels[i])](rng, images[i], head, geometry, params)
        elif labels[i]:
            _draw_tumour(rng, images[i], head, geometry, params)
        images[i] *= _bias_field(rng, head, geometry, params.bias_strength)
    images = ndimage.gaussian_filter(images, sigma=(0, 0.5 * size / REFERENCE_SIZE, 0.5 * size / REFERENCE_SIZE))
    sigma = np.array([heads[p].noise for p in patient_idx])[:, None, None] * params.noise_scale
    images = np.hypot(images + sigma * rng.standard_normal(images.shape), sigma * rng.standard_normal(images.shape))
    return _normalise(images)[:, None], labels, patient_idx, slice_idx


def _normalise(images: np.ndarray) -> np.ndarray:
    """Scale each slice so the median of its head pixels is 0.5 (robust to a lesion), clip to [0,1]; float32."""
    flat = images.reshape(len(images), -1)
    p99 = np.percentile(flat, 99, axis=1, keepdims=True)
    head = np.where(flat > 0.25 * p99, flat, np.nan)
    median = np.nanmedian(head, axis=1)[:, None, None]
    return np.clip(images * (0.5 / np.maximum(median, 1e-6)), 0.0, 1.0).astype(np.float32)


def _draw_head(rng: np.random.Generator, params: BrainMRIParams) -> _Head:
    """One patient: head shape, tissue contrast, ventricle size, coil bias and noise, tumour site and type."""
    gm = rng.uniform(0.4, 0.48)
    tissue = {"scalp": rng.uniform(0.72, 0.9), "skull": rng.uniform(0.03, 0.08), "csf": rng.uniform(0.08, 0.15),
              "gm": gm, "wm": gm + rng.uniform(0.1, 0.17), "vessel": rng.uniform(0.85, 1.05)}
    angle, radius = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0.01, 0.3))
    return _Head(half_axes=(rng.uniform(22.0, 24.5), rng.uniform(26.0, 29.0)), tilt=rng.uniform(-0.12, 0.12),
                 tissue=tissue, ventricles=rng.uniform(0.7, 1.4), noise=rng.uniform(0.015, 0.035),
                 bias=rng.normal(0, 1, 5), tumour_at=(radius * np.cos(angle), radius * np.sin(angle)),
                 tumour_ring=bool(rng.random() < params.ring_fraction))


def _slice_geometry(rng: np.random.Generator, head: _Head, grid: np.ndarray, size: int) -> _Slice:
    """Head-frame coordinates of one slice: level, head scale (smaller near vertex), tilt and position jitter."""
    level = rng.uniform(0.15, 0.85)
    scale = size / REFERENCE_SIZE * (1.0 - 0.25 * max(level - 0.5, 0.0) ** 1.5 - 0.05 * rng.random())
    cy, cx = size / 2 - 0.5 + rng.uniform(-1.5, 1.5, 2) * size / REFERENCE_SIZE
    phi = head.tilt + rng.uniform(-0.05, 0.05)
    yy, xx = grid
    u = (xx - cx) * np.cos(phi) + (yy - cy) * np.sin(phi)
    v = -(xx - cx) * np.sin(phi) + (yy - cy) * np.cos(phi)
    ax, ay = head.half_axes[0] * scale, head.half_axes[1] * scale
    theta = np.arctan2(v / ay, u / ax)
    outline = np.hypot(u / ax, v / ay) / harmonic_radius(rng, theta, 1.0, (2, 5), (0.0, 0.02), 2)
    thickness = np.array([rng.uniform(1.8, 2.6), rng.uniform(2.0, 3.0), rng.uniform(0.8, 1.5)]) * scale
    layers = 1.0 - np.cumsum(thickness) / (0.5 * (ax + ay))
    return _Slice(yy=yy, xx=xx, u=u, v=v, outline=outline, theta=theta, axes=(ax, ay), layers=layers,
                  scale=scale, level=level)


def _anatomy(rng: np.random.Generator, head: _Head, g: _Slice, params: BrainMRIParams) -> np.ndarray:
    """Scalp, skull, CSF, folded cortex, white matter, deep grey, ventricles and normal enhancing structures."""
    t, s, mean_axis = head.tissue, g.scale, g.mean_axis
    image = t["scalp"] * sigmoid((1.0 - g.outline) * mean_axis / 0.5)
    for boundary, value in zip(g.layers, (t["skull"], t["csf"], t["gm"]), strict=True):
        paint(image, sigmoid((boundary - g.outline) * mean_axis / 0.5), value)
    gyri = harmonic_radius(rng, g.theta, 1.0, (9, 16), (0.15, 0.35), 3)
    wm_edge = g.brain_edge - rng.uniform(2.5, 3.5) * s * gyri / mean_axis
    paint(image, sigmoid((wm_edge - g.outline) * mean_axis / 0.7), t["wm"])
    _sulci(rng, image, g, t["csf"])
    _deep_structures(rng, image, head, g)
    _enhancing_normals(rng, image, head, g, params.mimic_rate)
    return image


def _sulci(rng: np.random.Generator, image: np.ndarray, g: _Slice, csf: float) -> None:
    """Thin CSF clefts running inward from the brain surface, plus the interhemispheric fissure."""
    outline, brain_edge, mean_axis = g.outline, g.brain_edge, g.mean_axis
    count = int(rng.integers(10, 18))
    angle = rng.uniform(-np.pi, np.pi, count)[:, None, None]
    reach = rng.uniform(2.0, 5.0, count)[:, None, None] * g.scale
    sin_t, cos_t = np.sin(g.theta), np.cos(g.theta)
    sin_d = sin_t * np.cos(angle) - cos_t * np.sin(angle)  # sin(θ - angle) for all clefts at once
    facing = (cos_t * np.cos(angle) + sin_t * np.sin(angle)) > 0
    depth = (brain_edge - outline) * mean_axis
    clefts = sigmoid((0.5 * g.scale - np.abs(sin_d) * outline * mean_axis) / 0.3) * sigmoid((reach - depth) / 0.8)
    paint(image, 0.8 * (clefts * facing).max(axis=0) * (depth > -0.5), csf)
    fissure = sigmoid((0.5 * g.scale - np.abs(g.u)) / 0.3) * sigmoid((np.abs(g.v) - 0.45 * mean_axis) / 1.0)
    paint(image, 0.8 * fissure * (outline < brain_edge + 0.02), csf)


def _deep_structures(rng: np.random.Generator, image: np.ndarray, head: _Head, g: _Slice) -> None:
    """Deep grey nuclei (lower slices) and the lateral ventricles, largest at mid levels."""
    t, s = head.tissue, g.scale
    if g.level < 0.55:
        for side in (-1, 1):
            rho = np.hypot(g.u - side * rng.uniform(4.5, 6.0) * s, (g.v - rng.uniform(0, 3) * s) / 1.3)
            paint(image, 0.8 * sigmoid((rng.uniform(2.8, 3.8) * s - rho) / 0.8), t["gm"] + 0.03)
    visible = float(np.clip(1.0 - abs(g.level - 0.45) / 0.4, 0.0, 1.0))
    if visible <= 0.05:
        return
    size = head.ventricles * visible * rng.uniform(0.85, 1.15)
    for side in (-1, 1):
        offset, splay = rng.uniform(2.0, 3.2) * s, side * rng.uniform(0.1, 0.3)
        du, dv = g.u - side * offset, g.v - rng.uniform(-1.5, 0.5) * s
        pu = du * np.cos(splay) - dv * np.sin(splay)
        pv = du * np.sin(splay) + dv * np.cos(splay)
        width, length = rng.uniform(1.0, 2.0) * s * size, rng.uniform(6.0, 9.5) * s * min(size, 1.2)
        rho = np.hypot(pu / width, pv / length)
        paint(image, sigmoid((1.0 - rho) * 4.0), t["csf"])
        if rng.random() < 0.65:  # choroid plexus: enhancing tuft in the posterior body/atrium
            rho_cp = np.hypot(pu, pv - 0.6 * length)
            radius = rng.uniform(0.9, 1.8) * s
            paint(image, sigmoid((radius - rho_cp) / 0.4), t["vessel"] * rng.uniform(0.85, 1.05))


def _enhancing_normals(rng: np.random.Generator, image: np.ndarray, head: _Head, g: _Slice,
                       mimic_rate: float) -> None:
    """Superior sagittal sinus, cortical veins near the surface and, sometimes, a deeper vessel (mimics)."""
    t, s, brain_edge = head.tissue, g.scale, g.brain_edge
    if rng.random() < 0.7:
        rho = np.hypot(g.u, g.v - (brain_edge - 0.02) * g.axes[1])
        paint(image, sigmoid((rng.uniform(1.2, 2.0) * s - rho) / 0.4), t["vessel"])
    for _ in range(rng.poisson(mimic_rate)):
        angle, radial = rng.uniform(-np.pi, np.pi), brain_edge - rng.uniform(0.02, 0.12)
        _vessel_dot(rng, image, g, radial, angle, rng.uniform(0.5, 1.2) * s, t["vessel"])
    if rng.random() < 0.2:
        _vessel_dot(rng, image, g, rng.uniform(0.2, 0.6), rng.uniform(-np.pi, np.pi),
                    rng.uniform(1.0, 1.8) * s, t["vessel"])


def _vessel_dot(rng: np.random.Generator, image: np.ndarray, g: _Slice, radial: float, angle: float,
                radius: float, value: float) -> None:
    """A bright vessel cross-section (slightly elongated) at normalised position (radial, angle)."""
    cu, cv = g.point(radial, angle)
    stretch = rng.uniform(1.0, 2.0)
    rho = np.hypot((g.u - cu) / stretch, g.v - cv)
    paint(image, sigmoid((radius - rho) / 0.35), value * rng.uniform(0.85, 1.05))


def _draw_tumour(rng: np.random.Generator, image: np.ndarray, head: _Head, g: _Slice,
                 params: BrainMRIParams) -> None:
    """Oedema (darker on T1) around a ring-enhancing (necrotic centre) or solid enhancing lesion."""
    t, s = head.tissue, g.scale
    au, av = head.tumour_at
    cu, cv = g.point(float(np.hypot(au, av)) + rng.normal(0, 0.04), float(np.arctan2(av, au)))
    du, dv = g.u - cu, g.v - cv
    rho, theta = np.hypot(du, dv), np.arctan2(dv, du)
    radius = rng.uniform(*params.lesion_radius) * s
    brain = sigmoid((g.brain_edge - g.outline) * g.mean_axis / 0.7)
    oedema_r = harmonic_radius(rng, theta, radius * rng.uniform(1.5, 2.6) + 2.0 * s, (3, 7), (0.1, 0.25), 3)
    paint(image, rng.uniform(0.4, 1.0) * brain * sigmoid((oedema_r - rho) / (1.2 * s)),
          t["wm"] - rng.uniform(0.15, 0.28))
    bright = t["wm"] + rng.uniform(*params.enhancement)
    edge = harmonic_radius(rng, theta, radius, (2, 5), (0.03, 0.12), 3)
    if head.tumour_ring and radius > 2.5 * s:
        thickness = rng.uniform(1.0, 2.2) * s * harmonic_radius(rng, theta, 1.0, (2, 5), (0.1, 0.3), 2)
        necrosis = rng.uniform(0.2, 0.35)
        paint(image, brain * sigmoid((edge - thickness - rho) / 0.6), necrosis)
        paint(image, brain * np.exp(-0.5 * ((rho - edge + 0.5 * thickness) / (0.45 * thickness)) ** 2), bright)
    else:
        heterogeneity = 0.04 * smooth_noise(rng, 1, image.shape[0], 1.0 * s)[0]
        paint(image, brain * sigmoid((edge - rho) / (0.5 * s)), bright + heterogeneity)


def _draw_glioma(rng: np.random.Generator, image: np.ndarray, head: _Head, g: _Slice,
                 params: BrainMRIParams) -> None:
    """An intra-axial ring-enhancing lesion (necrotic centre) with oedema: the two-class tumour, always ringed."""
    _draw_tumour(rng, image, replace(head, tumour_ring=True), g, params)


def _draw_extra_axial(rng: np.random.Generator, image: np.ndarray, g: _Slice, radial: float, angle: float,
                      radius: float, value: float) -> None:
    """A solid, homogeneously enhancing lesion centred at (radial, angle), with a sharp smooth edge."""
    cu, cv = g.point(radial, angle)
    du, dv = g.u - cu, g.v - cv
    rho, theta = np.hypot(du, dv), np.arctan2(dv, du)
    edge = harmonic_radius(rng, theta, radius, (2, 4), (0.02, 0.06), 2)
    paint(image, sigmoid((edge - rho) / (0.4 * g.scale)), value)


def _draw_meningioma(rng: np.random.Generator, image: np.ndarray, head: _Head, g: _Slice,
                     params: BrainMRIParams) -> None:
    """An extra-axial, dural-based solid lesion at the brain surface: bright and homogeneous, little oedema."""
    au, av = head.tumour_at
    radius = rng.uniform(*params.lesion_radius) * g.scale
    radial = g.brain_edge - 0.7 * radius / g.mean_axis
    bright = head.tissue["wm"] + rng.uniform(*params.enhancement) + 0.05
    _draw_extra_axial(rng, image, g, radial, float(np.arctan2(av, au)) + rng.normal(0, 0.05), radius, bright)


def _draw_pituitary(rng: np.random.Generator, image: np.ndarray, head: _Head, g: _Slice,
                    params: BrainMRIParams) -> None:
    """A small solid midline lesion at the sella (anterior skull base): bright, no oedema."""
    low, high = params.lesion_radius
    radius = max(rng.uniform(low, 0.5 * (low + high)), 3.0) * g.scale
    bright = head.tissue["wm"] + rng.uniform(*params.enhancement) + 0.1
    _draw_extra_axial(rng, image, g, rng.uniform(0.4, 0.5), -np.pi / 2 + rng.normal(0, 0.04), radius, bright)


TYPED = {1: _draw_glioma, 2: _draw_meningioma, 3: _draw_pituitary}


def _bias_field(rng: np.random.Generator, head: _Head, g: _Slice, strength: float) -> np.ndarray:
    """Smooth multiplicative coil bias: exp of a low-order polynomial (patient pattern, slice jitter)."""
    half = max(head.half_axes) * g.scale
    x, y = g.xx / half - g.xx.mean() / half, g.yy / half - g.yy.mean() / half
    c = head.bias + rng.normal(0, 0.3, 5)
    field_ = c[0] * x + c[1] * y + c[2] * x * y + c[3] * (x ** 2 - y ** 2) + c[4] * (x ** 2 + y ** 2)
    return np.exp(strength * field_ / 2.0)


# ---------------------------------------------------------------------------------------------- plugin


class PhantomBrainMRI:
    """Dataset plugin 'phantom_brain_mri': the generated brain-MRI tumour phantom."""

    name = "phantom_brain_mri"
    description = "Generated axial T1 post-contrast-like brain-MRI phantom (no tumour vs enhancing tumour); no PHI."
    identifiers = "synthetic"
    Params = BrainMRIParams

    def load(self, params: BrainMRIParams, context: DatasetContext) -> DatasetBundle:
        """Generate the phantom and split it by patient, stratified by label."""
        images, labels, patient_idx, slice_idx = generate(params)
        fractions = fractions_from_list(params.split_fractions, "dataset.split_fractions")
        names = TYPED_CLASS_NAMES if params.classes == 4 else CLASS_NAMES
        return make_bundle(self.name, "phantom-mri", names, images, labels, patient_idx, slice_idx,
                           params.seed, fractions, None, self._provenance(params), modality="MRI")

    @staticmethod
    def _provenance(params: BrainMRIParams) -> dict[str, Any]:
        return {
            "source": f"generated: phantom_brain_mri v{GENERATOR_VERSION} (harness_plugins.datasets."
                      "phantom_brain_mri; T1 post-contrast-like brain-MRI phantom, no patient data)",
            "generator_version": GENERATOR_VERSION,
            "seed": params.seed,
            "intensity": ("no native unit: MRI signal intensity is relative (scanner, coil and sequence "
                          f"dependent), so epsilons are reported on [0,1] only; normalisation {NORMALISATION}"),
        }


@hookimpl
def harness_register_datasets() -> list[Any]:
    """Register the phantom_brain_mri dataset."""
    return [PhantomBrainMRI()]
