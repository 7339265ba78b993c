"""`batch_size: auto`: the largest batch whose forward+backward w.r.t. the input fits the device."""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.attacks.engine.model_probe import input_gradient_of_logit_sum
from harness.attacks.model_mode import eval_mode

DEVICE_MEMORY_FRACTION = 0.8  # auto_batch_size keeps the forward+backward peak under this share of the device
# CPU: small batches stay in cache; small_cnn 64×64 input-gradient throughput (1 thread) fell from 280 images/s at
# batch 16–32 to 220 at 64 and 135 at 256, so the CPU rule aims at ~32 images of 64×64 per batch.
CPU_BATCH_PIXELS = 32 * 64 * 64
CPU_MIN_BATCH, CPU_MAX_BATCH = 4, 64


def auto_batch_size(model: nn.Module, sample_shape: tuple[int, ...], device: torch.device, start: int = 1024,
                    limit: int | None = None) -> int:
    """The batch size for attacks: the largest power of two whose forward+backward w.r.t. the input fits.

    On CUDA, batches from `start` (capped at the power of two ≥ `limit`, e.g. the test-set size) are tried
    with random inputs and halved on out-of-memory or when the peak passes 80 % of the device memory; the
    attack itself holds a few more batch-sized tensors, which the margin leaves room for. Elsewhere a fixed
    size by image size: about 32 × 64×64 input values per batch (32 at 1×64×64, 8 at 1×128×128, 4 from 1×224×224).
    """
    device = torch.device(device)
    shape = tuple(sample_shape)  # C×H×W or C×D×H×W
    cap = start if limit is None else min(start, 1 << max(0, math.ceil(math.log2(max(1, limit)))))
    if device.type != "cuda":
        return max(1, min(_cpu_batch_size(shape), cap))
    batch = 1 << max(0, int(math.log2(max(1, cap))))
    total = torch.cuda.get_device_properties(device).total_memory
    while batch > 1:
        if _fits(model, shape, batch, device, total):
            return batch
        batch //= 2
    return 1



def input_mib_per_batch(sample_shape: tuple[int, ...], batch: int) -> float:
    """MiB one float32 batch of inputs takes (an attack holds a few such tensors plus the model's activations)."""
    return round(batch * math.prod(sample_shape) * 4 / 2**20, 3)


def _cpu_batch_size(shape: tuple[int, ...]) -> int:
    """About CPU_BATCH_PIXELS input values per batch, as a power of two in [CPU_MIN_BATCH, CPU_MAX_BATCH]."""
    per_image = max(1, math.prod(shape))
    batch = 1 << max(0, int(math.log2(max(1, CPU_BATCH_PIXELS // per_image))))
    return max(CPU_MIN_BATCH, min(CPU_MAX_BATCH, batch))


def _fits(model: nn.Module, shape: tuple[int, ...], batch: int, device: torch.device, total: int) -> bool:
    """Whether forward+backward w.r.t. a batch of this size runs and peaks under the memory margin."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    ran = False
    try:
        with eval_mode(model):
            input_gradient_of_logit_sum(model, torch.rand((batch, *shape), device=device))
        torch.cuda.synchronize(device)
        ran = True
    except torch.cuda.OutOfMemoryError:
        pass
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
    torch.cuda.empty_cache()  # outside the handler, once the failed attempt's tensors are unreachable
    return ran and torch.cuda.max_memory_allocated(device) <= DEVICE_MEMORY_FRACTION * total



