"""What each plugin kind promises: the data types passed between the core and plugins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from harness.registry.severities import SEVERITY_LEVELS  # noqa: F401 - re-exported: part of the corruption contract
from harness.registry.units import NativeUnits  # defined without torch, so results and reports can use it
from harness.storage.deid import FileNamer
from harness.storage.paths import check_data_file

Norm = Literal["linf", "l2"]
AttackKind = Literal["fixed_epsilon", "minimal"]
Identifiers = Literal["from_source", "synthetic"]  # what a data set's sample and group ids are (see DatasetPlugin)
Modality = Literal["CT", "MRI", "MG", "XR", "US", "PET", "other"]  # a data set's imaging modality (MG: mammography)


@runtime_checkable
class Split(Protocol):
    """One split: indexable like a torch Dataset, yielding (float32 C×H×W image, or C×D×H×W volume, in [0,1], int
    label).

    Optional `metadata: dict[str, list[str]]`: per-sample subgroup attributes (e.g. manufacturer, sex, age_band,
    slice_thickness, site), one string per sample, 'unknown' where missing. Values are categories, never names,
    ids or dates: bucket ages and measurements into bands (harness.data.metadata checks this). A plan's
    `subgroups` reads them from the test split.
    """

    labels: np.ndarray  # int64, shape (N,)
    sample_ids: list[str]  # unique per sample; replaced by keyed hashes in the core unless the ids are synthetic
    group_ids: list[str]  # patient (or other grouping) ids; no group crosses splits

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]: ...


class TensorSplit(torch.utils.data.Dataset):
    """An in-memory split backed by one float32 tensor N×C×H×W (images) or N×C×D×H×W (volumes)."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, sample_ids: Sequence[str],
                 group_ids: Sequence[str], metadata: dict[str, list[str]] | None = None) -> None:
        if images.ndim not in (4, 5):
            raise ValueError(f"images must be N×C×H×W or N×C×D×H×W, got shape {tuple(images.shape)}")
        n = images.shape[0]
        if not (len(labels) == len(sample_ids) == len(group_ids) == n):
            raise ValueError("images, labels, sample_ids and group_ids differ in length")
        self.images = images.to(torch.float32).contiguous()
        self.labels = np.asarray(labels, dtype=np.int64)
        self.sample_ids = list(sample_ids)
        self.group_ids = list(group_ids)
        self.metadata = {name: list(values) for name, values in (metadata or {}).items()}

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


@dataclass
class DatasetBundle:
    """A dataset plugin's output: splits, class names, provenance and what is known of the images' physics."""

    name: str
    class_names: list[str]
    splits: dict[str, Split]
    provenance: dict[str, Any]
    native_units: NativeUnits | None = None
    positive_class: int = 1
    modality: Modality | None = None  # as the data (or the plan) says; None when unknown
    pixel_spacing_mm: float | None = None  # in-plane pixel size of the images as loaded (after any resize)
    voxel_spacing_mm: tuple[float, float, float] | None = None  # volumes: D, H, W voxel size as loaded (mm)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """C, H, W of one image, or C, D, H, W of one volume (taken from the first test image)."""
        image, _ = self.splits["test"][0]
        return tuple(image.shape)  # type: ignore[return-value]


@dataclass
class DatasetContext:
    """What a dataset plugin may use while loading.

    A plugin that reads files names them in messages and provenance only through `name_file` (file names can
    carry patient names), and passes every file it opens through `check_file` (the plan's sandbox).
    """

    seed: int
    base_dir: Path  # directory of the plan, for relative paths
    cache_dir: Path
    show_paths: bool = False  # the plan's `show_paths`: outputs may show folder-relative file paths
    sandbox_roots: tuple[Path, ...] = ()  # the plan's `sandbox: true`: files must resolve inside one of these
    file_namer: Callable[[str], str] | None = None  # set by the core (harness.data.loading), keyed with its secret

    def __post_init__(self) -> None:
        if self.file_namer is None:
            self.file_namer = FileNamer(show_paths=self.show_paths)

    def name_file(self, relative_path: str) -> str:
        """How messages and provenance name a data file: 'file <short keyed hash>' (plus the path with
        show_paths)."""
        return self.file_namer(relative_path)  # type: ignore[misc]

    def check_file(self, path: Path, relative_path: str) -> Path:
        """The file's real path (symlinks resolved); DataError naming it when the sandbox is on and it resolves
        outside the sandbox."""
        return check_data_file(path, self.sandbox_roots, self.name_file(relative_path))


