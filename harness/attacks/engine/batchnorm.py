"""`engine.fold_batchnorm`: fold eval-mode BatchNorm2d into the preceding Conv2d, checked against the original."""

from __future__ import annotations

import torch
from torch import nn

from harness.attacks.engine.model_probe import copy_module, first_line

FOLD_RTOL = 1e-4  # folded logits must match within this fraction of the largest |logit|
_MONAI_RESNET_PAIRS = {"ResNet": (("conv1", "bn1"),),
                       "ResNetBlock": (("conv1", "bn1"), ("conv2", "bn2")),
                       "ResNetBottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))}


def fold_batchnorm(model: nn.Module) -> int:
    """Fold eval-mode BatchNorm2d into the Conv2d before it, in place; the number of pairs folded.

    Pairs are consecutive children of an nn.Sequential and convN→bnN in MONAI ResNet, ResNetBlock and
    ResNetBottleneck. Each folded BatchNorm becomes nn.Identity. Use on a copy.
    """
    folded = 0
    for parent in list(model.modules()):
        for conv_name, bn_name in _candidate_pairs(parent):
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if _foldable(conv, bn):
                _fold_pair(conv, bn)
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


def _candidate_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) attribute names that the forward applies one right after the other."""
    if isinstance(parent, nn.Sequential):
        names = list(parent._modules)
        return list(zip(names[:-1], names[1:], strict=True))
    cls = type(parent)
    if cls.__module__.startswith("monai.") and cls.__name__ in _MONAI_RESNET_PAIRS:
        return list(_MONAI_RESNET_PAIRS[cls.__name__])
    return []


def _foldable(conv: object, bn: object) -> bool:
    pair = ((isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d))
            or (isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d)))  # volumes: the 3-D pair
    return (pair and bn.running_mean is not None
            and bn.running_var is not None and conv.out_channels == bn.num_features)


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv ← bn∘conv, computed in float64: w·γ/σ and (b − μ)·γ/σ + β."""
    dtype = conv.weight.dtype
    scale = (bn.running_var.double() + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = bn.bias.double() if bn.bias is not None else torch.zeros_like(scale)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    weight = conv.weight.double() * scale.view(-1, *([1] * (conv.weight.ndim - 1)))
    conv.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + shift).to(dtype), requires_grad=False)


def fold_checked(model: nn.Module, sample: torch.Tensor, notes: list[str]) -> nn.Module:
    """A folded copy when its logits match the model's on the sample (float64), else the model unfolded."""
    try:
        folded = copy_module(model)
        count = fold_batchnorm(folded)
    except (RuntimeError, TypeError, AttributeError) as exc:  # e.g. a TorchScript module refuses new submodules
        notes.append(f"engine.fold_batchnorm: cannot fold this model ({first_line(exc)}); it is used unfolded")
        return model
    if count == 0:
        notes.append("engine.fold_batchnorm: no Conv2d→BatchNorm2d pair found; the model is used unfolded")
        return model
    error = _relative_error(folded, model, sample)
    if not error <= FOLD_RTOL:
        notes.append(f"engine.fold_batchnorm: folded logits differ from the original by {error:.2e} of the "
                     f"largest logit (tolerance {FOLD_RTOL:g}); the model is used unfolded")
        return model
    return folded


@torch.no_grad()
def _relative_error(candidate: nn.Module, reference: nn.Module, sample: torch.Tensor) -> float:
    """max |candidate − reference| / max |reference| of the logits, both evaluated in float64.

    float64 keeps TF32 and reduced-precision kernels out of the comparison (on CPU for devices without it).
    """
    device = sample.device if sample.device.type in ("cpu", "cuda") else torch.device("cpu")
    x = sample.to(device, torch.float64)
    ref = copy_module(reference).to(device, torch.float64)(x)
    out = copy_module(candidate).to(device, torch.float64)(x)
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12))

