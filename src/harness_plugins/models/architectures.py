"""Built-in 2D classifier architectures, each wrapped so normalisation lives inside the model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.errors import ModelError
from harness.registry.hookspecs import hookimpl

DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.25


def _per_channel(value: float | Sequence[float], channels: int, what: str) -> torch.Tensor:
    """A 1×C×1×1 float32 tensor from a scalar or a per-channel sequence."""
    values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != channels:
        raise ModelError(f"{what} has {len(values)} values but the images have {channels} channels")
    return torch.tensor(values, dtype=torch.float32).view(1, channels, 1, 1)


class NormalizedClassifier(nn.Module):
    """[0,1] images N×C×H×W → (x - mean) / std → backbone → raw logits; mean and std are buffers."""

    def __init__(self, backbone: nn.Module, in_channels: int, mean: float | Sequence[float] = DEFAULT_MEAN,
                 std: float | Sequence[float] = DEFAULT_STD) -> None:
        super().__init__()
        self.backbone = backbone
        self.in_channels = in_channels
        self.register_buffer("mean", _per_channel(mean, in_channels, "mean"))
        self.register_buffer("std", _per_channel(std, in_channels, "std"))

    def set_normalization(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        """Replace the normalisation constants in place (keeps device)."""
        std_t = _per_channel(std, self.in_channels, "std")
        if bool((std_t <= 0).any()):
            raise ModelError(f"normalisation std must be > 0, got {std_t.flatten().tolist()}")
        self.mean.copy_(_per_channel(mean, self.in_channels, "mean"))
        self.std.copy_(std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for [0,1] images."""
        return self.backbone((x - self.mean) / self.std)


class SmallCNNNet(nn.Module):
    """Three conv blocks (16/32/64 channels, BatchNorm, ReLU, max-pool), global average pool, linear head."""

    def __init__(self, in_channels: int, num_classes: int, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(), nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for normalised images."""
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def _check_size(name: str, image_size: tuple[int, int], minimum: int) -> None:
    """Refuse images smaller than the architecture's minimum side."""
    if min(image_size) < minimum:
        raise ModelError(f"architecture '{name}' needs images of at least {minimum}×{minimum}, "
                         f"got {image_size[0]}×{image_size[1]}")


class SmallCNN:
    """A small fast CNN for quick plans and tests (trains in seconds on 64×64 on CPU)."""

    name = "small_cnn"
    description = "Small 3-block CNN (16/32/64 channels, BatchNorm, ReLU, max-pool, GAP, linear); fast on CPU."

    def build(self, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        """A NormalizedClassifier around SmallCNNNet."""
        _check_size(self.name, image_size, 8)
        return NormalizedClassifier(SmallCNNNet(in_channels, num_classes), in_channels)


class VGGStyleNet(nn.Module):
    """VGG-style: conv blocks (conv 3×3, BatchNorm, ReLU, max-pool), then a flattened fully connected head."""

    def __init__(self, in_channels: int, num_classes: int, image_size: tuple[int, int],
                 widths: Sequence[int] = (16, 32, 64, 128, 128), hidden: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*layers)
        cells = (image_size[0] >> len(widths)) * (image_size[1] >> len(widths))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(previous * cells, hidden), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for normalised images."""
        return self.head(self.features(x))


class VGGStyle:
    """The study's VGG16 topology scaled down: five pooled conv blocks and a fully connected head, no global pool."""

    name = "vgg_style"
    description = ("VGG-style CNN: 5 conv blocks (16–128 channels, BatchNorm, max-pool) and a flattened "
                   "fully connected head (no global pooling), like VGG16; images of at least 32×32.")

    def build(self, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        """A NormalizedClassifier around VGGStyleNet (the head's size follows the image size)."""
        _check_size(self.name, image_size, 32)
        return NormalizedClassifier(VGGStyleNet(in_channels, num_classes, image_size), in_channels)


class MonaiResNet18:
    """MONAI ResNet-18 in 2D with the standard stem (7×7 stride-2 conv and max-pool)."""

    name = "resnet18"
    description = "MONAI ResNet-18, 2D, standard 7×7 stride-2 stem, randomly initialised."

    def build(self, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        """A NormalizedClassifier around monai.networks.nets.resnet18."""
        from monai.networks.nets import resnet18

        _check_size(self.name, image_size, 8)
        backbone = resnet18(spatial_dims=2, n_input_channels=in_channels, num_classes=num_classes,
                            conv1_t_stride=2)
        return NormalizedClassifier(backbone, in_channels)


class MonaiDenseNet121:
    """MONAI DenseNet-121 in 2D (needs at least 32×32 images)."""

    name = "densenet121"
    description = "MONAI DenseNet-121, 2D, randomly initialised; images of at least 32×32."

    def build(self, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
        """A NormalizedClassifier around monai.networks.nets.DenseNet121."""
        from monai.networks.nets import DenseNet121

        _check_size(self.name, image_size, 32)
        backbone = DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=num_classes)
        return NormalizedClassifier(backbone, in_channels)


ARCHITECTURES = (SmallCNN, VGGStyle, MonaiResNet18, MonaiDenseNet121)


@hookimpl
def harness_register_architectures() -> list[object]:
    """The built-in architectures: small_cnn, vgg_style, resnet18, densenet121."""
    return [cls() for cls in ARCHITECTURES]


def ensure_normalized(module: nn.Module, in_channels: int) -> NormalizedClassifier:
    """`module` itself when it is a NormalizedClassifier, else wrapped in one (default mean/std)."""
    if isinstance(module, NormalizedClassifier):
        return module
    return NormalizedClassifier(module, in_channels)
