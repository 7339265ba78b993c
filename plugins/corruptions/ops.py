"""Image operations the corruptions share, on float64 N×C×H×W numpy batches in [0,1] intensity units."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage, special

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # a Gaussian's full width at half maximum over its σ
GREY_LEVELS = 255  # 8-bit export: 1 grey level = 1/255 of the [0,1] range


def standard_normal(rngs: list[np.random.Generator], shape: tuple[int, ...]) -> np.ndarray:
    """Unit white Gaussian noise of shape N×shape, image i drawn from rngs[i]."""
    return np.stack([rng.standard_normal(shape) for rng in rngs])


def discrete_gaussian(sigma_px: float) -> np.ndarray:
    """Lindeberg's discrete Gaussian e^{-t} I_n(t), t = σ²: its variance is exactly σ², even below one pixel
    (a sampled Gaussian, as in scipy's gaussian_filter, is far narrower than σ there)."""
    radius = int(np.ceil(4 * sigma_px)) + 1
    kernel = special.ive(np.arange(-radius, radius + 1), sigma_px**2)
    return kernel / kernel.sum()


def gaussian_blur(images: np.ndarray, fwhm_px: float) -> np.ndarray:
    """In-plane Gaussian blur of FWHM `fwhm_px` pixels (= 2.355 σ of a discrete Gaussian; edges replicated)."""
    kernel = discrete_gaussian(fwhm_px / FWHM_PER_SIGMA)
    rows = ndimage.convolve1d(images, kernel, axis=-2, mode="nearest")
    return ndimage.convolve1d(rows, kernel, axis=-1, mode="nearest")


def gaussian_blur_axis(images: np.ndarray, fwhm_px: float, axis: int) -> np.ndarray:
    """Gaussian blur of FWHM `fwhm_px` voxels along one axis (a discrete Gaussian; edges replicated)."""
    return ndimage.convolve1d(images, discrete_gaussian(fwhm_px / FWHM_PER_SIGMA), axis=axis, mode="nearest")


def resolution_loss(images: np.ndarray, factor: float) -> np.ndarray:
    """Box-average down-sampling by `factor` (a coarser acquisition matrix), then bicubic back to the same size."""
    height, width = images.shape[-2:]
    small = (max(1, round(height / factor)), max(1, round(width / factor)))
    tensor = torch.from_numpy(images)
    coarse = F.interpolate(tensor, size=small, mode="area")
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False).numpy()


def to_grey_levels(image: np.ndarray) -> np.ndarray:
    """A 2-D [0,1] image as 8-bit grey levels (rounded, clipped)."""
    return np.clip(np.round(image * GREY_LEVELS), 0, GREY_LEVELS).astype(np.uint8)


def codec_roundtrip(images: np.ndarray, fmt: str, **save: Any) -> np.ndarray:
    """Every channel exported as an 8-bit grey image in `fmt` with Pillow's `save` options, then decoded."""
    out = np.empty_like(images)
    for index in np.ndindex(*images.shape[:2]):
        buffer = io.BytesIO()
        Image.fromarray(to_grey_levels(images[index])).save(buffer, format=fmt, **save)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[index] = np.asarray(decoded.convert("L"), dtype=np.float64) / GREY_LEVELS
    return out
