"""Minimal in-test plugins, so the core can be tested with the built-in plugins removed.

The pytest-plugin tests also install this very file as a throwaway external plugin package.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from harness.errors import DataError
from harness.registry.contracts import AttackOutput, DatasetBundle, ModelBundle, NativeUnits, Severity, TensorSplit
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import Registry, make_plugin_manager


@dataclass
class ToyDataParams:
    n: int = field(default=60, metadata={"min": 6})
    size: int = 8
    fail: str = ""  # "data": a DataError (bad input); "internal": a RuntimeError (a bug)
    modality: str | None = None


class ToyData:
    name, description, Params = "toy", "bright vs dark squares", ToyDataParams
    identifiers = "synthetic"

    def load(self, params, context):
        if params.fail == "data":
            raise DataError("toy data set: simulated unreadable file")
        if params.fail == "internal":
            raise RuntimeError("simulated bug")
        rng = np.random.default_rng(context.seed)
        labels = np.arange(params.n) % 2
        images = rng.uniform(0.3, 0.5, (params.n, 1, params.size, params.size)) + 0.3 * labels[:, None, None, None]
        splits = {}
        for i, name in enumerate(("train", "val", "test")):
            idx = np.arange(params.n)[i::3]
            splits[name] = TensorSplit(torch.tensor(images[idx], dtype=torch.float32), labels[idx],
                                       [f"s{j}" for j in idx], [f"p{j}" for j in idx])
        return DatasetBundle("toy", ["dark", "bright"], splits, {"content_sha256": "0" * 64, "source": "toy"},
                             NativeUnits(100.0, "HU"), modality=params.modality)


class Brightness(nn.Module):
    """A model to save as TorchScript: class 1 for images brighter than mid-grey, with confident logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1) * 10


@dataclass
class MeanModelParams:
    threshold: float = 0.55


class MeanModel:
    name, description, Params = "mean_threshold", "classifies by mean brightness", MeanModelParams
    needs_training_data = True

    def provide(self, params, context):
        class Net(nn.Module):
            def forward(self, x):
                m = x.flatten(1).mean(1, keepdim=True) - params.threshold
                return torch.cat([-50 * m, 50 * m], dim=1)
        return ModelBundle(Net(), {"source": "fake", "weights_sha256": "f" * 64})


@dataclass
class ShiftParams:
    steps: int = field(default=1, metadata={"min": 1})


class Shift:
    """Moves every pixel by epsilon against the label (the exact worst case for MeanModel)."""

    name, norm, kind, description, Params = "shift", "linf", "fixed_epsilon", "shift by epsilon", ShiftParams
    iterative, requires_gradients = False, False

    def strengthen(self, params, steps_factor, restarts):
        return None

    def run(self, model, images, labels, epsilons, params):
        sign = (1 - 2 * labels).float().view(-1, 1, 1, 1)
        return AttackOutput([(images + sign * eps).clamp(0, 1) for eps in epsilons])


@dataclass
class DarkenParams:
    amount: float = 0.1
    jitter: float = field(default=0.02, metadata={"min": 0})  # per-image random extra darkening, up to this


class Darken:
    """Darkens every pixel by `amount` plus a per-image random jitter seeded by (seed, index): MeanModel's images
    cross its threshold at a known amount. `calls` counts corrupted batches; `crash_after` simulates a crash."""

    name, description, modality, requires_unit = "darken", "darker images", "any", None
    parameter, unit, Params = "amount", "of the range", DarkenParams
    severities = tuple(Severity(level, name, value) for level, name, value in zip(
        (1, 2, 3, 4, 5), ("slight", "mild", "moderate", "strong", "severe"), (0.05, 0.1, 0.15, 0.2, 0.3),
        strict=True))
    calls = 0
    crash_after: int | None = None

    def params_for(self, level, base=None):
        return replace(base or DarkenParams(), amount=self.severities[level - 1].value)

    def apply(self, images, indices, params, context):
        Darken.calls += 1
        if Darken.crash_after is not None and Darken.calls > Darken.crash_after:
            raise KeyboardInterrupt("simulated interruption")
        jitter = [np.random.default_rng([context.seed, int(i)]).uniform(0, params.jitter) for i in indices]
        shift = params.amount + torch.tensor(jitter, dtype=images.dtype).view(-1, 1, 1, 1)
        return (images - shift).clamp(0, 1)


class ToyCTNoise(Darken):
    """A CT-only corruption (modality check)."""

    name, description, modality = "toy_ct", "CT only", "CT"


class NeedsSpacing(Darken):
    """Refuses data without a pixel spacing, as ct_blur does."""

    name, description = "needs_spacing", "needs the pixel spacing"

    def apply(self, images, indices, params, context):
        if context.pixel_spacing_mm is None:
            raise DataError("corruption 'needs_spacing' needs the pixel spacing; the data set does not give it")
        return super().apply(images, indices, params, context)


@hookimpl
def harness_register_datasets():
    return [ToyData()]


@hookimpl
def harness_register_models():
    return [MeanModel()]


@hookimpl
def harness_register_attacks():
    return [Shift()]


@hookimpl
def harness_register_corruptions():
    return [Darken(), ToyCTNoise(), NeedsSpacing()]


def fake_registry() -> Registry:
    """A registry with only the fake plugins (no entry points)."""
    return Registry(make_plugin_manager(load_entry_points=False, extra=[sys.modules[__name__]]))


# Acceptance criteria and a corruptions section on the fake 'darken' corruption, appended to a plan whose last
# section is `acceptance:` (the unit and end-to-end corruption tests share it).
DARKEN_GATES_SECTION = """\
  - metric: accuracy
    corruption: darken
    severity: 3
    min: 0.5
  - metric: relative_drop
    corruption: any
    severity: 4
    max: 0.05
  - metric: mean_corruption_error
    max: 100
corruptions:
  - corruption: darken
  - corruption: darken
    id: darken_steady
    severities: [1, 4]
    jitter: 0.0
"""
