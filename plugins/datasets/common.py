"""Helpers shared by the in-memory dataset plugins (phantom_ct, npz): splits, hashes, counts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from harness.errors import PlanError
from harness.registry.contracts import TensorSplit

SPLITS = ("train", "val", "test")


def fractions_from_list(values: Sequence[float], key: str) -> dict[str, float]:
    """Turn [train, val, test] fractions into a mapping; PlanError (naming `key`) if malformed."""
    if len(values) != len(SPLITS):
        raise PlanError(f"expected 3 fractions [train, val, test], got {list(values)}", key=key)
    if values[0] <= 0 or values[2] <= 0:
        raise PlanError(f"train and test fractions must be > 0, got {list(values)}", key=key)
    return {name: float(v) for name, v in zip(SPLITS, values, strict=True)}


def describe_fractions(fractions: Mapping[str, float]) -> str:
    """E.g. '0.7/0.15/0.15 (train/val/test)'."""
    return "/".join(f"{fractions[s]:g}" for s in SPLITS) + " (train/val/test)"


def build_splits(images: np.ndarray, labels: np.ndarray, sample_ids: Sequence[str],
                 group_ids: Sequence[str], assignment: np.ndarray,
                 metadata: Mapping[str, Sequence[str]] | None = None) -> dict[str, TensorSplit]:
    """Cut N×C×H×W float32 `images` (and per-sample subgroup metadata) into TensorSplits by the per-sample split
    names in `assignment`."""
    splits = {}
    for name in SPLITS:
        idx = np.flatnonzero(assignment == name)
        splits[name] = TensorSplit(torch.from_numpy(np.ascontiguousarray(images[idx])), labels[idx],
                                   [sample_ids[i] for i in idx], [group_ids[i] for i in idx],
                                   {attribute: [str(values[i]) for i in idx]
                                    for attribute, values in (metadata or {}).items()})
    return splits


def content_sha256(splits: Mapping[str, TensorSplit], with_ids: bool = False) -> str:
    """SHA-256 over each split's name, image bytes (float32) and label bytes (int64), in split order; `with_ids`
    adds the sample and patient ids (a reader whose ids come from its manifest)."""
    digest = hashlib.sha256()
    for name in SPLITS:
        split = splits[name]
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(split.images.numpy()).tobytes())
        digest.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
        if with_ids:
            digest.update("\n".join(split.sample_ids).encode() + b"\0" + "\n".join(split.group_ids).encode())
    return digest.hexdigest()


def class_counts(splits: Mapping[str, TensorSplit], class_names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Samples per split and class, e.g. {'train': {'benign': 10, 'malignant': 12}, ...}."""
    counts = {}
    for name in SPLITS:
        labels = np.asarray(splits[name].labels)
        counts[name] = {cls: int(np.sum(labels == k)) for k, cls in enumerate(class_names)}
    return counts


def group_counts(splits: Mapping[str, TensorSplit]) -> dict[str, int]:
    """Distinct groups (patients) per split."""
    return {name: len(set(splits[name].group_ids)) for name in SPLITS}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
