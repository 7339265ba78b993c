"""A seeded mammography lesion-ROI phantom (benign vs malignant masses), film-screen-like 8-bit grey levels.

Each patch is a digitised-film-like ROI: fatty background with fibroglandular tissue whose texture is a
power-law (1/f^β, β≈3) field thresholded at the patient's breast density, fine parenchymal texture, thin
linear structures (ducts, Cooper's ligaments), a centred mass, a small blur (screen unsharpness), film grain and
a film contrast curve, then 8-bit quantisation. Benign masses are round or oval with sharp, circumscribed margins,
sometimes with coarse round calcifications; malignant ones are irregular or spiculated with ill-defined margins,
sometimes with a cluster of fine pleomorphic microcalcifications. Dense breasts mask masses, and a fraction of
lesions (`class_overlap`) takes the other class's margin (obscured benign masses, circumscribed carcinomas), so a
small CNN learns the task well but not perfectly.

Native units: 8-bit grey levels (1.0 = 255 levels). Digitised film sets (mini-MIAS, DDSM) are 8-bit, and the
phantom is quantised to the same grid, so an epsilon reads as a fraction of one grey level (0.004 ≈ 1 level); film
optical density is not modelled, so no physical unit is claimed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from harness.registry.contracts import DatasetBundle, DatasetContext, NativeUnits
from harness.registry.hookspecs import hookimpl
from harness_plugins.datasets.common import fractions_from_list
from harness_plugins.datasets.phantoms.shapes import (
    REFERENCE_SIZE,
    blobs,
    check_range_pair,
    check_weights,
    curvilinear_line,
    harmonic_radius,
    make_bundle,
    patient_labels,
    patient_layout,
    power_law_noise,
    quantile_per_image,
    quantise,
    rotated_polar,
    sigmoid,
    smooth_noise,
    spicule_opacity,
)

GENERATOR_VERSION = 1
CLASS_NAMES = ["benign", "malignant"]
DENSITY_FRACTIONS = ((0.05, 0.2), (0.2, 0.45), (0.45, 0.7), (0.7, 0.9))  # BI-RADS a..d: fibroglandular share
GREY_LEVELS = 255


@dataclass
class MammogramParams:
    """Parameters of the generated mammography ROI phantom (all optional)."""

    seed: int = 0
    n_patients: int = field(default=400, metadata={"min": 20, "max": 100_000})
    lesions_per_patient: list[int] = field(default_factory=lambda: [1, 2], metadata={"min": 1, "max": 20})
    malignant_fraction: float = field(default=0.5, metadata={"min": 0.05, "max": 0.95})
    image_size: int = field(default=64, metadata={"min": 32, "max": 512})
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15], metadata={"min": 0})
    density_weights: list[float] = field(default_factory=lambda: [0.1, 0.4, 0.4, 0.1], metadata={"min": 0})
    texture_beta: float = field(default=3.0, metadata={"min": 1.5, "max": 4.0})  # parenchyma spectrum 1/f^β
    class_overlap: float = field(default=0.15, metadata={"min": 0.0, "max": 1.0})  # lesions with atypical margins
    calcification_fraction: float = field(default=0.35, metadata={"min": 0.0, "max": 1.0})
    noise_scale: float = field(default=1.0, metadata={"min": 0.0, "max": 5.0})  # multiplies the film grain

    def __post_init__(self) -> None:
        check_range_pair(self.lesions_per_patient, "dataset.lesions_per_patient")
        check_weights(self.density_weights, 4, "dataset.density_weights")
        fractions_from_list(self.split_fractions, "dataset.split_fractions")


@dataclass
class _Breast:
    """Patient-level traits shared by all lesions of one woman (one breast)."""

    density: int  # BI-RADS a..d as 0..3
    gland_share: float
    fat: float
    gland_contrast: float
    texture: float
    grain: float
    gamma: float
    line_rate: float


# ---------------------------------------------------------------------------------------------- generation


def generate(params: MammogramParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images (N×1×H×W float32 on 8-bit levels in [0,1]), labels, patient and lesion index; pure in params."""
    rng = np.random.default_rng(params.seed)
    size, k = params.image_size, params.image_size / REFERENCE_SIZE
    patient_idx, lesion_idx = patient_layout(rng, params.n_patients, params.lesions_per_patient)
    labels = patient_labels(rng, patient_idx, params.malignant_fraction)
    breasts = [_draw_breast(rng, params) for _ in range(params.n_patients)]
    images = _parenchyma(rng, breasts, patient_idx, size, params.texture_beta)
    grid = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(len(labels)):
        breast = breasts[patient_idx[i]]
        _draw_background_structures(rng, images[i], grid, breast, k)
        _draw_lesion(rng, images[i], grid, bool(labels[i]), breast, params, k)
    images = ndimage.gaussian_filter(images, sigma=(0, 0.55 * k, 0.55 * k))
    grain = np.array([breasts[p].grain for p in patient_idx])[:, None, None] * params.noise_scale
    images += grain * smooth_noise(rng, len(labels), size, 0.5 * k)
    gamma = np.array([breasts[p].gamma for p in patient_idx])[:, None, None]
    images = np.clip(images, 0.0, 1.0) ** gamma
    return quantise(images, GREY_LEVELS)[:, None], labels, patient_idx, lesion_idx


