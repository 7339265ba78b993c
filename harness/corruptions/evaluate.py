"""Judge corrupted test images: each batch corrupted at every severity, then classified by the float32 model.

Nothing is attacked here: the model sees the corrupted images exactly as it sees clean ones
(harness.data.batches.batch_logits). Each image's corruption depends only on (seed, corruption, global index),
so the predictions do not depend on the batch size or on a resumed run; with `checkpoint`, the predictions so far
are saved after every batch and a rerun continues from the first unfinished batch.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.data.batches import batch_logits, batch_range, load_batch, n_batches
from harness.plan.corruptions import CorruptionSpec
from harness.registry.contracts import CorruptionContext, CorruptionPlugin, Split
from harness.storage.atomic import write_bytes_atomic

NOT_RUN = -1  # a prediction slot not yet filled


def severity_params(plugin: CorruptionPlugin, spec: CorruptionSpec) -> list[Any]:
    """The plugin's parameters at each severity of the spec (the plan's overrides kept)."""
    return [plugin.params_for(level, spec.params) for level in spec.severities]


def corrupted_predictions(model: nn.Module, split: Split, plugin: CorruptionPlugin, spec: CorruptionSpec,
                          context: CorruptionContext, batch_size: int, device: torch.device,
                          checkpoint: Path | None = None,
                          on_batch: Callable[[int], None] | None = None, run_fingerprint: str = "") -> np.ndarray:
    """The predicted class of every test image at every severity of the spec: int64 [n_severities, N]. A checkpoint
    is reused only when it was made under the same settings and `run_fingerprint` (harness.run.fingerprint)."""
    n = len(split)
    params = severity_params(plugin, spec)
    state = _PredictionState.load(checkpoint, (len(params), n), f"n={n};severities={spec.severities};"
                                  f"batch={batch_size};params={spec.params_dict()!r};seed={context.seed};"
                                  f"run={run_fingerprint}")
    done = sum(len(batch_range(b, n, batch_size)) for b in range(state.next_batch))
    if on_batch and done:
        on_batch(done)
    for batch_index in range(state.next_batch, n_batches(n, batch_size)):
        rows = batch_range(batch_index, n, batch_size)
        images, _ = load_batch(split, rows)
        for k, level_params in enumerate(params):
            corrupted = plugin.apply(images, list(rows), level_params, context)
            logits = batch_logits(model, corrupted, device, f"images corrupted by {spec.id}")
            state.predictions[k, rows.start:rows.stop] = logits.argmax(axis=1)
        state.next_batch = batch_index + 1
        state.save(checkpoint)
        if on_batch:
            on_batch(len(rows))
    return state.predictions


@dataclass
class _PredictionState:
    """Predictions so far and the next batch to do, saved after each batch."""

    next_batch: int
    predictions: np.ndarray
    fingerprint: str

    @classmethod
    def load(cls, path: Path | None, shape: tuple[int, int], fingerprint: str) -> _PredictionState:
        fresh = cls(0, np.full(shape, NOT_RUN, dtype=np.int64), fingerprint)
        if path is None or not path.exists():
            return fresh
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["fingerprint"]) != fingerprint:
                return fresh  # made with other settings: start this corruption again
            return cls(int(saved["next_batch"]), saved["predictions"].copy(), fingerprint)

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        buffer = io.BytesIO()
        np.savez(buffer, next_batch=self.next_batch, predictions=self.predictions, fingerprint=self.fingerprint)
        write_bytes_atomic(path, buffer.getvalue())
