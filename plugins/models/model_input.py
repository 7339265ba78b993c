"""The model's declared input contract, applied inside the model so ε stays defined on the data's [0,1] images.

One mechanism for every model: [0,1] images N×C×H×W → resize to `input.size` → replicate one channel to
`input.channels` → map [0,1] to `input.scale` → (x − mean) / std → network → logits. The normalisation has one
home, `model.normalization: {mean, std}` (or `none`), given in the model's own input units (after `scale`); the
harness's own trained models carry theirs in the weights (computed by training).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ModelError, PlanError
from harness_plugins.datasets.readers.geometry import aspect_differs

RESIZE_METHOD = "bilinear (torch.nn.functional.interpolate, align_corners=False, antialiased when shrinking)"
TRILINEAR_METHOD = "trilinear (torch.nn.functional.interpolate, align_corners=False)"  # volumes


@dataclass
class NormalizationParams:
    """Per-channel mean and std in the model's input units (a scalar applies to every channel)."""

    mean: float | list[float]
    std: float | list[float] = field(metadata={"gt": 0})


@dataclass
class InputParams:
    """What the model expects, when it differs from the data: size, channels and intensity scale."""

    size: list[int] | None = field(default=None, metadata={"min": 1})  # [height, width] ([depth, height, width])
    channels: Literal[1, 3] | None = None  # 3: a one-channel image is replicated
    scale: list[float] = field(default_factory=lambda: [0.0, 1.0])  # [0,1] maps to [lo, hi], e.g. [0, 255]
    mean: float | list[float] | None = None  # refused: normalisation lives in model.normalization
    std: float | list[float] | None = None

    def __post_init__(self) -> None:
        if self.mean is not None or self.std is not None:
            raise PlanError("the normalisation has one home: give it as model.normalization: {mean, std} (in the "
                            "model's input units, after input.scale)", key="model.input.mean")
        if self.size is not None and len(self.size) not in (2, 3):
            raise PlanError(f"expected [height, width] (or [depth, height, width] for volumes), got {self.size}",
                            key="model.input.size")
        if len(self.scale) != 2 or self.scale[0] >= self.scale[1]:
            raise PlanError(f"expected [lo, hi] with lo < hi, e.g. [0, 1] or [0, 255], got {self.scale}",
                            key="model.input.scale")


def per_channel(value: float | Sequence[float], channels: int, what: str, spatial_dims: int = 2) -> torch.Tensor:
    """A 1×C×1×1 (volumes: 1×C×1×1×1) float32 tensor from a scalar or a per-channel sequence."""
    values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) == 1 and channels > 1:
        values = values * channels
    if len(values) != channels:
        raise ModelError(f"{what} has {len(values)} values but the model takes {channels} channels")
    return torch.tensor(values, dtype=torch.float32).view(1, channels, *([1] * spatial_dims))


