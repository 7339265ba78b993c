"""Corruptions that exist only for volumes: a thicker reconstructed slice (resampled along z and back, in mm).

The plugin 'slice_thickness' models a series reconstructed at a thicker slice: each output slice averages the
volume over a slab `thickness_mm` thick (a box slice-sensitivity profile), sampled every `thickness_mm`, then
linearly interpolated back to the original z grid, so the model sees the same voxel grid with lost z detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from harness.errors import DataError
from harness.registry.contracts import CorruptionContext
from harness.registry.hookspecs import hookimpl
from harness_plugins.corruptions.base import Corruption, severity_scale

SLICE_THICKNESS_MM = (1.5, 2.5, 3.5, 5.0, 7.0)


@dataclass
class SliceThicknessParams:
    """The reconstructed slice thickness in mm (slab width and slice interval)."""

    thickness_mm: float = field(default=SLICE_THICKNESS_MM[2], metadata={"gt": 0, "max": 50})


def thick_slices(volumes: np.ndarray, thickness_vox: float) -> np.ndarray:
    """N×C×D×H×W → slab averages `thickness_vox` slices wide, sampled every `thickness_vox` slices, and linearly
    interpolated back to D slices (edges replicated)."""
    depth = volumes.shape[-3]
    if thickness_vox <= 1.0:
        return volumes.copy()
    slab = ndimage.uniform_filter1d(volumes, size=max(1, int(round(thickness_vox))), axis=-3, mode="nearest")
    samples = np.arange(0.0, depth - 1 + 1e-9, thickness_vox)  # thick-slice centres, in voxels
    lower = np.clip(np.floor(samples).astype(int), 0, depth - 1)
    upper = np.clip(lower + 1, 0, depth - 1)
    frac = (samples - lower)[:, None, None]
    coarse = slab[..., lower, :, :] * (1 - frac) + slab[..., upper, :, :] * frac
    z = np.arange(depth, dtype=np.float64)
    position = np.clip(np.interp(z, samples, np.arange(len(samples))), 0, len(samples) - 1)
    below = np.floor(position).astype(int)
    above = np.clip(below + 1, 0, len(samples) - 1)
    weight = (position - below)[:, None, None]
    return coarse[..., below, :, :] * (1 - weight) + coarse[..., above, :, :] * weight


class SliceThickness(Corruption):
    """Plugin 'slice_thickness': a volume reconstructed at thicker slices (slab average along z, and back)."""

    name = "slice_thickness"
    description = ("Thicker reconstructed slices: slab average along z over 1.5-7 mm, sampled at that interval "
                   "and interpolated back; volumes only, needs the voxel spacing.")
    modality = "any"
    parameter, unit = "thickness_mm", "mm (slice thickness)"
    severities = severity_scale(SLICE_THICKNESS_MM)
    Params = SliceThicknessParams
    spatial_ranks = (3,)

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: SliceThicknessParams,
                context: CorruptionContext) -> np.ndarray:
        """Resample along z at thickness_mm / slice spacing voxels and back."""
        if context.voxel_spacing_mm is None:
            raise DataError(f"corruption '{self.name}' gives the slice thickness in mm, but the data set does not "
                            "give the voxel spacing of its volumes")
        slice_mm = float(context.voxel_spacing_mm[0])
        if params.thickness_mm <= slice_mm:
            raise DataError(f"corruption '{self.name}': a {params.thickness_mm:g} mm slice is not thicker than the "
                            f"volume's {slice_mm:g} mm slices, so it would change nothing; run only the severities "
                            f"above {slice_mm:g} mm (e.g. severities: [3, 4, 5])")
        return thick_slices(images, params.thickness_mm / slice_mm)


@hookimpl
def harness_register_corruptions() -> list[Any]:
    """Register the volume-only corruptions."""
    return [SliceThickness()]
