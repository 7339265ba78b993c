"""General corruptions for any modality (mammography and exported images first): intensities on [0,1].

Gamma and contrast changes (another vendor's or station's grey-scale rendering), JPEG and JPEG 2000 export,
Gaussian blur, Gaussian noise in 8-bit grey levels and resolution loss. Scales follow ImageNet-C / MedMNIST-C
in spirit (five levels from barely visible to clearly degraded) but are set for 64-256 px medical images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.registry.contracts import CorruptionContext
from harness.registry.hookspecs import hookimpl
from harness_plugins.corruptions.base import Corruption, severity_scale
from harness_plugins.corruptions.ops import (
    GREY_LEVELS,
    codec_roundtrip,
    gaussian_blur,
    resolution_loss,
    standard_normal,
)

GAMMAS = (1.2, 1.4, 1.7, 2.0, 2.5)
CONTRASTS = (0.8, 0.65, 0.5, 0.35, 0.2)
JPEG_QUALITIES = (80, 60, 40, 20, 10)
J2K_PSNR_DB = (48.0, 44.0, 40.0, 37.0, 34.0)
BLUR_FWHM_PX = (1.0, 1.5, 2.0, 3.0, 4.0)
NOISE_GREY_LEVELS = (3.0, 6.0, 10.0, 15.0, 25.0)
RESOLUTION_FACTORS = (1.5, 2.0, 3.0, 4.0, 6.0)


@dataclass
class GammaParams:
    """Gamma: each intensity x becomes x**gamma (gamma > 1 darkens mid-tones)."""

    gamma: float = field(default=GAMMAS[2], metadata={"gt": 0, "max": 10})


@dataclass
class ContrastParams:
    """Contrast: deviations from each image's mean intensity are multiplied by `factor`."""

    factor: float = field(default=CONTRASTS[2], metadata={"min": 0, "max": 5})


@dataclass
class JPEGParams:
    """JPEG export (baseline, 4:2:0 irrelevant for grey images) at Pillow/libjpeg quality 1-95."""

    quality: int = field(default=JPEG_QUALITIES[2], metadata={"min": 1, "max": 95})


@dataclass
class JPEG2000Params:
    """Lossy JPEG 2000 export (9/7 wavelet) in OpenJPEG's fixed-quality mode: target PSNR in dB on 8-bit levels."""

    psnr_db: float = field(default=J2K_PSNR_DB[2], metadata={"gt": 0, "max": 100})


@dataclass
class BlurParams:
    """Gaussian blur of the given FWHM in pixels."""

    fwhm_px: float = field(default=BLUR_FWHM_PX[2], metadata={"gt": 0, "max": 64})


@dataclass
class NoiseParams:
    """Additive white Gaussian noise; sigma in 8-bit grey levels (1/255 of the [0,1] range)."""

    sigma_grey_levels: float = field(default=NOISE_GREY_LEVELS[2], metadata={"gt": 0, "max": 255})


@dataclass
class ResolutionParams:
    """Down-sampling factor (box average) before bicubic up-sampling to the original size."""

    factor: float = field(default=RESOLUTION_FACTORS[2], metadata={"gt": 1, "max": 32})


class Gamma(Corruption):
    """Plugin 'gamma': a power-law change of the grey-scale rendering."""

    name = "gamma"
    description = "Gamma change x**γ (another station's grey-scale rendering); γ 1.2-2.5."
    modality = "any"
    parameter, unit = "gamma", "γ"
    severities = severity_scale(GAMMAS)
    Params = GammaParams

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: GammaParams,
                context: CorruptionContext) -> np.ndarray:
        """x**γ on [0,1]."""
        return np.power(np.clip(images, 0.0, 1.0), params.gamma)