@dataclass
class ModelBundle:
    """A model plugin's output: an nn.Module from [0,1] images to logits, plus provenance."""

    module: nn.Module
    provenance: dict[str, Any]  # architecture, weights_sha256, source, cache_hit, training_log...
    differentiable: bool = True  # False: no input gradients (e.g. ONNX through onnxruntime); gradient-free attacks only


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
    output: str = "logits"  # the plan's output contract: logits, sigmoid_logit, probabilities, sigmoid_probability


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
    """An attack: declares its norm, kind and capabilities, and returns adversarial images for a batch.

    The core reads the capabilities, never the attack's name: `iterative` and `requires_gradients` decide which
    indicator checks apply and which models it can attack, `strengthen` how the indicators make it stronger.
    """

    name: str
    norm: Norm  # the norm its ε bounds: "linf" or "l2"
    kind: AttackKind  # "fixed_epsilon": one adversarial per ε; "minimal": each image's smallest flipping perturbation
    description: str
    Params: type  # dataclass of the plan keys it takes (validated by the plan loader)
    iterative: bool  # more than one step or query per ε (PGD, BIM, APGD, Square); False for single-step (FGSM)
    requires_gradients: bool  # follows input gradients; False for score-based attacks (Square) that read logits only

    def strengthen(self, params: Any, steps_factor: int, restarts: int) -> Any | None:
        """Params for a stronger run of the same attack: `steps_factor`× the steps (or queries) and `restarts`
        restarts; None when it cannot be strengthened that way (single-step, deterministic or minimal)."""
        ...

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
            epsilons: Sequence[float] | None, params: Any) -> AttackOutput:
        """Adversarials for one batch of [0,1] images: one tensor per ε (fixed_epsilon) or one (minimal).

        The core checks every adversarial against its bound and judges it with the float32 eager model.
        """
        ...


@runtime_checkable
class DatasetPlugin(Protocol):
    """A data source: turns validated params into a DatasetBundle.

    `identifiers` says what the sample and group ids of its splits are. "from_source": taken from the data (file
    names, DICOM UIDs, patient ids); the core replaces every one with a keyed hash (harness.storage.deid) before any
    other code sees it, so a plugin never handles the secret and never has to remember to hash. "synthetic": made
    up by the plugin and naming no person (generated phantoms); kept as they are. The bundle's provenance must
    carry `content_sha256`, a hash of everything loaded (images, labels, split assignment).
    """

    name: str
    description: str
    identifiers: Identifiers
    Params: type

    def load(self, params: Any, context: DatasetContext) -> DatasetBundle: ...


@runtime_checkable
class ModelPlugin(Protocol):
    """A model provider: trains or loads a model for the dataset.

    needs_training_data: True when it trains on the train/val splits; a supplied model needs only a test split.
    """

    name: str
    description: str
    Params: type
    needs_training_data: bool

    def provide(self, params: Any, context: ModelContext) -> ModelBundle: ...


@runtime_checkable
class Architecture(Protocol):
    """A network architecture that builds the bare nn.Module returning logits (no preprocessing).

    Options are the plan's `architecture: {name: ..., option: value}`; an architecture that takes options also
    has `check_options(options, key)` and `describe(in_channels, num_classes, image_size, options)` (every
    constructor argument in effect, for the manifest and the weight cache). `image_size` is (H, W), or (D, H, W)
    for volumes; an architecture that cannot take the rank raises ModelError.
    """

    name: str
    description: str

    def build(self, in_channels: int, num_classes: int, image_size: tuple[int, ...],
              **options: Any) -> nn.Module: ...


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



@dataclass(frozen=True)
class Severity:
    """One of a corruption's five levels: its number (1 = slightest), a name and its parameter's value."""

    level: int
    name: str
    value: float  # the value of the corruption's `parameter`, in its `unit`


@dataclass(frozen=True)
class CorruptionContext:
    """What a corruption may use besides the images: the run seed and what is known of the images' physics.

    native_offset is the native value of pixel 0.0 (e.g. -1350 HU for a lung window W1500 L-600); pixel_spacing_mm
    is the in-plane pixel size of the images as the model sees them (voxel_spacing_mm: D, H, W of a volume). None
    means unknown: a corruption that needs it raises DataError instead of guessing.
    """

    seed: int
    native_units: NativeUnits | None = None
    native_offset: float | None = None
    pixel_spacing_mm: float | None = None
    voxel_spacing_mm: tuple[float, float, float] | None = None  # volumes only: D, H, W voxel size in mm


@runtime_checkable
class CorruptionPlugin(Protocol):
    """A natural corruption or acquisition shift with five named severities, deterministic given its seed.

    `severities` holds exactly five Severity entries, levels 1..5 in order of increasing harm; each sets the Params
    field named by `parameter` (whose unit is `unit`, e.g. "HU", "mm FWHM", "JPEG quality"). `requires_unit` is the
    NativeUnits.unit the parameter is expressed in (e.g. "HU"), or None when it is defined on [0,1] intensities.
    `params_for(level, base)` returns `base` (default: Params()) with the parameter set to that level's value.
    `apply` returns new float32 images of the same shape and device, in [0,1]; image i depends only on
    (context.seed, the plugin's name, indices[i], images[i], params), never on the batch it came in.
    """

    name: str
    description: str
    modality: str  # "CT", "MRI" or "any"
    requires_unit: str | None
    parameter: str
    unit: str
    severities: tuple[Severity, ...]
    Params: type

    def params_for(self, level: int, base: Any | None = None) -> Any: ...

    def apply(self, images: torch.Tensor, indices: Sequence[int], params: Any,
              context: CorruptionContext) -> torch.Tensor: ...