def _draw_breast(rng: np.random.Generator, params: MammogramParams) -> _Breast:
    """One woman's breast: BI-RADS density class and share, tissue levels, grain and film contrast."""
    weights = np.asarray(params.density_weights, dtype=float)
    density = int(rng.choice(4, p=weights / weights.sum()))
    return _Breast(density=density, gland_share=rng.uniform(*DENSITY_FRACTIONS[density]),
                   fat=rng.uniform(0.25, 0.38), gland_contrast=rng.uniform(0.07, 0.15),
                   texture=rng.uniform(0.02, 0.04), grain=rng.uniform(0.006, 0.016),
                   gamma=rng.uniform(0.85, 1.2), line_rate=rng.uniform(0.3, 1.5))


def _parenchyma(rng: np.random.Generator, breasts: list[_Breast], patient_idx: np.ndarray, size: int,
                beta: float) -> np.ndarray:
    """Fat plus fibroglandular tissue: a 1/f^β field thresholded at the breast's density, with fine texture."""
    n = len(patient_idx)
    trait = {name: np.array([getattr(breasts[p], name) for p in patient_idx]) for name in
             ("gland_share", "fat", "gland_contrast", "texture")}
    share = np.clip(trait["gland_share"] + rng.normal(0, 0.06, n), 0.02, 0.95)
    gland_field = power_law_noise(rng, n, size, beta)
    threshold = quantile_per_image(gland_field, 1.0 - share)
    gland = sigmoid((gland_field - threshold) / 0.7)
    fine = power_law_noise(rng, n, size, max(beta - 0.7, 1.0))
    column = {name: values[:, None, None] for name, values in trait.items()}
    return (column["fat"] + column["gland_contrast"] * gland
            + column["texture"] * fine * (0.4 + 0.6 * gland))


def _draw_background_structures(rng: np.random.Generator, image: np.ndarray, grid: np.ndarray, breast: _Breast,
                                k: float) -> None:
    """Ducts and Cooper's ligaments (thin bright lines) and, rarely, a benign vascular/skin calcification."""
    yy, xx = grid
    for _ in range(rng.poisson(breast.line_rate)):
        line = curvilinear_line(rng, yy, xx, rng.uniform(0.4, 1.0) * k, rng.uniform(10, 40) * k)
        image += rng.uniform(0.02, 0.05) * line
    if rng.random() < 0.12:
        centre = rng.uniform(4 * k, image.shape[0] - 4 * k, (1, 2))
        image += _coarse_calcs(rng, yy, xx, centre, k)


def _draw_lesion(rng: np.random.Generator, image: np.ndarray, grid: np.ndarray, malignant: bool, breast: _Breast,
                 params: MammogramParams, k: float) -> None:
    """A mass near the patch centre (additive density); its margin type flips with probability class_overlap."""
    size = image.shape[0]
    cy, cx = size / 2 - 0.5 + rng.uniform(-3, 3, 2) * k
    yy, xx = grid[0] - cy, grid[1] - cx
    atypical = rng.random() < params.class_overlap
    calcified = rng.random() < params.calcification_fraction
    masking = 1.0 - 0.06 * breast.density  # dense tissue lowers a mass's conspicuity
    if malignant:
        _malignant(rng, image, yy, xx, k, masking, circumscribed=atypical, calcified=calcified)
    else:
        _benign(rng, image, yy, xx, k, masking, obscured=atypical, calcified=calcified)


def _benign(rng: np.random.Generator, image: np.ndarray, yy: np.ndarray, xx: np.ndarray, k: float,
            masking: float, obscured: bool, calcified: bool) -> None:
    """Round or oval, sharp circumscribed margin; obscured ones have a soft, mildly lobulated edge."""
    radius = rng.uniform(3.0, 7.5) * k
    rho, theta = rotated_polar(rng, yy, xx, rng.uniform(0.6, 1.0))
    lobulation = (0.04, 0.1) if obscured else (0.0, 0.04)
    r = harmonic_radius(rng, theta, radius, (2, 4), lobulation, 2)
    edge = rng.uniform(0.9, 1.7) * k if obscured else rng.uniform(0.25, 0.5) * k
    mass = sigmoid((r - rho) / edge)
    if not obscured and rng.random() < 0.5:  # halo sign: a thin lucent (fatty) rim around the mass
        image -= rng.uniform(0.04, 0.1) * np.exp(-0.5 * ((rho - r - 1.2 * k) / (0.8 * k)) ** 2)
    image += masking * rng.uniform(0.15, 0.27) * mass
    if calcified:
        _benign_calcification(rng, image, yy, xx, radius, k)


