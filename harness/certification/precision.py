"""How the noise samples run: channels-last memory layout, and bf16 on CUDA, each used only where its classes agree
with float32 eager by `engine: auto`'s rule.

With `precision: auto`, the candidates are, fastest first, bf16 + channels-last (CUDA only) and float32
channels-last (4-D images). Up to PROBE_IMAGES test images get n0 noisy copies each, the same noise for the
candidate and for float32 eager; a candidate is used when, on every probe image, the share of copies given float32's
top class differs by at most AGREEMENT_POINTS percentage points (the tolerance `engine: auto` allows between attack
success rates). With `precision: float32`, or when no candidate agrees, noise samples run float32 eager.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.attacks.engine.auto import AGREEMENT_POINTS
from harness.attacks.sweep import batch_seed
from harness.certification.smoothing import class_counts
from harness.plan.certification import CertificationSettings
from harness.registry.contracts import Split

PROBE_IMAGES = {"cuda": 16, "cpu": 4}


@dataclass(frozen=True)
class SmoothingEngine:
    """The options noise samples run under."""

    channels_last: bool = False
    bf16: bool = False

    @property
    def name(self) -> str:
        """'float32', 'float32, channels-last' or 'bf16, channels-last'."""
        return ", ".join(["bf16" if self.bf16 else "float32", *(["channels-last"] if self.channels_last else [])])

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model the samples run through: a channels-last copy, or the model itself."""
        return copy.deepcopy(model).to(memory_format=torch.channels_last) if self.channels_last else model


EAGER = SmoothingEngine()


def _shares(model: nn.Module, engine: SmoothingEngine, split: Split, probe: np.ndarray, sigma: float,
            settings: CertificationSettings, num_classes: int, device: torch.device, seed: int) -> list[np.ndarray]:
    prepared = engine.prepare(model)
    return [class_counts(prepared, split[int(i)][0], sigma, settings.n0, settings.batch_size,
                         torch.Generator().manual_seed(batch_seed(seed, "certification-probe", int(i))), num_classes,
                         device, engine.bf16, engine.channels_last) / max(1, settings.n0) for i in probe]


def choose_engine(model: nn.Module, split: Split, indices: np.ndarray, sigma: float,
                  settings: CertificationSettings, num_classes: int, device: torch.device,
                  seed: int) -> tuple[SmoothingEngine, dict[str, Any]]:
    """The options noise samples at `sigma` run under, and what the manifest records about the choice."""
    if settings.precision == "float32":
        return EAGER, {"used": EAGER.name, "reason": "precision: float32 in the plan"}
    four_d = split[int(indices[0])][0].dim() == 3 if len(indices) else False
    candidates = [SmoothingEngine(channels_last=True, bf16=True)] if device.type == "cuda" else []
    candidates += [SmoothingEngine(channels_last=True)] if four_d else []
    candidates = [c for c in candidates if c.channels_last <= four_d]
    if not candidates:
        return EAGER, {"used": EAGER.name, "reason": "no faster option applies to these images on this device"}
    probe = indices[:PROBE_IMAGES.get(device.type, 4)]
    reference = _shares(model, EAGER, split, probe, sigma, settings, num_classes, device, seed)
    tried = []
    for candidate in candidates:
        try:
            found = _shares(model, candidate, split, probe, sigma, settings, num_classes, device, seed)
        except (RuntimeError, TypeError, AttributeError) as exc:  # a model that cannot take the option
            tried.append({"options": candidate.name, "error": str(exc)[:200]})
            continue
        worst = 100 * max(abs(f[int(np.argmax(r))] - r[int(np.argmax(r))]) for f, r in zip(found, reference,
                                                                                         strict=True))
        tried.append({"options": candidate.name, "worst_difference_points": round(float(worst), 3)})
        if worst <= AGREEMENT_POINTS:
            return candidate, {"used": candidate.name, "probe_images": len(probe), "tolerance_points":
                               AGREEMENT_POINTS, "candidates": tried,
                               "reason": "the fastest option whose classes agreed with float32 eager on the probe"}
    return EAGER, {"used": EAGER.name, "probe_images": len(probe), "tolerance_points": AGREEMENT_POINTS,
                   "candidates": tried, "reason": "no option agreed with float32 eager on the probe"}
