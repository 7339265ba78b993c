"""MRI corruptions: TorchIO motion, ghosting, spike and bias-field artefacts on our severity scale; Rician noise.

TorchIO's Random* transforms draw their parameters from torch's global generator and (for motion) have no
severity. Here each image's parameters are drawn from its own generator (seed, name, index) with TorchIO's
distributions, one range bound set by the severity, and passed to TorchIO's deterministic transforms
(Motion, Ghosting, Spike, BiasField). Slices go to TorchIO as 1×H×W volumes (C, 1, H, W): TorchIO 1.2 splices
motion k-space along the last axis (TorchIO issue #81), which is a singleton for its usual (C, H, W, 1) 2-D layout,
so motion there would be a plain rigid shift without artefact. MRI has no absolute intensity unit: the parameters
are relative to the [0,1] range or to the k-space maximum. torchio is imported on first use (≈0.6 s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.registry.contracts import CorruptionContext
from harness.registry.hookspecs import hookimpl
from harness_plugins.corruptions.base import Corruption, severity_scale
from harness_plugins.corruptions.ops import standard_normal

MOTION_AMPLITUDE = (0.5, 1.0, 1.5, 2.5, 4.0)  # ° of in-plane rotation and pixels of translation, at most
GHOST_INTENSITY = (0.1, 0.25, 0.4, 0.6, 0.85)
SPIKE_INTENSITY = (0.02, 0.05, 0.1, 0.2, 0.4)
BIAS_COEFFICIENT = (0.1, 0.2, 0.3, 0.45, 0.6)
RICIAN_SIGMA_PERCENT = (1.0, 2.0, 4.0, 6.0, 9.0)
PERTURBATION = 0.3  # TorchIO RandomMotion: movement times jitter by ±30 % of the spacing between them


@dataclass
class MotionParams:
    """Rigid in-plane head motion during the acquisition: each movement rotates by U(±amplitude)° and shifts by
    U(±amplitude) pixels along each in-plane axis; the movements happen at jittered evenly spaced times."""

    amplitude: float = field(default=MOTION_AMPLITUDE[2], metadata={"gt": 0, "max": 90})
    movements: int = field(default=2, metadata={"min": 1, "max": 10})


@dataclass
class GhostingParams:
    """Periodic-motion ghosts along a random in-plane phase axis: every k-th k-space line scaled by 1 − intensity
    (k drawn from ghosts_min..ghosts_max); `restore` is the central k-space fraction kept intact."""

    intensity: float = field(default=GHOST_INTENSITY[2], metadata={"gt": 0, "max": 1})
    ghosts_min: int = field(default=4, metadata={"min": 2, "max": 32})
    ghosts_max: int = field(default=10, metadata={"min": 2, "max": 32})
    restore: float = field(default=0.02, metadata={"min": 0, "max": 1})


@dataclass
class SpikeParams:
    """Herringbone artefact: `spikes` k-space spikes at random positions, each intensity × the k-space maximum."""

    intensity: float = field(default=SPIKE_INTENSITY[2], metadata={"gt": 0, "max": 5})
    spikes: int = field(default=1, metadata={"min": 1, "max": 10})


@dataclass
class BiasFieldParams:
    """Smooth multiplicative bias exp(Σ c_ij y^i x^j) of polynomial degree ≤ order, c_ij ~ U(±coefficient)."""

    coefficient: float = field(default=BIAS_COEFFICIENT[2], metadata={"gt": 0, "max": 2})
    order: int = field(default=3, metadata={"min": 1, "max": 6})


@dataclass
class RicianParams:
    """Rician noise |x + σ(n₁ + i·n₂)| with σ in percent of the [0,1] intensity range."""

    sigma_percent: float = field(default=RICIAN_SIGMA_PERCENT[2], metadata={"gt": 0, "max": 100})


def torchio_each(images: np.ndarray, rngs: list[np.random.Generator],
                 build: Callable[[np.random.Generator], Any]) -> np.ndarray:
    """Apply the TorchIO transform build(rngs[i]) to slice i as a C×1×H×W volume (its last axis in-plane).

    TorchIO's Transform.__call__ draws torch.rand(1) for its probability; torch's global generator is restored
    afterwards, so a corruption never shifts the random streams of the rest of a run.
    """
    flat = images.ndim == 4  # 2-D slices get a singleton depth; volumes (N×C×D×H×W) go to TorchIO whole
    volumes = torch.from_numpy(images.astype(np.float32))
    volumes = volumes[:, :, None] if flat else volumes
    with torch.random.fork_rng(devices=[]):
        out = torch.stack([build(rng)(volume) for rng, volume in zip(rngs, volumes, strict=True)])
    return (out[:, :, 0] if flat else out).to(torch.float64).numpy()


class MRIMotion(Corruption):
    """Plugin 'mri_motion': TorchIO Motion (k-space segments from moved copies) with an amplitude scale."""

    name = "mri_motion"
    description = "Head motion during acquisition (TorchIO Motion): 2 movements of up to 0.5-4° and 0.5-4 px."
    modality = "MRI"
    parameter, unit = "amplitude", "° and px (max)"
    severities = severity_scale(MOTION_AMPLITUDE)
    Params = MotionParams
    spatial_ranks = (2, 3)  # volumes are corrupted whole, not slice by slice

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: MotionParams,
                context: CorruptionContext) -> np.ndarray:
        """Per image: draw rotations about the through-plane axis, in-plane shifts and times; apply Motion."""
        from torchio import Motion

        n, a = params.movements, params.amplitude
        step = 1.0 / (n + 1)

        def build(rng: np.random.Generator) -> Motion:
            degrees, translation = np.zeros((n, 3)), np.zeros((n, 3))
            degrees[:, 0] = rng.uniform(-a, a, n)
            translation[:, 1:] = rng.uniform(-a, a, (n, 2))
            times = np.arange(1, n + 1) * step + rng.uniform(-PERTURBATION * step, PERTURBATION * step, n)
            return Motion(degrees=degrees, translation=translation, times=times, image_interpolation="linear")

        return torchio_each(images, rngs, build)


class MRIGhosting(Corruption):
    """Plugin 'mri_ghosting': TorchIO Ghosting along a random in-plane axis."""

    name = "mri_ghosting"
    description = "Ghosting from periodic motion (TorchIO Ghosting): k-space lines scaled by 1 − 0.1..0.85."
    modality = "MRI"
    parameter, unit = "intensity", "ghost intensity"
    severities = severity_scale(GHOST_INTENSITY)
    Params = GhostingParams
    spatial_ranks = (2, 3)  # volumes are corrupted whole, not slice by slice

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: GhostingParams,
                context: CorruptionContext) -> np.ndarray:
        """Per image: draw the ghost count and axis; apply Ghosting."""
        from torchio import Ghosting

        low, high = sorted((params.ghosts_min, params.ghosts_max))

        def build(rng: np.random.Generator) -> Ghosting:
            ghosts, axis = int(rng.integers(low, high + 1)), int(rng.integers(1, 3))
            return Ghosting(num_ghosts=ghosts, axis=axis, intensity=params.intensity, restore=params.restore)

        return torchio_each(images, rngs, build)


class MRISpike(Corruption):
    """Plugin 'mri_spike': TorchIO Spike (a bright k-space point gives stripes across the image)."""

    name = "mri_spike"
    description = "Herringbone / spike artefact (TorchIO Spike): one k-space spike of 0.02-0.4 × the k-space peak."
    modality = "MRI"
    parameter, unit = "intensity", "× k-space maximum"
    severities = severity_scale(SPIKE_INTENSITY)
    Params = SpikeParams
    spatial_ranks = (2, 3)  # volumes are corrupted whole, not slice by slice

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: SpikeParams,
                context: CorruptionContext) -> np.ndarray:
        """Per image: draw in-plane spike positions (volumes: anywhere in 3-D k-space); apply Spike."""
        from torchio import Spike

        first = 0 if images.ndim == 5 else 1

        def build(rng: np.random.Generator) -> Spike:
            positions = np.zeros((params.spikes, 3))
            positions[:, first:] = rng.uniform(0, 1, (params.spikes, 3 - first))
            return Spike(spikes_positions=positions, intensity=params.intensity)

        return torchio_each(images, rngs, build)


class MRIBiasField(Corruption):
    """Plugin 'mri_bias_field': TorchIO BiasField (coil sensitivity inhomogeneity) restricted to the slice plane."""

    name = "mri_bias_field"
    description = "Smooth multiplicative bias field (TorchIO BiasField), cubic, coefficients U(±0.1..0.6)."
    modality = "MRI"
    parameter, unit = "coefficient", "max |coefficient| (log scale)"
    severities = severity_scale(BIAS_COEFFICIENT)
    Params = BiasFieldParams
    spatial_ranks = (2, 3)  # volumes are corrupted whole, not slice by slice

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: BiasFieldParams,
                context: CorruptionContext) -> np.ndarray:
        """Per image: draw the in-plane polynomial coefficients (through-plane terms zero; volumes: every term);
        apply BiasField."""
        from torchio import BiasField

        volume = images.ndim == 5
        in_plane = np.array([i == 0 or volume for i in range(params.order + 1) for j in range(params.order + 1 - i)
                             for _ in range(params.order + 1 - i - j)])

        def build(rng: np.random.Generator) -> BiasField:
            coefficients = rng.uniform(-params.coefficient, params.coefficient, len(in_plane))
            return BiasField(coefficients=np.where(in_plane, coefficients, 0.0).tolist(), order=params.order)

        return torchio_each(images, rngs, build)


class MRIRicianNoise(Corruption):
    """Plugin 'mri_rician_noise': magnitude-image noise from complex Gaussian noise."""

    name = "mri_rician_noise"
    description = "Rician noise |x + σ(n₁ + i·n₂)|, σ 1-9 % of the intensity range (lower SNR)."
    modality = "MRI"
    parameter, unit = "sigma_percent", "% of range (σ)"
    severities = severity_scale(RICIAN_SIGMA_PERCENT)
    Params = RicianParams
    spatial_ranks = (2, 3)  # white noise: volumes too

    def corrupt(self, images: np.ndarray, rngs: list[np.random.Generator], params: RicianParams,
                context: CorruptionContext) -> np.ndarray:
        """Magnitude of the image plus complex white noise, one field pair per image."""
        sigma = params.sigma_percent / 100.0
        noise = standard_normal(rngs, (2, *images.shape[1:]))
        return np.hypot(images + sigma * noise[:, 0], sigma * noise[:, 1])


@hookimpl
def harness_register_corruptions() -> list[Any]:
    """Register the MRI corruptions."""
    return [MRIMotion(), MRIGhosting(), MRISpike(), MRIBiasField(), MRIRicianNoise()]