def _benign_calcification(rng: np.random.Generator, image: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                          radius: float, k: float) -> None:
    """Coarse round (popcorn) calcifications in the mass, or an eggshell rim at its margin."""
    if rng.random() < 0.2:
        rim = np.exp(-0.5 * ((np.hypot(yy, xx) - radius) / (0.6 * k)) ** 2)
        arc = sigmoid(3.0 * np.cos(np.arctan2(yy, xx) - rng.uniform(0, 2 * np.pi)) + rng.uniform(-1, 2))
        image += rng.uniform(0.15, 0.35) * rim * arc
        return
    m = rng.integers(1, 5)
    offsets = rng.uniform(-0.6, 0.6, (m, 2)) * radius
    image += _coarse_calcs(rng, yy, xx, offsets, k)


def _coarse_calcs(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, centres: np.ndarray,
                  k: float) -> np.ndarray:
    """Large round sharp-edged calcifications (radius 0.9–2 px) at `centres` (M×2)."""
    out = np.zeros_like(yy)
    for cy, cx in centres:
        rho = np.hypot(yy - cy, xx - cx)
        out = np.maximum(out, rng.uniform(0.2, 0.45) * sigmoid((rng.uniform(0.9, 2.0) * k - rho) / (0.3 * k)))
    return out


def _malignant(rng: np.random.Generator, image: np.ndarray, yy: np.ndarray, xx: np.ndarray, k: float,
               masking: float, circumscribed: bool, calcified: bool) -> None:
    """Irregular, ill-defined, often spiculated; circumscribed carcinomas are round-ish with a soft edge."""
    radius = rng.uniform(6.0, 12.5) * k
    rho, theta = rotated_polar(rng, yy, xx, rng.uniform(0.55, 1.0))
    if circumscribed:
        r = harmonic_radius(rng, theta, radius, (2, 4), (0.02, 0.08), 2)
        edge = rng.uniform(0.5, 1.1) * k
    else:
        r = harmonic_radius(rng, theta, radius, (2, 7), (0.1, 0.22), int(rng.integers(2, 5)))
        r = r * harmonic_radius(rng, theta, 1.0, (8, 16), (0.02, 0.05), 3)  # fine margin roughness
        edge = rng.uniform(1.2, 2.5) * k
    contrast = masking * rng.uniform(0.17, 0.3)
    image += contrast * sigmoid((r - rho) / edge)
    if not circumscribed and rng.random() < 0.85:
        count = int(rng.integers(8, 21))
        image += contrast * spicule_opacity(rng, rho, theta, float(r.mean()), count, (0.6, 1.6),
                                                  rng.uniform(0.5, 0.9) * k)
    if calcified:
        _microcalcification_cluster(rng, image, yy, xx, radius, k)


def _microcalcification_cluster(rng: np.random.Generator, image: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                                radius: float, k: float) -> None:
    """5–16 fine pleomorphic specks (varied size, elongation, brightness) clustered within the mass."""
    m = int(rng.integers(5, 17))
    centre = rng.uniform(-0.4, 0.4, 2) * radius
    spread = rng.uniform(2.0, 4.5) * k
    centres = centre + rng.uniform(-1, 1, (m, 2)) * spread
    image += blobs(yy, xx, centres, rng.uniform(0.35, 0.7, m) * k, rng.uniform(0.35, 1.0, m),
                   rng.uniform(0, np.pi, m), rng.uniform(0.12, 0.35, m))


# ---------------------------------------------------------------------------------------------- plugin


class PhantomMammogram:
    """Dataset plugin 'phantom_mammogram': the generated mammography lesion-ROI phantom."""

    name = "phantom_mammogram"
    description = "Generated film-screen mammography lesion-ROI phantom (benign vs malignant), 8-bit, seeded; no PHI."
    identifiers = "synthetic"
    Params = MammogramParams

    def load(self, params: MammogramParams, context: DatasetContext) -> DatasetBundle:
        """Generate the phantom and split it by patient, stratified by label."""
        images, labels, patient_idx, lesion_idx = generate(params)
        fractions = fractions_from_list(params.split_fractions, "dataset.split_fractions")
        units = NativeUnits(float(GREY_LEVELS), "grey levels (8-bit)",
                            "digitised-film-like 8-bit grey levels: 1.0 = 255 levels, so 0.004 ≈ 1 level")
        return make_bundle(self.name, "phantom-mammo", CLASS_NAMES, images, labels, patient_idx, lesion_idx,
                           params.seed, fractions, units, self._provenance(params), modality="MG")

    @staticmethod
    def _provenance(params: MammogramParams) -> dict[str, Any]:
        return {
            "source": f"generated: phantom_mammogram v{GENERATOR_VERSION} (harness_plugins.datasets."
                      "phantom_mammogram; mammography ROI phantom, no patient data)",
            "generator_version": GENERATOR_VERSION,
            "seed": params.seed,
            "intensity": "film-screen-like display values quantised to 8-bit grey levels (k/255), dense = bright",
            "texture": f"fibroglandular 1/f^β field, β = {params.texture_beta:g}",
            "density_weights_birads_a_to_d": list(params.density_weights),
        }


@hookimpl
def harness_register_datasets() -> list[Any]:
    """Register the phantom_mammogram dataset."""
    return [PhantomMammogram()]
