"""bf16 for the noise samples on CUDA, used only where it agrees with float32, by `engine: auto`'s rule.

On CUDA, with `precision: auto`, up to PROBE_IMAGES test images get n0 noisy copies each (the same noise for both)
classified in float32 and under bf16 autocast. bf16 is used when, on every probe image, the share of copies given
float32's top class differs by at most AGREEMENT_POINTS percentage points (the tolerance `engine: auto` allows
between an attack's success rates). On the CPU, or with `precision: float32`, noise samples run in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from harness.attacks.engine.auto import AGREEMENT_POINTS
from harness.attacks.sweep import batch_seed
from harness.certification.smoothing import class_counts
from harness.plan.certification import CertificationSettings
from harness.registry.contracts import Split

PROBE_IMAGES = 16


def choose_bf16(model: nn.Module, split: Split, indices: np.ndarray, sigma: float, settings: CertificationSettings,
                num_classes: int, device: torch.device, seed: int) -> tuple[bool, dict[str, Any]]:
    """Whether the noise samples at `sigma` run under bf16, and what the manifest records about the choice."""
    if settings.precision == "float32":
        return False, {"used": "float32", "reason": "precision: float32 in the plan"}
    if device.type != "cuda":
        return False, {"used": "float32", "reason": f"float32 on {device.type} (bf16 is used on CUDA only)"}
    shares = []
    for index in indices[:PROBE_IMAGES]:
        image = split[int(index)][0]
        counts = [class_counts(model, image, sigma, settings.n0, settings.batch_size,
                               torch.Generator().manual_seed(batch_seed(seed, "certification-probe", index)),
                               num_classes, device, bf16) for bf16 in (False, True)]
        top = int(np.argmax(counts[0]))
        shares.append(abs(counts[0][top] - counts[1][top]) / max(1, settings.n0))
    worst = 100 * max(shares, default=0.0)
    agrees = worst <= AGREEMENT_POINTS
    return agrees, {"used": "bf16" if agrees else "float32", "probe_images": len(shares),
                    "worst_difference_points": round(worst, 3), "tolerance_points": AGREEMENT_POINTS,
                    "reason": ("bf16 agreed with float32 on the probe" if agrees else
                               "bf16 disagreed with float32 on the probe: float32 kept")}