class Contrast(Corruption):
    """Plugin 'contrast': contrast reduction around each image's mean."""

    name = "contrast"
    description = "Contrast reduced around each image's mean; factor 0.8-0.2."
    modality = "any"
    parameter, unit = "factor", "× contrast"
    severities = severity_scale(CONTRASTS)
    Params = ContrastParams

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: ContrastParams,
                context: CorruptionContext) -> np.ndarray:
        """mean + factor·(x − mean), per image and channel."""
        mean = images.mean(axis=(2, 3), keepdims=True)
        return mean + params.factor * (images - mean)


class JPEG(Corruption):
    """Plugin 'jpeg': lossy JPEG export of 8-bit grey images."""

    name = "jpeg"
    description = "Lossy JPEG export as 8-bit grey images (Pillow/libjpeg); quality 80-10."
    modality = "any"
    parameter, unit = "quality", "JPEG quality"
    severities = severity_scale(JPEG_QUALITIES)
    Params = JPEGParams

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: JPEGParams,
                context: CorruptionContext) -> np.ndarray:
        """Encode and decode every channel."""
        return codec_roundtrip(images, "JPEG", quality=int(params.quality))


class JPEG2000(Corruption):
    """Plugin 'jpeg2000': lossy JPEG 2000 export at a target PSNR."""

    name = "jpeg2000"
    description = "Lossy JPEG 2000 export (Pillow/OpenJPEG, 9/7 wavelet) at a target PSNR; 48-34 dB."
    modality = "any"
    parameter, unit = "psnr_db", "dB target PSNR"
    severities = severity_scale(J2K_PSNR_DB)
    Params = JPEG2000Params

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: JPEG2000Params,
                context: CorruptionContext) -> np.ndarray:
        """Encode and decode every channel as a raw J2K codestream."""
        return codec_roundtrip(images, "JPEG2000", quality_mode="dB", quality_layers=[float(params.psnr_db)],
                               irreversible=True, no_jp2=True)


class GaussianBlur(Corruption):
    """Plugin 'gaussian_blur': defocus / smoothing with a FWHM in pixels."""

    name = "gaussian_blur"
    description = "Gaussian blur, FWHM 1-4 pixels (defocus, smoothing filter, lower MTF)."
    modality = "any"
    parameter, unit = "fwhm_px", "px FWHM"
    severities = severity_scale(BLUR_FWHM_PX)
    Params = BlurParams

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: BlurParams,
                context: CorruptionContext) -> np.ndarray:
        """Blur every channel."""
        return gaussian_blur(images, params.fwhm_px)


class GaussianNoise(Corruption):
    """Plugin 'gaussian_noise': white Gaussian noise in 8-bit grey levels."""

    name = "gaussian_noise"
    description = "Additive white Gaussian noise, σ 3-25 grey levels of 255 (detector / electronic noise)."
    modality = "any"
    parameter, unit = "sigma_grey_levels", "grey levels (σ, of 255)"
    severities = severity_scale(NOISE_GREY_LEVELS)
    Params = NoiseParams

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: NoiseParams,
                context: CorruptionContext) -> np.ndarray:
        """x + σ·n with one noise field per image."""
        return images + params.sigma_grey_levels / GREY_LEVELS * standard_normal(rngs, images.shape[1:])


class ResolutionLoss(Corruption):
    """Plugin 'resolution_loss': a coarser acquisition or export matrix interpolated back."""

    name = "resolution_loss"
    description = "Resolution loss: box down-sampling by 1.5-6× and bicubic up-sampling (coarser matrix)."
    modality = "any"
    parameter, unit = "factor", "× down-sampling"
    severities = severity_scale(RESOLUTION_FACTORS)
    Params = ResolutionParams

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: ResolutionParams,
                context: CorruptionContext) -> np.ndarray:
        """Down- and up-sample every channel."""
        return resolution_loss(images, params.factor)


@hookimpl
def harness_register_corruptions() -> list[Any]:
    """Register the general corruptions."""
    return [Gamma(), Contrast(), JPEG(), JPEG2000(), GaussianBlur(), GaussianNoise(), ResolutionLoss()]
