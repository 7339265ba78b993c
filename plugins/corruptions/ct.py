"""CT corruptions in Hounsfield units: noise (white, NPS-shaped, Poisson), kernel blur, window shift, rings.

Each HU parameter is converted with the data set's NativeUnits (e.g. 1.0 = 1500 HU for a lung window), so the
data set must declare its intensities in "HU". Noise realisations depend only on (seed, name, image index), so
all severities of one image share the same noise pattern, scaled (common random numbers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.errors import DataError
from harness.registry.contracts import CorruptionContext
from harness.registry.hookspecs import hookimpl
from harness_plugins.corruptions.base import Corruption, severity_scale
from harness_plugins.corruptions.ops import gaussian_blur, gaussian_blur_axis, standard_normal

HU = "HU"
NOISE_SIGMA_HU = (12.0, 25.0, 43.0, 60.0, 90.0)  # with 25 HU of noise already: ≈ 81, 50, 25, 15, 7 % of the dose
BLUR_FWHM_MM = (0.5, 1.0, 1.5, 2.5, 4.0)
LEVEL_SHIFT_HU = (20.0, 50.0, 100.0, 200.0, 300.0)
RING_HU = (10.0, 20.0, 40.0, 70.0, 120.0)
# Peak of the noise power spectrum f·exp(-f²/2p²) in cycles per pixel for three reconstruction-kernel families.
NPS_PEAK_CYCLES_PER_PX = {"soft": 0.14, "standard": 0.25, "sharp": 0.42}
WATER_MU_PER_HU = 1e-3  # μ/μ_water = 1 + HU/1000


@dataclass
class NoiseParams:
    """White Gaussian noise added in HU: sigma_hu is its standard deviation."""

    sigma_hu: float = field(default=NOISE_SIGMA_HU[2], metadata={"gt": 0, "max": 2000})


@dataclass
class NPSNoiseParams:
    """Noise with an FBP-like power spectrum f·exp(-f²/2p²) (p set by the kernel family), σ in HU."""

    sigma_hu: float = field(default=NOISE_SIGMA_HU[2], metadata={"gt": 0, "max": 2000})
    kernel: Literal["soft", "standard", "sharp"] = "standard"


@dataclass
class QuantumNoiseParams:
    """Poisson counts proportional to the attenuation μ/μ_water; sigma_hu is the noise σ at water (0 HU)."""

    sigma_hu: float = field(default=NOISE_SIGMA_HU[2], metadata={"gt": 0, "max": 2000})


@dataclass
class BlurParams:
    """Extra Gaussian blur (smoother reconstruction kernel, thicker slice), FWHM in mm."""

    fwhm_mm: float = field(default=BLUR_FWHM_MM[2], metadata={"gt": 0, "max": 50})


@dataclass
class WindowShiftParams:
    """The window's level moved by level_shift_hu (and its width changed by width_change_hu)."""

    level_shift_hu: float = field(default=LEVEL_SHIFT_HU[2], metadata={"min": -3000, "max": 3000})
    width_change_hu: float = field(default=0.0, metadata={"min": -3000, "max": 3000})


@dataclass
class RingParams:
    """Detector-miscalibration rings: n_rings concentric thin rings of up to amplitude_hu, centred off-patch."""

    amplitude_hu: float = field(default=RING_HU[2], metadata={"gt": 0, "max": 2000})
    n_rings: int = field(default=8, metadata={"min": 1, "max": 64})
    width_px: float = field(default=0.7, metadata={"gt": 0, "max": 10})


@functools.lru_cache(maxsize=32)
def nps_filter(height: int, width: int, peak: float) -> np.ndarray:
    """Amplitude filter sqrt(NPS) for f·exp(-f²/2p²), scaled so filtered unit white noise has unit variance."""
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    f = np.hypot(fy, fx)
    amplitude = np.sqrt(f * np.exp(-(f**2) / (2 * peak**2)))
    return amplitude / np.sqrt(np.mean(amplitude**2))


