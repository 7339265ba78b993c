"""One attack's sweep over a split, with bound checks per sample, resumable and sharded by whole batches."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.attacks.judge import BOUND_TOLERANCE, judged_attack
from harness.attacks.schedule import SCHEDULES
from harness.data.batches import batch_range, load_batch, merge_by_batch, shard_batches
from harness.plan.schema import AttackSpec
from harness.registry.contracts import AttackPlugin, Split
from harness.results.attack_outcome import AttackOutcome
from harness.storage.atomic import write_bytes_atomic


def batch_seed(seed: int, *parts: object) -> int:
    """A seed for one unit of work, independent of the order units run in."""
    text = ":".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & 0x7FFFFFFFFFFFFFFF


def run_attack(model: nn.Module, split: Split, spec: AttackSpec, plugin: AttackPlugin, clean_pred: np.ndarray,
               batch_size: int, device: torch.device, seed: int, model_role: str,
               on_batch: Callable[[int], None] | None = None, checkpoint: Path | None = None,
               judge: nn.Module | None = None, shard: tuple[int, int] = (0, 1),
               run_fingerprint: str = "") -> AttackOutcome:
    """Attack every image of a split (or, with `shard=(rank, world)`, that rank's whole batches r, r+N, ...);
    each adversarial is checked against its bound before it counts.

    `model` crafts the adversarials (it may be a compiled or reduced-precision copy); `judge` (default: `model`),
    the float32 eager model, decides whether each one fools it.

    Fixed-epsilon attacks aim at the true label. Minimal attacks aim at the clean prediction, so every image
    (misclassified ones too) gets its smallest perturbation that changes the model's decision.
    With `checkpoint`, the per-sample state is saved atomically after every batch and a rerun continues from
    the first unfinished batch; per-batch seeds (by global batch index) make the continued or sharded result
    equal to an uninterrupted single-process one. A shard fills only its own samples: see `merge_outcomes`.
    The checkpoint stores `run_fingerprint` (harness.run.fingerprint: model weights, data, settings, versions)
    and is continued only under the same one.
    """
    clean_correct = clean_pred == np.asarray(split.labels)
    minimal = spec.kind == "minimal"
    epsilons = list(spec.epsilons)
    n = len(split)
    state = _AttackState.load(checkpoint, n, epsilons, minimal, batch_size, shard, spec.schedule, run_fingerprint)
    mine = list(shard_batches(n, batch_size, *shard))
    done = sum(len(batch_range(index, n, batch_size)) for index in mine[:state.next_batch])
    if on_batch and done:
        on_batch(done)
    for batch_index in mine[state.next_batch:]:
        rows = batch_range(batch_index, n, batch_size)
        images, labels = load_batch(split, rows)
        images, labels = images.to(device), labels.to(device)
        start, stop = rows.start, rows.stop
        wrong_clean = ~clean_correct[start:stop]
        if minimal:
            _minimal_batch(model, judge or model, images, clean_pred[start:stop], spec, plugin, state, start,
                           stop, wrong_clean, batch_seed(seed, model_role, spec.id, batch_index))
        else:
            _fixed_batch(model, judge or model, images, labels, spec, plugin, state, start, stop, wrong_clean,
                         lambda k, b=batch_index: batch_seed(seed, model_role, spec.id, b, k),
                         batch_size if getattr(model, "static_shapes", False) else None)
        state.next_batch += 1
        state.save(checkpoint)
        if on_batch:
            on_batch(len(images))
    return AttackOutcome(epsilons=epsilons, success=state.success, violations=state.violations,
                         min_epsilon=state.min_eps if minimal else None)


def merge_outcomes(parts: list[AttackOutcome], batch_size: int) -> AttackOutcome:
    """One outcome from every rank's shard (in rank order): each sample from the rank that owns its batch,
    bound violations summed."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    min_epsilon = None if first.min_epsilon is None else merge_by_batch([p.min_epsilon for p in parts], batch_size)
    return AttackOutcome(epsilons=list(first.epsilons),
                         success=merge_by_batch([p.success for p in parts], batch_size),
                         violations=np.sum([p.violations for p in parts], axis=0).astype(np.int64),
                         min_epsilon=min_epsilon)


def _fixed_batch(model: nn.Module, judge: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: AttackSpec,
                 plugin: AttackPlugin, state: _AttackState, start: int, stop: int, wrong_clean: np.ndarray,
                 seed_for: Callable[[int], int], static_batch: int | None) -> None:
    """The spec's schedule (harness.attacks.schedule) over this batch; clean-misclassified images count as broken.

    With `static_batch`, every attack call gets exactly that many images (the rows attacked, padded by repeating
    the last one), so a compiled model sees one batch shape; the padding's results are discarded.
    """
    def attack_at(k: int, rows: np.ndarray) -> tuple[np.ndarray, int]:
        padded = rows if static_batch is None else np.resize(rows, max(static_batch, len(rows)))
        index = torch.as_tensor(padded, device=images.device)
        ((_, verdict),) = judged_attack(plugin, model, judge, images[index], labels[index], [spec.epsilons[k]],
                                        spec.params, spec.norm, spec.id, seed_for(k))
        fooled, _, valid = (array[:len(rows)] for array in verdict.as_numpy())
        return fooled & valid, int((~valid).sum())

    success, violations = SCHEDULES[spec.schedule](len(spec.epsilons), wrong_clean, attack_at)
    state.success[:, start:stop] = success
    state.violations += violations


def _minimal_batch(model: nn.Module, judge: nn.Module, images: torch.Tensor, clean_pred: np.ndarray, spec: AttackSpec,
                   plugin: AttackPlugin, state: _AttackState, start: int, stop: int, wrong_clean: np.ndarray,
                   seed: int) -> None:
    """Each image's smallest perturbation that changes the model's decision (aimed at its clean prediction)."""
    target = torch.as_tensor(clean_pred, dtype=torch.int64, device=images.device)
    ((_, verdict),) = judged_attack(plugin, model, judge, images, target, None, spec.params, spec.norm, spec.id, seed)
    flipped, distance, valid = verdict.as_numpy()
    state.min_eps[start:stop] = np.where(flipped & valid, distance, np.inf)
    for k, eps in enumerate(spec.epsilons):
        state.success[k, start:stop] = wrong_clean | (state.min_eps[start:stop] <= eps + BOUND_TOLERANCE)


@dataclass
class _AttackState:
    """Per-sample progress of one attack, saved after each batch so an interrupted sweep can continue."""

    next_batch: int
    success: np.ndarray
    violations: np.ndarray
    min_eps: np.ndarray
    fingerprint: str

    @classmethod
    def load(cls, path: Path | None, n: int, epsilons: list[float], minimal: bool, batch_size: int,
             shard: tuple[int, int] = (0, 1), schedule: str = "ascending", run_fingerprint: str = "") -> _AttackState:
        fingerprint = f"n={n};eps={epsilons!r};minimal={minimal};batch={batch_size};run={run_fingerprint}"
        if schedule != "ascending":
            fingerprint += f";schedule={schedule}"
        if shard[1] > 1:
            fingerprint += f";shard={shard[0]}/{shard[1]}"  # next_batch counts this rank's batches only
        fresh = cls(0, np.zeros((len(epsilons), n), dtype=bool), np.zeros(len(epsilons), dtype=np.int64),
                    np.full(n, np.inf), fingerprint)
        if path is None or not path.exists():
            return fresh
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["fingerprint"]) != fingerprint:
                return fresh  # made with other settings: start this attack again
            return cls(int(saved["next_batch"]), saved["success"].copy(), saved["violations"].copy(),
                       saved["min_eps"].copy(), fingerprint)

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        buffer = io.BytesIO()
        np.savez(buffer, next_batch=self.next_batch, success=self.success, violations=self.violations,
                 min_eps=self.min_eps, fingerprint=self.fingerprint)
        write_bytes_atomic(path, buffer.getvalue())
