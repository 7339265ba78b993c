"""Adversarial examples for the report: a few test images, attacked once, saved as examples_<role>.npz.

The runner calls `save_examples` after a model's sweep. The choice of images is deterministic: clean-correct
images first, classes taken in turn, and among a small pool of candidates those the attack flips come first,
so the report shows what a successful perturbation at the susceptibility cutoff looks like.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.attacks.judge import judged_attack
from harness.data.batches import batches
from harness.plan.schema import AttackSpec
from harness.registry.contracts import Split
from harness.storage.atomic import write_bytes_atomic

POOL_FACTOR = 4  # candidates attacked per example shown


def choose_attack(attacks: Sequence[AttackSpec], registry: Any) -> AttackSpec | None:
    """The attack used for examples: the first iterative L∞ fixed-epsilon attack, else the first L∞ fixed-epsilon
    one, else any fixed one (by the plugins' declared capabilities, not their names)."""
    fixed = [spec for spec in attacks if spec.kind == "fixed_epsilon" and spec.epsilons]
    linf = [s for s in fixed if s.norm == "linf"]
    for preferred in ([s for s in linf if registry.get("attack", s.attack).iterative], linf, fixed):
        if preferred:
            return preferred[0]
    return None


def closest_epsilon(epsilons: Sequence[float], target: float) -> float:
    """The grid epsilon closest to `target` (the smaller one on a tie)."""
    return min(sorted(epsilons), key=lambda eps: abs(eps - target))


def _round_robin(groups: list[list[int]], n: int) -> list[int]:
    """Take one index from each group in turn until `n` are taken or the groups run out."""
    out: list[int] = []
    queues = [list(group) for group in groups]
    while len(out) < n and any(queues):
        for queue in queues:
            if queue and len(out) < n:
                out.append(queue.pop(0))
    return out


@torch.no_grad()
def _candidates(model: nn.Module, split: Split, device: torch.device, batch_size: int,
                n_pool: int) -> list[int]:
    """Indices of up to `n_pool` test images: clean-correct first, classes in turn, in split order."""
    labels = np.asarray(split.labels, dtype=np.int64)
    classes = sorted(set(labels.tolist()))
    correct: dict[int, list[int]] = {c: [] for c in classes}
    wrong: dict[int, list[int]] = {c: [] for c in classes}
    start = 0
    for images, batch_labels in batches(split, batch_size):
        predictions = model(images.to(device)).argmax(dim=1).cpu().numpy()
        for offset, (label, prediction) in enumerate(zip(batch_labels.numpy(), predictions, strict=True)):
            (correct if prediction == label else wrong)[int(label)].append(start + offset)
        start += len(images)
        if all(len(correct[c]) >= n_pool for c in classes):
            break  # enough clean-correct candidates of every class: the rest of the split is not needed
    chosen = _round_robin([correct[c] for c in classes], n_pool)
    if len(chosen) < n_pool:
        chosen += _round_robin([wrong[c] for c in classes], n_pool - len(chosen))
    return chosen


def save_examples(run_dir: Path, role: str, model: nn.Module, split: Split, attacks: list[AttackSpec],
                  registry: Any, device: torch.device, batch_size: int, n_examples: int, epsilon: float,
                  seed: int) -> Path | None:
    """Attack a few test images at the grid epsilon closest to `epsilon` and save run_dir/examples_<role>.npz.

    Returns the file written, or None when the plan has no fixed-epsilon attack (or nothing to show).
    """
    spec = choose_attack(attacks, registry)
    if spec is None or n_examples < 1 or len(split) == 0:
        return None
    eps = closest_epsilon(spec.epsilons, epsilon)
    plugin = registry.get("attack", spec.attack)
    torch.manual_seed(seed)
    model.eval()
    pool = _candidates(model, split, device, batch_size, max(n_examples * POOL_FACTOR, n_examples))
    clean_list, label_list, adv_list, verdicts = [], [], [], []
    for chunk_start in range(0, len(pool), max(batch_size, 1)):
        chunk = pool[chunk_start:chunk_start + max(batch_size, 1)]
        images = torch.stack([split[i][0] for i in chunk]).to(device=device, dtype=torch.float32)
        labels = torch.as_tensor([int(split.labels[i]) for i in chunk], dtype=torch.int64, device=device)
        ((adversarial, verdict),) = judged_attack(plugin, model, model, images, labels, [eps], spec.params,
                                                  spec.norm, spec.id)
        clean_list.append(images)
        label_list.append(labels)
        adv_list.append(adversarial)
        verdicts.append(verdict)
    clean = torch.cat(clean_list)
    labels = torch.cat(label_list)
    adversarial = torch.cat(adv_list)
    with torch.no_grad():
        clean_prob = torch.softmax(model(clean).float(), dim=1)
    adv_prob = torch.softmax(torch.cat([v.logits for v in verdicts]), dim=1)
    clean_conf, clean_pred = clean_prob.max(dim=1)
    adv_conf, adv_pred = adv_prob.max(dim=1)
    distance = torch.cat([v.distance for v in verdicts])
    within = torch.cat([v.valid for v in verdicts]).cpu().numpy()
    flipped = ((adv_pred != labels) & (clean_pred == labels)).cpu().numpy() & within
    # Flipped examples first, classes still taken in turn (pool order already alternates classes).
    label_np = labels.cpu().numpy()
    classes = sorted(set(label_np.tolist()))
    order = _round_robin([[k for k in range(len(pool)) if flipped[k] and label_np[k] == c] for c in classes],
                         n_examples)
    rest = [k for k in range(len(pool)) if k not in order]
    order += rest[:n_examples - len(order)]
    keep = torch.as_tensor(order, dtype=torch.int64, device=clean.device)
    picked = [pool[k] for k in order]
    arrays = {
        "clean": clean[keep].cpu().numpy().astype(np.float32),
        "adversarial": adversarial[keep].cpu().numpy().astype(np.float32),
        "labels": label_np[order].astype(np.int64),
        "clean_pred": clean_pred[keep].cpu().numpy().astype(np.int64),
        "clean_conf": clean_conf[keep].cpu().numpy().astype(np.float64),
        "adv_pred": adv_pred[keep].cpu().numpy().astype(np.int64),
        "adv_conf": adv_conf[keep].cpu().numpy().astype(np.float64),
        "perturbation_norm": distance[keep].cpu().numpy().astype(np.float64),
        "within_bound": within[order].astype(bool),
        "sample_ids": np.asarray([str(split.sample_ids[i]) for i in picked], dtype=np.str_),
        "attack_id": np.asarray(spec.id, dtype=np.str_),
        "attack": np.asarray(spec.attack, dtype=np.str_),
        "norm": np.asarray(spec.norm, dtype=np.str_),
        "epsilon": np.asarray(eps, dtype=np.float64),
        "role": np.asarray(role, dtype=np.str_),
        "seed": np.asarray(seed, dtype=np.int64),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(run_dir) / f"examples_{role}.npz"
    write_bytes_atomic(path, buffer.getvalue())
    return path
