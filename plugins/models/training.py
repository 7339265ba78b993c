"""Deterministic supervised training of a naive classifier, with augmentation, validation selection and a cache."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import DataError, ModelError
from harness.run.environment import plan_threads
from harness.storage.atomic import write_bytes_atomic
from harness_plugins.models.weights import cpu_state_dict, file_sha256, non_finite_entries, sha256_bytes

# Bump whenever a change here could change the trained weights for the same inputs (invalidates caches).
TRAINING_CODE_VERSION = 1
Log = Callable[[str], None]


@dataclass
class AugmentParams:
    """Random training augmentations, applied per sample on the device."""

    hflip: bool = True
    vflip: bool = True
    rotate90: bool = True  # multiples of 90° (only 0°/180° for non-square images)
    rotation_degrees: float = field(default=0.0, metadata={"min": 0, "max": 180})
    # per image: contrast × U(1−j, 1+j) about the image mean, then brightness + U(−j/2, j/2), clipped to [0,1]
    intensity_jitter: float = field(default=0.0, metadata={"min": 0, "max": 0.5})


@dataclass
class TrainParams:
    """Settings of the `train` model provider (the plan's `model:` mapping, minus `plugin`)."""

    architecture: str | dict[str, Any] = "small_cnn"  # a name, or {name: ..., constructor option: value}
    epochs: int = field(default=10, metadata={"min": 1, "max": 10000})
    learning_rate: float = field(default=1e-3, metadata={"gt": 0})
    batch_size: int = field(default=64, metadata={"min": 1})
    weight_decay: float = field(default=1e-4, metadata={"min": 0})
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = field(default=0.9, metadata={"min": 0, "max": 1})  # sgd only
    augment: AugmentParams = field(default_factory=AugmentParams)
    select_on_val: bool = True
    select_metric: Literal["accuracy", "auc"] = "accuracy"  # auc: val ROC AUC (macro one-vs-rest for K > 2)
    class_weighting: bool = False
    seed: int | None = None  # None: the plan's seed
    cache: bool = True
    num_threads: int | None = field(default=None, metadata={"min": 1})
    keep_model: bool = True  # false: do not link the cached weights into the run directory


@dataclass
class FitResult:
    """What training produced: per-epoch log and the epoch whose weights were kept."""

    log: list[dict[str, Any]]
    selected_epoch: int


# --------------------------------------------------------------------------- randomness and threads


@contextlib.contextmanager
def isolated_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed python, numpy and torch for the block, restoring the caller's RNG states afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    cuda = [device.index or 0] if device.type == "cuda" else []
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        with torch.random.fork_rng(devices=cuda):
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


torch_threads = plan_threads  # the run's one thread-count context (harness.run.environment)


# --------------------------------------------------------------------------- batches


def iterate_batches(split: Any, batch_size: int, order: torch.Tensor | None = None,
                    drop_single: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) CPU batches of `split` in `order`; a fast path for in-memory TensorSplits."""
    n = len(split)
    order = torch.arange(n) if order is None else order
    images_attr = getattr(split, "images", None)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if drop_single and len(idx) == 1 and n > 1:
            return  # BatchNorm cannot train on a batch of one
        if isinstance(images_attr, torch.Tensor):
            images = images_attr[idx]
            labels = torch.as_tensor(np.asarray(split.labels)[idx.numpy()], dtype=torch.long)
        else:
            items = [split[int(i)] for i in idx]
            images = torch.stack([torch.as_tensor(im, dtype=torch.float32) for im, _ in items])
            labels = torch.tensor([int(lb) for _, lb in items], dtype=torch.long)
        yield images.to(torch.float32), labels


def channel_stats(split: Any, batch_size: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of a split's images (std floored at 1e-3)."""
    total = total_sq = None
    count = 0
    for images, _ in iterate_batches(split, batch_size):
        x = images.to(torch.float64)
        dims = (0, *range(2, x.ndim))  # every axis but the channel's (2-D images and volumes alike)
        s, sq = x.sum(dim=dims), (x * x).sum(dim=dims)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += x.numel() // x.shape[1]
    if total is None or total_sq is None:
        raise DataError("the train split is empty")
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0)
    return mean.tolist(), var.sqrt().clamp_min(1e-3).tolist()


# --------------------------------------------------------------------------- augmentation


