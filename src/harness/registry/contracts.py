"""What each plugin kind promises: the data types passed between the core and plugins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from harness.data.units import NativeUnits  # defined without torch, so results and reports can use it

Norm = Literal["linf", "l2"]
AttackKind = Literal["fixed_epsilon", "minimal"]


@runtime_checkable
class Split(Protocol):
    """One split: indexable like a torch Dataset, yielding (float32 C×H×W image in [0,1], int label)."""

    labels: np.ndarray  # int64, shape (N,)
    sample_ids: list[str]  # de-identified (salted hashes or synthetic ids)
    group_ids: list[str]  # de-identified patient ids; no group crosses splits

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]: ...


class TensorSplit(torch.utils.data.Dataset):
    """An in-memory split backed by one float32 tensor N×C×H×W."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, sample_ids: Sequence[str],
                 group_ids: Sequence[str]) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
        n = images.shape[0]
        if not (len(labels) == len(sample_ids) == len(group_ids) == n):
            raise ValueError("images, labels, sample_ids and group_ids differ in length")
        self.images = images.to(torch.float32).contiguous()
        self.labels = np.asarray(labels, dtype=np.int64)
        self.sample_ids = list(sample_ids)
        self.group_ids = list(group_ids)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


@dataclass
class DatasetBundle:
    """A dataset plugin's output: splits, class names and provenance."""

    name: str
    class_names: list[str]
    splits: dict[str, Split]
    provenance: dict[str, Any]
    native_units: NativeUnits | None = None
    positive_class: int = 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """C, H, W of one image (taken from the first test image)."""
        image, _ = self.splits["test"][0]
        return tuple(image.shape)  # type: ignore[return-value]


@dataclass
class DatasetContext:
    """What a dataset plugin may use while loading."""

    seed: int
    salt: str  # per-run salt for hashing identifiers
    base_dir: Path  # directory of the plan, for relative paths
    cache_dir: Path


@dataclass
class ModelBundle:
    """A model plugin's output: an nn.Module from [0,1] images to logits, plus provenance."""

    module: nn.Module
    provenance: dict[str, Any]  # architecture, weights_sha256, source, cache_hit, training_log...


@dataclass
class ModelContext:
    """What a model plugin may use: the data (for training), device, seeds, cache and progress."""

    dataset: DatasetBundle
    device: torch.device
    seed: int
    base_dir: Path
    cache_dir: Path
    architectures: dict[str, Any]
    progress: Callable[[str, int], Any] = field(default=lambda description, total: _NullProgress())
    log: Callable[[str], None] = field(default=lambda message: None)


class _NullProgress:
    """A progress handle that does nothing."""

    def advance(self, n: int = 1) -> None:
        """Ignore progress."""

    def close(self) -> None:
        """Nothing to close."""


@dataclass
class AttackOutput:
    """Adversarial images from one attack call: one tensor per epsilon, or one for a minimal attack."""

    adversarials: list[torch.Tensor]


@runtime_checkable
class AttackPlugin(Protocol):
    """An attack: declares its norm and kind, and returns adversarial images for a batch."""

    name: str
    norm: Norm
    kind: AttackKind
    description: str
    Params: type

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
            epsilons: Sequence[float] | None, params: Any) -> AttackOutput: ...


@runtime_checkable
class DatasetPlugin(Protocol):
    """A data source: turns validated params into a DatasetBundle."""

    name: str
    description: str
    Params: type

    def load(self, params: Any, context: DatasetContext) -> DatasetBundle: ...


@runtime_checkable
class ModelPlugin(Protocol):
    """A model provider: trains or loads a model for the dataset."""

    name: str
    description: str
    Params: type

    def provide(self, params: Any, context: ModelContext) -> ModelBundle: ...


@runtime_checkable
class Architecture(Protocol):
    """A network architecture that builds an nn.Module returning logits."""

    name: str
    description: str

    def build(self, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module: ...


@dataclass
class DefenceContext:
    """What a defence plugin may use: data, device, seed, a checkpoint folder for resuming, and progress."""

    dataset: DatasetBundle
    device: torch.device
    seed: int
    cache_dir: Path
    checkpoint_dir: Path  # run_dir/checkpoints/<defence>: rounds finished so far survive an interruption
    progress: Callable[[str, int], Any] = field(default=lambda description, total: _NullProgress())
    log: Callable[[str], None] = field(default=lambda message: None)


@runtime_checkable
class DefencePlugin(Protocol):
    """A defence: fine-tunes a copy of the naive model and returns the hardened model with its training log.

    The returned ModelBundle's provenance holds at least: weights_sha256, selected_round, training_log
    (one dict per round: round, epsilon, loss, train_accuracy, val_clean_accuracy, val_robust_accuracy, seconds).
    """

    name: str
    description: str
    Params: type

    def harden(self, model: ModelBundle, params: Any, context: DefenceContext) -> ModelBundle: ...