class NormalizedClassifier(nn.Module):
    """[0,1] images → resize → channels → scale → (x − mean) / std → backbone → raw logits.

    mean and std are buffers (saved with the weights); size, channel replication and scale are the declared
    contract, fixed when the model is built (nothing in forward depends on the batch's values).
    """

    def __init__(self, backbone: nn.Module, in_channels: int, mean: float | Sequence[float] = 0.0,
                 std: float | Sequence[float] = 1.0, size: Sequence[int] | None = None,
                 scale: Sequence[float] = (0.0, 1.0), replicate_channels: bool = False,
                 antialias: bool = False, spatial_dims: int = 2) -> None:
        super().__init__()
        self.backbone = backbone
        self.in_channels, self.spatial_dims = in_channels, spatial_dims
        self.size = None if size is None else tuple(int(v) for v in size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.replicate_channels, self.antialias = replicate_channels, antialias
        self.register_buffer("mean", per_channel(mean, in_channels, "mean", spatial_dims))
        self.register_buffer("std", per_channel(std, in_channels, "std", spatial_dims))

    def set_normalization(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        """Replace the normalisation constants in place (keeps device)."""
        std_t = per_channel(std, self.in_channels, "std", self.spatial_dims)
        if bool((std_t <= 0).any()):
            raise ModelError(f"normalisation std must be > 0, got {std_t.flatten().tolist()}")
        self.mean.copy_(per_channel(mean, self.in_channels, "mean", self.spatial_dims))
        self.std.copy_(std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for [0,1] images."""
        if self.size is not None:
            x = (F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=self.antialias)
                 if len(self.size) == 2 else F.interpolate(x, size=self.size, mode="trilinear", align_corners=False))
        if self.replicate_channels:
            x = x.expand(-1, self.in_channels, *([-1] * (x.ndim - 2)))
        lo, hi = self.scale
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        return self.backbone((x - self.mean) / self.std)


def normalization_of(model: NormalizedClassifier, source: str) -> dict[str, Any]:
    """The model's per-channel mean and std and where they came from, for provenance."""
    def shown(values: torch.Tensor) -> list[float]:
        return [float(f"{v:.7g}") for v in values.flatten().tolist()]  # float32 precision, as written in a plan

    return {"mean": shown(model.mean), "std": shown(model.std), "source": source}


def model_input_shape(data_shape: Sequence[int], contract: InputParams | None) -> tuple[int, ...]:
    """C, H, W (volumes: C, D, H, W) the network itself receives, from the data's shape and the declared contract."""
    channels, spatial = int(data_shape[0]), tuple(int(v) for v in data_shape[1:])
    if contract is None:
        return (channels, *spatial)
    if contract.channels is not None:
        if channels not in (1, contract.channels):
            raise PlanError(f"the model takes {contract.channels} channels but the images have {channels} (only "
                            "one channel can be replicated)", key="model.input.channels")
        channels = contract.channels
    if contract.size is not None:
        if len(contract.size) != len(spatial):
            raise PlanError(f"the data are {'×'.join(map(str, spatial))} but input.size {contract.size} has "
                            f"{len(contract.size)} sides; give {len(spatial)}", key="model.input.size")
        spatial = tuple(int(v) for v in contract.size)
    return (channels, *spatial)


def describe_input(data_shape: Sequence[int], contract: InputParams | None) -> dict[str, Any]:
    """The input contract as applied, for the manifest and the report."""
    channels, *spatial = model_input_shape(data_shape, contract)
    lo, hi = (0.0, 1.0) if contract is None else (float(contract.scale[0]), float(contract.scale[1]))
    resized = list(spatial) != [int(v) for v in data_shape[1:]]
    resize = (RESIZE_METHOD if len(spatial) == 2 else TRILINEAR_METHOD) if resized else None
    if resized and len(spatial) == 2 and aspect_differs(int(data_shape[1]), int(data_shape[2]), *spatial):
        height, width = spatial
        resize = (f"{RESIZE_METHOD}; stretched: the aspect ratio changes from {data_shape[2]}×{data_shape[1]} to "
                  f"{width}×{height} (width×height); to keep it, letterbox the data first (dataset image_size with "
                  "resize: {mode: pad})")
    return {
        "data_shape": [int(v) for v in data_shape], "model_shape": [channels, *spatial],
        "resize": resize,
        "channels_replicated": channels != int(data_shape[0]), "scale": [lo, hi],
        "epsilon_units": ("ε is on the data's [0,1] pixels" if (lo, hi) == (0.0, 1.0) else
                          f"ε is on the data's [0,1] pixels; the model sees ε × {hi - lo:g} on its [{lo:g}, {hi:g}] "
                          "input"),
    }


def wrap(network: nn.Module, data_shape: Sequence[int], contract: InputParams | None,
         normalization: NormalizationParams | None) -> NormalizedClassifier:
    """The network behind the declared contract and normalisation (identity where nothing is declared)."""
    channels, *spatial = model_input_shape(data_shape, contract)
    data_spatial = [int(v) for v in data_shape[1:]]
    size = None if spatial == data_spatial else spatial
    scale = (0.0, 1.0) if contract is None else contract.scale
    model = NormalizedClassifier(network, channels, size=size, scale=scale,
                                 replicate_channels=channels != int(data_shape[0]),
                                 antialias=any(d > m for d, m in zip(data_spatial, spatial, strict=True)),
                                 spatial_dims=len(spatial))
    if normalization is not None:
        try:
            model.set_normalization(normalization.mean, normalization.std)
        except ModelError as exc:
            raise PlanError(str(exc), key="model.normalization") from None
    return model