def augment_batch(images: torch.Tensor, augment: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """Random flips, 90° rotations and small rotations (affine_grid/grid_sample), drawn from `generator`."""
    n, device, rank = images.shape[0], images.device, images.ndim
    x = images
    if augment.hflip:
        x = torch.where(_coin(n, generator, device, rank), x.flip(-1), x)
    if augment.vflip:
        x = torch.where(_coin(n, generator, device, rank), x.flip(-2), x)
    if augment.rotate90:
        x = _random_rot90(x, generator)
    if augment.rotation_degrees > 0:
        x = _random_rotation(x, augment.rotation_degrees, generator)
    if augment.intensity_jitter > 0:
        x = _random_intensity(x, augment.intensity_jitter, generator)
    return x


def _coin(n: int, generator: torch.Generator, device: torch.device, rank: int = 4) -> torch.Tensor:
    """A per-sample N×1×1×1 (volumes N×1×1×1×1) boolean mask, true with probability 1/2."""
    return (torch.rand(n, generator=generator) < 0.5).view(n, *([1] * (rank - 1))).to(device)


def _random_rot90(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate each sample by a random multiple of 90° (0° or 180° when H ≠ W)."""
    square = x.shape[-1] == x.shape[-2]
    k = torch.randint(0, 4, (x.shape[0],), generator=generator)
    if not square:
        k = (k % 2) * 2
    out = x.clone()
    for turns in (1, 2, 3):
        idx = (k == turns).nonzero().flatten().to(x.device)
        if len(idx):
            out[idx] = torch.rot90(x[idx], turns, dims=(-2, -1))
    return out


def _random_rotation(x: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each sample by a uniform angle in [-degrees, degrees], bilinear, border padding (volumes: in-plane,
    every slice by the sample's angle)."""
    if x.ndim == 5:
        n, c, d, h, w = x.shape
        return _random_rotation(x.reshape(n, c * d, h, w), degrees, generator).reshape(x.shape)
    angles = (torch.rand(x.shape[0], generator=generator) * 2 - 1) * math.radians(degrees)
    cos, sin, zero = torch.cos(angles), torch.sin(angles), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _random_intensity(x: torch.Tensor, jitter: float, generator: torch.Generator) -> torch.Tensor:
    """Per sample: contrast × U(1−j, 1+j) about its mean, brightness + U(−j/2, j/2), clipped to [0,1]."""
    n = x.shape[0]
    contrast = (1 + (torch.rand(n, generator=generator) * 2 - 1) * jitter).view(n, 1, 1, 1).to(x.device, x.dtype)
    shift = ((torch.rand(n, generator=generator) - 0.5) * jitter).view(n, 1, 1, 1).to(x.device, x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean + shift).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- training loop


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Balanced loss weights n / (K · count_k); a class absent from training gets weight 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def evaluate(model: nn.Module, split: Any, device: torch.device, batch_size: int,
             loss_fn: nn.Module | None = None) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of `model` (in eval mode) on a split."""
    accuracy, loss, _ = evaluate_scores(model, split, device, batch_size)
    return accuracy, loss


def evaluate_scores(model: nn.Module, split: Any, device: torch.device,
                    batch_size: int) -> tuple[float, float, tuple[np.ndarray, np.ndarray]]:
    """Accuracy, mean cross-entropy and (labels, softmax probabilities) of `model` (in eval mode) on a split."""
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    all_labels, all_probs = [], []
    with torch.no_grad():
        for images, labels in iterate_batches(split, batch_size):
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
            n += len(labels)
            all_labels.append(labels.cpu().numpy())
            all_probs.append(torch.softmax(logits.float(), 1).cpu().numpy())
    labels_np = np.concatenate(all_labels) if all_labels else np.zeros(0, dtype=np.int64)
    probs_np = np.concatenate(all_probs) if all_probs else np.zeros((0, 0), dtype=np.float32)
    return correct / max(n, 1), loss_sum / max(n, 1), (labels_np, probs_np)


def selection_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Validation ROC AUC: of the class-1 probability for two classes, macro one-vs-rest for more."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(labels)
    if len(present) < 2:
        raise DataError("model.select_metric: auc needs at least two classes in the val split, found "
                        f"{len(present)}; use select_metric: accuracy")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    if len(present) < probs.shape[1]:
        raise DataError(f"model.select_metric: auc needs every class in the val split (found {len(present)} of "
                        f"{probs.shape[1]}); use select_metric: accuracy")
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) over the model's parameters."""
    if params.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=params.learning_rate, momentum=params.momentum,
                               weight_decay=params.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)


def fit(model: nn.Module, train: Any, val: Any | None, params: TrainParams, seed: int, num_classes: int,
        device: torch.device, progress: Any, log: Log) -> FitResult:
    """Train `model` in place; with select_on_val, restore the epoch with the best val accuracy (then loss), or
    with select_metric auc the best val ROC AUC (then accuracy, then loss); ties keep the earlier epoch."""
    weight = class_weights(train.labels, num_classes).to(device) if params.class_weighting else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimizer = make_optimizer(model, params)
    shuffle_gen = torch.Generator().manual_seed(seed)
    augment_gen = torch.Generator().manual_seed(seed + 1)
    has_val = val is not None and len(val) > 0
    if params.select_on_val and not has_val:
        log("train: no validation samples; keeping the last epoch")
    history: list[dict[str, Any]] = []
    best_key, best_state, best_epoch = None, None, params.epochs
    for epoch in range(1, params.epochs + 1):
        started = time.perf_counter()
        loss, train_acc = _train_epoch(model, train, params, loss_fn, optimizer, shuffle_gen, augment_gen,
                                       device, epoch)
        val_acc = val_loss = val_auc = None
        if has_val:
            val_acc, val_loss, (val_labels, val_probs) = evaluate_scores(model, val, device, params.batch_size)
            if params.select_metric == "auc":
                val_auc = selection_auc(val_labels, val_probs)
        entry = {"epoch": epoch, "loss": round(loss, 6), "train_accuracy": round(train_acc, 6),
                 "val_accuracy": None if val_acc is None else round(val_acc, 6),
                 "val_loss": None if val_loss is None else round(val_loss, 6),
                 **({"val_auc": round(val_auc, 6)} if val_auc is not None else {}),
                 "seconds": round(time.perf_counter() - started, 3)}
        history.append(entry)
        log(_describe_epoch(entry, params.epochs))
        progress.advance(1)
        if params.select_on_val and has_val:
            key = (val_acc, -val_loss) if val_auc is None else (val_auc, val_acc, -val_loss)
            if best_key is None or key > best_key:
                best_key, best_state, best_epoch = key, cpu_state_dict(model), epoch
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(log=history, selected_epoch=best_epoch)


def _train_epoch(model: nn.Module, train: Any, params: TrainParams, loss_fn: nn.Module,
                 optimizer: torch.optim.Optimizer, shuffle_gen: torch.Generator,
                 augment_gen: torch.Generator, device: torch.device, epoch: int = 1) -> tuple[float, float]:
    """One pass over the shuffled train split; returns mean loss and (augmented) train accuracy.

    A NaN or Inf loss stops training (ModelError) before it reaches the weights, so nothing is cached."""
    model.train()
    order = torch.randperm(len(train), generator=shuffle_gen)
    loss_sum, correct, n = 0.0, 0, 0
    for batch, (images, labels) in enumerate(iterate_batches(train, params.batch_size, order, drop_single=True), 1):
        images = augment_batch(images.to(device), params.augment, augment_gen)
        labels = labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = loss_fn(logits, labels)
        if not bool(torch.isfinite(loss)):
            raise ModelError(f"train: the training loss is {float(loss.detach())} at epoch {epoch}, batch {batch}; "
                             "training stopped and no weights were cached (check the data for NaN or Inf pixels, or "
                             "lower model.learning_rate)")
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(labels)
        correct += int((logits.detach().argmax(1) == labels).sum())
        n += len(labels)
    return loss_sum / max(n, 1), correct / max(n, 1)


def _describe_epoch(entry: dict[str, Any], epochs: int) -> str:
    """One log line for an epoch."""
    val = "" if entry["val_accuracy"] is None else f", val acc {entry['val_accuracy']:.3f}"
    if entry.get("val_auc") is not None:
        val += f", val AUC {entry['val_auc']:.3f}"
    return (f"train: epoch {entry['epoch']}/{epochs} loss {entry['loss']:.4f}, "
            f"train acc {entry['train_accuracy']:.3f}{val} ({entry['seconds']:.1f} s)")


# --------------------------------------------------------------------------- cache


def cache_key(material: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determined the weights."""
    return sha256_bytes(json.dumps(material, sort_keys=True, separators=(",", ":")).encode())


def cache_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    """The weights file and its JSON sidecar for a cache key."""
    folder = Path(cache_dir) / "models"
    return folder / f"{key}.pt", folder / f"{key}.json"


def save_cache(cache_dir: Path, key: str, data: bytes, record: dict[str, Any]) -> None:
    """Write weights then the sidecar (each atomically); a hit needs both, so a crash leaves a miss. Weights with
    NaN or Inf are refused: ModelError, nothing written."""
    bad = non_finite_entries(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    if bad:
        raise ModelError(f"train: the trained weights hold NaN or Inf ({len(bad)} tensors, e.g. {bad[0]}); they "
                         "were not cached (check the data for NaN or Inf pixels, or lower model.learning_rate)")
    weights_path, record_path = cache_paths(cache_dir, key)
    write_bytes_atomic(weights_path, data)
    write_bytes_atomic(record_path, json.dumps(record, indent=1, sort_keys=True).encode())


def load_cache(cache_dir: Path, key: str, log: Log) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The cached state dict and record for `key`, or None when absent or damaged (then logged)."""
    weights_path, record_path = cache_paths(cache_dir, key)
    if not (weights_path.is_file() and record_path.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text())
        if record.get("weights_sha256") != file_sha256(weights_path):
            raise ValueError("weights hash does not match its record")
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        bad = non_finite_entries(state)
        if bad:
            raise ValueError(f"{len(bad)} tensors hold NaN or Inf, e.g. {bad[0]}")
    except Exception as exc:  # damaged cache: removed, so nothing reuses it; retrain and overwrite
        log(f"train: ignoring and removing damaged cache entry {weights_path.name} ({exc})")
        for path in (record_path, weights_path):  # the record first: a half-removed entry is a miss
            path.unlink(missing_ok=True)
        return None
    return state, record