class CTNoise(Corruption):
    """Plugin 'ct_noise': white Gaussian noise in HU (a lower tube current, to first order)."""

    name = "ct_noise"
    description = "White Gaussian noise, σ 12-90 HU (≈ 81-7 % of the dose at 25 HU baseline noise)."
    modality, requires_unit = "CT", HU
    parameter, unit = "sigma_hu", "HU (σ)"
    severities = severity_scale(NOISE_SIGMA_HU)
    Params = NoiseParams
    spatial_ranks = (2, 3)  # volumes too

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: NoiseParams,
                context: CorruptionContext) -> np.ndarray:
        """x + σ/W·n, n of unit variance."""
        sigma = params.sigma_hu / self.native_per_unit(context)
        return images + sigma * self.unit_noise(standard_normal(rngs, images.shape[1:]), params)

    def unit_noise(self, white: np.ndarray, params: Any) -> np.ndarray:
        """The noise texture from unit white noise: white itself."""
        return white


class CTNPSNoise(CTNoise):
    """Plugin 'ct_nps_noise': correlated noise with a filtered-back-projection-like noise power spectrum."""

    name = "ct_nps_noise"
    description = "Correlated CT noise, ramp×Gaussian NPS of a soft/standard/sharp kernel, σ 12-90 HU."
    Params = NPSNoiseParams

    def unit_noise(self, white: np.ndarray, params: NPSNoiseParams) -> np.ndarray:
        """White noise shaped in the Fourier domain; unit variance in expectation."""
        amplitude = nps_filter(*white.shape[-2:], NPS_PEAK_CYCLES_PER_PX[params.kernel])
        return np.fft.ifft2(np.fft.fft2(white, norm="ortho") * amplitude, norm="ortho").real


class CTQuantumNoise(Corruption):
    """Plugin 'ct_quantum_noise': Poisson (shot) noise on counts proportional to the attenuation."""

    name = "ct_quantum_noise"
    description = "Poisson noise on counts ∝ μ/μ_water (denser tissue noisier), σ 12-90 HU at water."
    modality, requires_unit = "CT", HU
    parameter, unit = "sigma_hu", "HU (σ at water)"
    severities = severity_scale(NOISE_SIGMA_HU)
    Params = QuantumNoiseParams
    spatial_ranks = (2, 3)  # volumes too

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: QuantumNoiseParams,
                context: CorruptionContext) -> np.ndarray:
        """HU → μ/μ_water → Poisson(N·μ/μ_water)/N → HU, with N = (1000/σ)²."""
        if context.native_offset is None:
            raise DataError(f"corruption '{self.name}' needs absolute HU (the HU value of intensity 0, e.g. the "
                            f"window's lower edge); the data set does not give it")
        per_unit = self.native_per_unit(context)
        counts_at_water = (1.0 / (WATER_MU_PER_HU * params.sigma_hu)) ** 2
        attenuation = np.maximum(1.0 + WATER_MU_PER_HU * (images * per_unit + context.native_offset), 0.0)
        counts = np.stack([rng.poisson(counts_at_water * a) for rng, a in zip(rngs, attenuation, strict=True)])
        hu = (counts / counts_at_water - 1.0) / WATER_MU_PER_HU
        return (hu - context.native_offset) / per_unit


