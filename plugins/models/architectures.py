"""Built-in 2-D and 3-D classifier architectures, built exactly as their library defines them unless the plan says
otherwise.

`architecture: resnet18` is MONAI's `resnet18` with MONAI's defaults; a variant is explicit
(`architecture: {name: resnet18, conv1_t_stride: 2}`). Every architecture reports its complete constructor
arguments (library defaults filled in), which the manifest records and the weight cache keys on.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from harness.errors import ModelError, PlanError
from harness.registry.hookspecs import hookimpl
from harness_plugins.models.model_input import NormalizedClassifier  # noqa: F401 - its former home


class SmallCNNNet(nn.Module):
    """Three conv blocks (16/32/64 channels, BatchNorm, ReLU, max-pool), global average pool, linear head."""

    conv, norm, max_pool, global_pool = nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d

    def __init__(self, in_channels: int, num_classes: int, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [self.conv(previous, width, 3, padding=1, bias=False), self.norm(width),
                       nn.ReLU(), self.max_pool(2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.pool = self.global_pool(1)
        self.head = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for normalised images (or volumes)."""
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class SmallCNN3DNet(SmallCNNNet):
    """SmallCNNNet for volumes: three Conv3d blocks (8/16/32 channels, BatchNorm3d, ReLU, 3-D max-pool), global
    average pool, linear head."""

    conv, norm, max_pool, global_pool = nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d

    def __init__(self, in_channels: int, num_classes: int, widths: Sequence[int] = (8, 16, 32)) -> None:
        super().__init__(in_channels, num_classes, widths)


class VGGStyleNet(nn.Module):
    """VGG-style: conv blocks (conv 3×3, BatchNorm, ReLU, max-pool), then a flattened fully connected head."""

    def __init__(self, in_channels: int, num_classes: int, image_size: Sequence[int],
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


def signature_defaults(*callables: Callable[..., Any]) -> dict[str, Any]:
    """Keyword defaults of the callables' signatures, later callables overriding earlier ones."""
    defaults: dict[str, Any] = {}
    for func in callables:
        for name, parameter in inspect.signature(func).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults[name] = parameter.default
    return defaults


def _option_value(name: str, value: Any, default: Any, key: str) -> Any:
    """A plan option checked against the kind of the library default; lists become tuples (YAML has no tuples)."""
    value = tuple(value) if isinstance(value, list) else value
    if default is None:
        ok = True
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):  # MONAI takes an int or a per-dimension tuple for sizes and strides
        ok = (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, tuple)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:  # strings and tuples: MONAI's layer specs are a name or a (name, {options}) pair
        ok = isinstance(value, (str, tuple, int))
    if not ok:
        raise PlanError(f"expected a value like the default {default!r}, got {value!r}", key=f"{key}.{name}")
    return value


