"""A split in batches: streaming, sharding by whole batches across ranks (rank r: batches r, r+N, ...), merging
every rank's per-sample arrays, and a model's logits per batch. The attack sweep, the corruption stage and the
defences' validation all batch through this module."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from harness.errors import DistributedError, ModelError
from harness.registry.contracts import Split


def check_finite_logits(logits: torch.Tensor, what: str) -> None:
    """ModelError when a model returns NaN or Inf logits."""
    if not torch.isfinite(logits).all():
        raise ModelError(f"the model returned NaN or Inf logits on {what}; the metrics would be meaningless")


def batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Stream (images, labels) batches in order; memory is bounded by the batch."""
    loader = DataLoader(split, batch_size=batch_size, shuffle=False, num_workers=0)
    for images, labels in loader:
        yield images, labels.to(torch.int64)


@torch.no_grad()
def batch_logits(model: nn.Module, images: torch.Tensor, device: torch.device,
                 what: str = "clean images") -> np.ndarray:
    """Logits (n×K float32) of one batch of [0,1] images; ModelError for non-finite pixels or logits."""
    if not torch.isfinite(images).all():
        raise ModelError(f"the {what} contain NaN or Inf pixel values")
    logits = model(images.to(device)).float()
    check_finite_logits(logits, what)
    return logits.cpu().numpy()


def predict_logits(model: nn.Module, split: Split, batch_size: int, device: torch.device,
                   on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Logits (N×K float32) for every image of a split."""
    outputs = []
    for images, _ in batches(split, batch_size):
        outputs.append(batch_logits(model, images, device))
        if on_batch:
            on_batch(len(images))
    return np.concatenate(outputs, axis=0)


def load_batch(split: Split, rows: range) -> tuple[torch.Tensor, torch.Tensor]:
    """The (images, labels) of one batch: consecutive samples `rows` of the split."""
    return next(batches(Subset(split, rows) if len(rows) != len(split) else split, len(rows)))


def n_batches(n: int, batch_size: int) -> int:
    """How many batches of `batch_size` cover n samples (the last may be short)."""
    return -(-n // batch_size) if n > 0 else 0


def shard_batches(n: int, batch_size: int, rank_: int, world: int) -> range:
    """The global batch indices rank `rank_` of `world` handles: r, r+N, r+2N, ... (possibly none)."""
    return range(rank_, n_batches(n, batch_size), world)


def batch_range(index: int, n: int, batch_size: int) -> range:
    """The sample indices of global batch `index`."""
    return range(index * batch_size, min(n, (index + 1) * batch_size))


def owned_mask(n: int, batch_size: int, rank_: int, world: int) -> np.ndarray:
    """Boolean [n]: the samples inside rank `rank_`'s batches."""
    mask = np.zeros(n, dtype=bool)
    for index in shard_batches(n, batch_size, rank_, world):
        batch = batch_range(index, n, batch_size)
        mask[batch.start:batch.stop] = True
    return mask


def shard_size(n: int, batch_size: int, rank_: int, world: int) -> int:
    """How many samples rank `rank_` handles."""
    return sum(len(batch_range(i, n, batch_size)) for i in shard_batches(n, batch_size, rank_, world))


def merge_by_batch(parts: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """One array from every rank's copy (same shape, samples on the last axis), each sample from its owner."""
    merged = np.array(parts[0], copy=True)
    n, world = merged.shape[-1], len(parts)
    for rank_, part in enumerate(parts):
        if part.shape != merged.shape:
            raise DistributedError(f"rank {rank_} returned shape {part.shape}, rank 0 {merged.shape}")
        mask = owned_mask(n, batch_size, rank_, world)
        merged[..., mask] = part[..., mask]
    return merged