class CTBlur(Corruption):
    """Plugin 'ct_blur': a smoother reconstruction kernel or thicker slice, as extra in-plane blur in mm."""

    name = "ct_blur"
    description = "Extra Gaussian blur, FWHM 0.5-4 mm (softer kernel / thicker-slice proxy); needs pixel spacing."
    modality = "CT"
    parameter, unit = "fwhm_mm", "mm FWHM"
    severities = severity_scale(BLUR_FWHM_MM)
    Params = BlurParams
    spatial_ranks = (2, 3)  # volumes too

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: BlurParams,
                context: CorruptionContext) -> np.ndarray:
        """Blur with FWHM fwhm_mm / pixel spacing pixels (volumes: in 3-D, per axis by the voxel spacing)."""
        if images.ndim == 5:
            if context.voxel_spacing_mm is None:
                raise DataError(f"corruption '{self.name}' gives its blur in mm, but the data set does not give "
                                "the voxel spacing of its volumes")
            depth, height, width = context.voxel_spacing_mm
            blurred = gaussian_blur_axis(images, params.fwhm_mm / depth, axis=-3)
            blurred = gaussian_blur_axis(blurred, params.fwhm_mm / height, axis=-2)
            return gaussian_blur_axis(blurred, params.fwhm_mm / width, axis=-1)
        if context.pixel_spacing_mm is None:
            raise DataError(f"corruption '{self.name}' gives its blur in mm, but the data set does not give the "
                            f"pixel spacing; use 'gaussian_blur' (FWHM in pixels) instead")
        return gaussian_blur(images, params.fwhm_mm / context.pixel_spacing_mm)


class CTWindowShift(Corruption):
    """Plugin 'ct_window_shift': the export window's level (and width) moved, i.e. a calibration or protocol shift."""

    name = "ct_window_shift"
    description = "Window level raised by 20-300 HU (calibration drift, another protocol's window); width optional."
    modality, requires_unit = "CT", HU
    parameter, unit = "level_shift_hu", "HU (level shift)"
    severities = severity_scale(LEVEL_SHIFT_HU)
    Params = WindowShiftParams
    spatial_ranks = (2, 3)  # volumes too

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: WindowShiftParams,
                context: CorruptionContext) -> np.ndarray:
        """Re-window: x' = (x·W − ΔL + ΔW/2) / (W + ΔW); values clipped by the original window stay clipped."""
        width = self.native_per_unit(context)
        new_width = width + params.width_change_hu
        if new_width <= 0:
            raise DataError(f"corruption '{self.name}': width_change_hu {params.width_change_hu:g} leaves a window "
                            f"width of {new_width:g} HU")
        return (images * width - params.level_shift_hu + params.width_change_hu / 2) / new_width


class CTRing(Corruption):
    """Plugin 'ct_ring': ring artefacts from miscalibrated detector channels, seen as arcs in a patch."""

    name = "ct_ring"
    description = "Ring artefact: thin concentric rings ±10-120 HU around an off-patch isocentre."
    modality, requires_unit = "CT", HU
    parameter, unit = "amplitude_hu", "HU (ring amplitude)"
    severities = severity_scale(RING_HU)
    Params = RingParams
    spatial_ranks = (2, 3)  # volumes too

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: RingParams,
                context: CorruptionContext) -> np.ndarray:
        """Add Σ a_k·exp(-(r − r_k)²/2w²) with r the distance to a random isocentre within 1.5 patch sizes
        (volumes: the same rings on every axial slice, as a miscalibrated channel makes them)."""
        per_unit = self.native_per_unit(context)
        height, width = images.shape[-2:]
        size = max(height, width)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        out = images.copy()
        for i, rng in enumerate(rngs):
            angle, distance = rng.uniform(0, 2 * np.pi), 1.5 * size * np.sqrt(rng.uniform())
            cy, cx = (height - 1) / 2 + distance * np.sin(angle), (width - 1) / 2 + distance * np.cos(angle)
            r = np.hypot(yy - cy, xx - cx)
            radii = rng.uniform(max(0.0, r.min() - 1), r.max() + 1, params.n_rings)
            amplitudes = params.amplitude_hu * rng.choice([-1.0, 1.0], params.n_rings) * rng.uniform(0.5, 1.0,
                                                                                                      params.n_rings)
            rings = sum(a * np.exp(-((r - rk) ** 2) / (2 * params.width_px**2))
                        for a, rk in zip(amplitudes, radii, strict=True))
            out[i] += rings / per_unit
        return out


@hookimpl
def harness_register_corruptions() -> list[Any]:
    """Register the CT corruptions."""
    return [CTNoise(), CTNPSNoise(), CTQuantumNoise(), CTBlur(), CTWindowShift(), CTRing()]
