"""Data-parallel adversarial fine-tuning under `torchrun`: DistributedDataParallel around the model, and each
rank's share of every batch of an epoch's shuffled order.

With one process (no process group) every helper returns the single-process behaviour unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from harness.run import distributed
from harness_plugins.models.training import iterate_batches


class _Passes(nn.Module):
    """Runs the wrapped model on each input in turn (separate BatchNorm batches), as one DDP forward call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.inner(x) for x in inputs)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model to train: DDP (gradients averaged over ranks) when distributed, else `model` itself."""
    if not distributed.is_distributed():
        return model
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(_Passes(model), device_ids=device_ids)  # buffers: rank 0's at each forward


def plain(model: nn.Module) -> nn.Module:
    """The model behind a DDP wrapper: attacks and no-grad passes use it (DDP expects one backward per forward)."""
    if isinstance(model, DistributedDataParallel):
        return model.module.inner
    return model


def train_forward(model: nn.Module, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Train-mode forward passes of `inputs`; through DDP they are one call, so one backward syncs gradients."""
    if isinstance(model, DistributedDataParallel):
        return model(*inputs)
    return tuple(model(x) for x in inputs)


def train_batches(split: Any, batch_size: int, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's (images, labels) batches of one epoch in `order`.

    One process: batches of `batch_size`, a final batch of one image skipped (BatchNorm). Under torchrun: every
    global batch of `batch_size` is split into near-equal contiguous parts, rank r training on part r (the same
    number of steps and the same global batch as one process); a final batch too small to give each rank two
    images is skipped."""
    if not distributed.is_distributed():
        yield from iterate_batches(split, batch_size, order, drop_single=True)
        return
    world, rank = distributed.world_size(), distributed.rank()
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        if len(batch) < 2 * world:
            return
        part = batch.tensor_split(world)[rank]
        yield next(iterate_batches(split, len(part), part))