class LibraryArchitecture:
    """An architecture built by a library constructor with the library's defaults, plan options on top.

    Subclasses name the constructor, the arguments the harness fills from the data (`data_arguments`: argument
    name → 'in_channels' | 'num_classes' | 'image_size' | a constant), the smallest image side they accept and
    the arguments a plan may not set (`reserved`, e.g. pretrained weights that would be downloaded).
    """

    name = ""
    description = ""
    qualified_name = ""  # e.g. 'monai.networks.nets.resnet18', recorded in the manifest
    minimum_size = 8
    spatial_ranks: tuple[int, ...] = (2,)  # 2: C×H×W images; 3: C×D×H×W volumes
    data_arguments: Mapping[str, Any] = {}
    reserved: tuple[str, ...] = ()

    def constructor(self) -> Callable[..., nn.Module]:
        """The callable that builds the network."""
        raise NotImplementedError

    def defaults(self) -> dict[str, Any]:
        """The constructor's keyword defaults."""
        return signature_defaults(self.constructor())

    def allowed_options(self) -> list[str]:
        """What a plan may set: the constructor's defaulted arguments less the data's and the reserved ones
        (`spatial_dims` may be stated; it must match the data)."""
        stated = {"spatial_dims"} & set(self.data_arguments)
        return sorted((set(self.defaults()) - set(self.data_arguments) - set(self.reserved)) | stated)

    def check_options(self, options: Mapping[str, Any], key: str) -> dict[str, Any]:
        """The plan's options, each known and of the default's type; PlanError naming `key`.option otherwise."""
        defaults, allowed = self.defaults(), self.allowed_options()
        checked = {}
        for option, value in options.items():
            if option not in allowed:
                raise PlanError(f"architecture '{self.name}' has no option '{option}' (allowed: "
                                f"{', '.join(allowed) or 'none'})", key=f"{key}.{option}")
            if option == "spatial_dims":  # stated by the plan, checked against the data when built
                if value not in (2, 3) or isinstance(value, bool):
                    raise PlanError(f"expected 2 or 3, got {value!r}", key=f"{key}.{option}")
                checked[option] = value
                continue
            checked[option] = _option_value(option, value, defaults[option], key)
        return checked

    def arguments(self, in_channels: int, num_classes: int, image_size: tuple[int, int],
                  options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every constructor argument in effect: library defaults, then the data's, then the plan's options."""
        data = {"in_channels": in_channels, "num_classes": num_classes, "image_size": list(image_size),
                "spatial_dims": len(image_size)}
        chosen = {arg: data.get(source, source) if isinstance(source, str) else source
                  for arg, source in self.data_arguments.items()}
        options = dict(self.check_options(options or {}, "model.architecture"))
        stated = options.pop("spatial_dims", len(image_size))
        if stated != len(image_size):
            raise PlanError(f"architecture '{self.name}' is set to spatial_dims {stated} but the data are "
                            f"{len(image_size)}-D ({'×'.join(map(str, image_size))}); set spatial_dims: "
                            f"{len(image_size)}", key="model.architecture.spatial_dims")
        defaults = {k: v for k, v in self.defaults().items() if k not in self.reserved}
        return {**defaults, **chosen, **options}

    def build(self, in_channels: int, num_classes: int, image_size: tuple[int, int],
              **options: Any) -> nn.Module:
        """The bare network (no preprocessing), with the data's sizes and the plan's options."""
        if len(image_size) not in self.spatial_ranks:
            wanted = " or ".join({2: "2-D images", 3: "3-D volumes"}[r] for r in self.spatial_ranks)
            hint = {3: "; for volumes use small_cnn_3d, or resnet18 / densenet121 (spatial_dims: 3)",
                    2: "; for 2-D images use small_cnn"}
            raise ModelError(f"architecture '{self.name}' takes {wanted}, but the data are {len(image_size)}-D "
                             f"({'×'.join(map(str, image_size))}){hint.get(len(image_size), '')}")
        if min(image_size) < self.minimum_size:
            side = "×".join([str(self.minimum_size)] * len(image_size))
            raise ModelError(f"architecture '{self.name}' needs images of at least {side}, got "
                             f"{'×'.join(map(str, image_size))}")
        arguments = self.arguments(in_channels, num_classes, image_size, options)
        try:
            return self.constructor()(**arguments)
        except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
            raise ModelError(f"architecture '{self.name}' cannot be built with {options or 'its defaults'}: "
                             f"{' '.join(str(exc).split())}") from None

    def describe(self, in_channels: int, num_classes: int, image_size: tuple[int, int],
                 options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the manifest records: name, constructor, every argument and which ones the plan set."""
        return {"name": self.name, "constructor": self.qualified_name,
                "arguments": self.arguments(in_channels, num_classes, image_size, options),
                "from_plan": sorted(options or {})}


class SmallCNN(LibraryArchitecture):
    """A small fast CNN for quick plans and tests (trains in seconds on 64×64 on CPU)."""

    name = "small_cnn"
    description = "Small 3-block CNN (16/32/64 channels, BatchNorm, ReLU, max-pool, GAP, linear); fast on CPU."
    qualified_name = "harness_plugins.models.architectures.SmallCNNNet"
    data_arguments = {"in_channels": "in_channels", "num_classes": "num_classes"}

    def constructor(self) -> Callable[..., nn.Module]:
        """SmallCNNNet."""
        return SmallCNNNet


class SmallCNN3D(LibraryArchitecture):
    """The small CNN for volumes (trains in about a minute on 32³ volumes on one CPU thread)."""

    name = "small_cnn_3d"
    description = ("Small 3-block 3-D CNN for volumes (8/16/32 channels, BatchNorm3d, ReLU, 3-D max-pool, GAP, "
                   "linear); fast on CPU.")
    qualified_name = "harness_plugins.models.architectures.SmallCNN3DNet"
    spatial_ranks = (3,)
    data_arguments = {"in_channels": "in_channels", "num_classes": "num_classes"}

    def constructor(self) -> Callable[..., nn.Module]:
        """SmallCNN3DNet."""
        return SmallCNN3DNet


class VGGStyle(LibraryArchitecture):
    """The study's VGG16 topology scaled down: five pooled conv blocks and a fully connected head, no global pool."""

    name = "vgg_style"
    description = ("VGG-style CNN: 5 conv blocks (16–128 channels, BatchNorm, max-pool) and a flattened "
                   "fully connected head (no global pooling), like VGG16; images of at least 32×32.")
    qualified_name = "harness_plugins.models.architectures.VGGStyleNet"
    minimum_size = 32
    data_arguments = {"in_channels": "in_channels", "num_classes": "num_classes", "image_size": "image_size"}

    def constructor(self) -> Callable[..., nn.Module]:
        """VGGStyleNet (the head's size follows the image size)."""
        return VGGStyleNet


class MonaiResNet18(LibraryArchitecture):
    """MONAI ResNet-18 in 2-D or 3-D (following the data), as MONAI defines it (stride-1 7×7 stem unless the plan
    sets conv1_t_stride)."""

    name = "resnet18"
    description = ("MONAI resnet18, 2-D or 3-D (spatial_dims follows the data), MONAI's defaults (7×7 stride-1 "
                   "stem, max-pool); variants via architecture: {name: resnet18, conv1_t_stride: 2, ...}; randomly "
                   "initialised when trained.")
    qualified_name = "monai.networks.nets.resnet18"
    spatial_ranks = (2, 3)
    data_arguments = {"spatial_dims": "spatial_dims", "n_input_channels": "in_channels",
                      "num_classes": "num_classes"}
    reserved = ("block", "layers", "block_inplanes", "pretrained", "progress")

    def constructor(self) -> Callable[..., nn.Module]:
        """monai.networks.nets.resnet18."""
        from monai.networks.nets import resnet18

        return resnet18

    def defaults(self) -> dict[str, Any]:
        """ResNet's constructor defaults (resnet18 passes everything else through to it)."""
        from monai.networks.nets import ResNet

        return signature_defaults(ResNet.__init__)


class MonaiDenseNet121(LibraryArchitecture):
    """MONAI DenseNet-121 in 2-D or 3-D (following the data), as MONAI defines it (needs at least 32 per side)."""

    name = "densenet121"
    description = ("MONAI DenseNet121, 2-D or 3-D (spatial_dims follows the data), MONAI's defaults; images of at "
                   "least 32 per side; randomly initialised.")
    qualified_name = "monai.networks.nets.DenseNet121"
    minimum_size = 32
    spatial_ranks = (2, 3)
    data_arguments = {"spatial_dims": "spatial_dims", "in_channels": "in_channels", "out_channels": "num_classes"}
    reserved = ("pretrained", "progress")

    def constructor(self) -> Callable[..., nn.Module]:
        """monai.networks.nets.DenseNet121."""
        from monai.networks.nets import DenseNet121

        return DenseNet121

    def defaults(self) -> dict[str, Any]:
        """DenseNet's defaults with DenseNet121's own on top."""
        from monai.networks.nets import DenseNet, DenseNet121

        return signature_defaults(DenseNet.__init__, DenseNet121.__init__)


ARCHITECTURES = (SmallCNN, SmallCNN3D, VGGStyle, MonaiResNet18, MonaiDenseNet121)


@hookimpl
def harness_register_architectures() -> list[object]:
    """The built-in architectures: small_cnn, small_cnn_3d, vgg_style, resnet18, densenet121."""
    return [cls() for cls in ARCHITECTURES]
