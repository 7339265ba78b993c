"""Dataset plugin 'npz': images and labels from one NumPy .npz file (optional split, patient_ids, class_names).

Keys: `images` (N×H×W, N×C×H×W or N×H×W×C; uint8, uint16 or float), `labels` (N integers), optional `split`
(strings train/val/test), optional `patient_ids` (strings; the core replaces them by keyed
hashes), optional `class_names`, optional `meta_<attribute>` (one string per image: subgroup attributes such as
`meta_sex` or `meta_site`; categories only, never names or ids). Without `split`, a patient-grouped,
label-stratified split is made.
`volumes: true` reads `images` as N×D×H×W (or N×C×D×H×W) volumes, with `voxel_spacing_mm: [d, h, w]`.
`image_size` resizes every image to a square (e.g. 224 as in the study). `max_per_split` keeps, per split,
whole patients in seeded order, always from the majority label with the fewest samples taken so far, skipping
patients that would overflow the cap (if no patient fits, the split's first rows are kept).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.data.splits import grouped_stratified_split
from harness.errors import DataError, PlanError
from harness.plan.params import plan_path
from harness.registry.contracts import DatasetBundle, DatasetContext, Modality, NativeUnits
from harness.registry.hookspecs import hookimpl
from harness_plugins.datasets.common import (
    SPLITS,
    build_splits,
    class_counts,
    content_sha256,
    describe_fractions,
    file_sha256,
    fractions_from_list,
    group_counts,
)
from harness_plugins.datasets.readers.geometry import Geometry, ResizeParams, resize

_SMALL_CHANNELS = (1, 3, 4)
META_PREFIX = "meta_"  # keys holding per-image subgroup attributes


@dataclass
class NpzParams:
    """Parameters of the NPZ loader; only `path` is required."""

    path: str
    class_names: list[str] | None = None
    scale: Literal["auto", "value_range"] = "auto"
    value_range: list[float] | None = None
    clip: bool = False
    layout: Literal["auto", "nchw", "nhwc"] = "auto"
    split: Literal["auto", "all_test"] = "auto"  # all_test: every row is test (supplied models only)
    max_per_split: int | None = field(default=None, metadata={"min": 1})
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15], metadata={"min": 0})
    split_seed: int = 0
    native_per_unit: float | None = field(default=None, metadata={"gt": 0})
    native_unit: str | None = None
    modality: Modality | None = None  # e.g. CT: lets the plan use that modality's corruptions
    pixel_spacing_mm: float | None = field(default=None, metadata={"gt": 0})  # of the images as loaded (resized)
    positive_class: int = field(default=1, metadata={"min": 0})
    image_size: int | None = field(default=None, metadata={"min": 4, "max": 4096})  # square resize
    resize: ResizeParams = field(default_factory=ResizeParams)  # pad (default when the aspect differs), crop, stretch
    volumes: bool = False  # images are N×D×H×W (or N×C×D×H×W) volumes
    voxel_spacing_mm: list[float] | None = field(default=None, metadata={"gt": 0})  # volumes: [d, h, w] in mm

    def __post_init__(self) -> None:
        if self.volumes and self.image_size is not None:
            raise PlanError("image_size resizes 2-D images; volumes are read as stored (resample them to one grid "
                            "first, or use the volumes plugin's roi_grid)", key="dataset.image_size")
        if self.voxel_spacing_mm is not None and (not self.volumes or len(self.voxel_spacing_mm) != 3):
            raise PlanError("voxel_spacing_mm is [d, h, w] in mm, for volumes: true", key="dataset.voxel_spacing_mm")
        if self.value_range is not None and (len(self.value_range) != 2
                                             or self.value_range[0] >= self.value_range[1]):
            raise PlanError(f"expected [lo, hi] with lo < hi, got {self.value_range}", key="dataset.value_range")
        if self.scale == "value_range" and self.value_range is None:
            raise PlanError("scale 'value_range' needs value_range: [lo, hi]", key="dataset.scale")
        if self.class_names is not None and len(self.class_names) < 2:
            raise PlanError(f"need at least 2 class names, got {self.class_names}", key="dataset.class_names")
        fractions_from_list(self.split_fractions, "dataset.split_fractions")


class _NpzFile:
    """Read keys from an .npz with pickles refused; every failure is a DataError naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise DataError(f"{path}: npz file not found")
        try:
            self._npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
        if not hasattr(self._npz, "files"):
            raise DataError(f"{path}: holds a single array, not an .npz archive of named arrays")
        self.keys = set(self._npz.files)

    def get(self, key: str, required: bool = False) -> np.ndarray | None:
        """The array stored under `key` (None if absent and optional)."""
        if key not in self.keys:
            if required:
                raise DataError(f"{self.path}: required key '{key}' is missing (keys: "
                                f"{', '.join(sorted(self.keys)) or 'none'})")
            return None
        try:
            return self._npz[key]
        except ValueError as exc:
            raise DataError(f"{self.path}: key '{key}' holds Python objects (pickled arrays are refused); "
                            "save plain numeric or string arrays") from exc

    def fail(self, message: str) -> DataError:
        """A DataError prefixed with the file name."""
        return DataError(f"{self.path}: {message}")


def resized(images: np.ndarray, size: int | None, params: ResizeParams | None = None,
            geometry: Geometry | None = None) -> np.ndarray:
    """N×C×H×W float images resized to size×size (harness_plugins.datasets.readers.geometry), one at a time."""
    if geometry is not None:
        for _ in range(len(images)):
            geometry.record(images.shape[2], images.shape[3])
    if size is None or images.shape[2:] == (size, size):
        return images
    out = np.empty((len(images), images.shape[1], size, size), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = resize(image, size, params)
    return out


def to_ncdhw(images: np.ndarray, npz: _NpzFile) -> np.ndarray:
    """Volumes as N×C×D×H×W (adds C=1 to N×D×H×W)."""
    if images.ndim == 4:
        return images[:, None]
    if images.ndim != 5:
        raise npz.fail(f"key 'images' must be N×D×H×W or N×C×D×H×W volumes (volumes: true), got shape "
                       f"{images.shape}")
    return images


def to_nchw(images: np.ndarray, layout: str, npz: _NpzFile) -> np.ndarray:
    """Images as N×C×H×W (adds C=1 to N×H×W; moves a trailing channel axis for N×H×W×C)."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise npz.fail(f"key 'images' must be N×H×W, N×C×H×W or N×H×W×C, got shape {images.shape}")
    if layout == "auto":
        first, last = images.shape[1] in _SMALL_CHANNELS, images.shape[3] in _SMALL_CHANNELS
        if not first and not last:
            raise npz.fail(f"cannot tell the channel axis of 'images' {images.shape}; set layout: nchw or nhwc")
        layout = "nchw" if first else "nhwc"
    return images if layout == "nchw" else np.moveaxis(images, 3, 1)


def scale_images(images: np.ndarray, params: NpzParams, npz: _NpzFile) -> tuple[np.ndarray, str]:
    """float32 images in [0,1] and a description of the scaling used."""
    kind = images.dtype.kind
    if kind not in "uif":
        raise npz.fail(f"key 'images' has unsupported dtype {images.dtype} (use uint8, uint16 or float)")
    if kind == "f" and not np.isfinite(images).all():
        bad = int(np.flatnonzero(~np.isfinite(images.reshape(len(images), -1)).all(axis=1))[0])
        raise npz.fail(f"key 'images' contains NaN or Inf (first at sample {bad})")
    if params.value_range is not None:
        lo, hi = params.value_range
        out = (images.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
        how = f"value_range [{lo:g}, {hi:g}] → [0,1]" + (", clipped" if params.clip else "")
    elif images.dtype in (np.uint8, np.uint16):
        peak = float(np.iinfo(images.dtype).max)
        out, how = images.astype(np.float32) / np.float32(peak), f"{images.dtype} / {peak:g}"
    elif kind == "f":
        out, how = images.astype(np.float32), "none (float images already in [0,1])"
    else:
        raise npz.fail(f"key 'images' has dtype {images.dtype}: scale 'auto' handles uint8, uint16 and "
                       "float; set value_range: [lo, hi]")
    if params.clip:
        out = np.clip(out, 0.0, 1.0)
    lo_v, hi_v = float(out.min()), float(out.max())
    if lo_v < 0.0 or hi_v > 1.0:
        raise npz.fail(f"images span [{lo_v:.4g}, {hi_v:.4g}] after scaling ({how}), outside [0,1]; "
                       "set value_range (and clip: true to window)")
    return out, how


def read_labels(npz: _NpzFile, n: int, class_names: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Integer labels (int64) and class names (plan, then the file's `class_names`, then class_k)."""
    labels = npz.get("labels", required=True)
    if labels.ndim != 1 or len(labels) != n:
        raise npz.fail(f"key 'labels' has shape {labels.shape} but there are {n} images")
    if labels.dtype.kind == "f" and (not np.isfinite(labels).all() or (labels != np.round(labels)).any()):
        raise npz.fail("key 'labels' must hold integers, found non-integer values")
    if labels.dtype.kind not in "uif":
        raise npz.fail(f"key 'labels' must hold integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if class_names is None:
        stored = npz.get("class_names")
        if stored is not None:
            class_names = [str(c) for c in np.atleast_1d(stored).tolist()]
        else:
            class_names = [f"class_{k}" for k in range(max(2, int(labels.max(initial=0)) + 1))]
    bad = labels[(labels < 0) | (labels >= len(class_names))]
    if len(bad):
        raise npz.fail(f"label {int(bad[0])} is outside 0..{len(class_names) - 1} "
                       f"(class_names: {', '.join(class_names)})")
    return labels, class_names


def read_strings(npz: _NpzFile, key: str, n: int) -> np.ndarray | None:
    """An optional per-sample string key as a str array, length-checked."""
    values = npz.get(key)
    if values is None:
        return None
    if values.ndim != 1 or len(values) != n:
        raise npz.fail(f"key '{key}' has shape {values.shape} but there are {n} images")
    return values.astype(str)


def assign_splits(npz: _NpzFile, labels: np.ndarray, raw_groups: np.ndarray, params: NpzParams,
                  fractions: dict[str, float]) -> tuple[np.ndarray, bool]:
    """Per-sample split names from the file's `split` key, else generated; and whether the file gave them."""
    stored = read_strings(npz, "split", len(labels))
    if stored is not None:
        stored = np.char.strip(np.char.lower(stored))
        bad = sorted(set(stored.tolist()) - set(SPLITS))
        if bad:
            raise npz.fail(f"key 'split' has value {bad[0]!r}; allowed: train, val, test")
    if params.split == "all_test":
        if stored is not None and (stored != "test").any():
            raise PlanError(f"split: all_test, but {npz.path.name}'s 'split' key puts rows in "
                            f"{' and '.join(sorted(set(stored.tolist()) - {'test'}))}; remove one of the two",
                            key="dataset.split")
        return np.array(["test"] * len(labels)), stored is not None
    if stored is None:
        return grouped_stratified_split(labels, raw_groups, params.split_seed, fractions), False
    return stored, True


def subset(assignment: np.ndarray, labels: np.ndarray, groups: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Indices keeping at most `cap` samples per split: whole groups, the least-taken majority label first."""
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for name in SPLITS:
        idx = np.flatnonzero(assignment == name)
        if len(idx) <= cap:
            keep.append(idx)
            continue
        queues = _groups_by_majority_label(idx, labels, groups, rng)
        taken = [0] * len(queues)
        chosen: list[np.ndarray] = []
        while any(queues):
            k = min((q for q in range(len(queues)) if queues[q]), key=lambda q: taken[q])
            rows = queues[k].pop(0)
            if sum(taken) + len(rows) <= cap:
                taken[k] += len(rows)
                chosen.append(rows)
        keep.append(np.sort(np.concatenate(chosen)) if chosen else idx[:cap])
    return np.sort(np.concatenate(keep))


def _groups_by_majority_label(idx: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                              rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Sample indices of each group, in one shuffled queue per majority label."""
    members: dict[str, list[int]] = {}
    for i in idx.tolist():
        members.setdefault(str(groups[i]), []).append(i)
    by_label: dict[int, list[np.ndarray]] = {}
    for g in sorted(members):
        rows = np.array(members[g])
        values, counts = np.unique(labels[rows], return_counts=True)
        by_label.setdefault(int(values[np.argmax(counts)]), []).append(rows)
    queues = []
    for label in sorted(by_label):
        queue = by_label[label]
        order = rng.permutation(len(queue))
        queues.append([queue[k] for k in order])
    return queues


def native_units(params: NpzParams, dtype: np.dtype) -> NativeUnits | None:
    """NativeUnits from the plan, else from value_range with native_unit, else stored grey levels of uint data."""
    if params.native_per_unit is not None:
        return NativeUnits(params.native_per_unit, params.native_unit or "units", "from the plan")
    if params.value_range is not None and params.native_unit:
        lo, hi = params.value_range
        return NativeUnits(float(hi - lo), params.native_unit, f"value_range [{lo:g}, {hi:g}]", offset=float(lo))
    if params.value_range is None and dtype in (np.uint8, np.uint16):
        peak = float(np.iinfo(dtype).max)
        return NativeUnits(peak, "grey levels", f"stored {dtype} levels; physical units unknown")
    return None


class NpzDataset:
    """Dataset plugin 'npz': one .npz file with images, labels and optional split / patient_ids."""

    name = "npz"
    description = "Images and labels from a NumPy .npz (optional split, patient_ids, class_names)."
    identifiers = "from_source"
    Params = NpzParams

    def load(self, params: NpzParams, context: DatasetContext) -> DatasetBundle:
        """Read, validate, scale and split the file (the core replaces the ids by keyed hashes)."""
        path = plan_path(params.path, context.base_dir)
        npz = _NpzFile(path)
        raw = npz.get("images", required=True)
        if len(raw) == 0:
            raise npz.fail("key 'images' holds no samples")
        shaped = to_ncdhw(raw, npz) if params.volumes else to_nchw(raw, params.layout, npz)
        images, scaling = scale_images(shaped, params, npz)
        labels, class_names = read_labels(npz, len(images), params.class_names)
        if params.positive_class >= len(class_names):
            raise PlanError(f"positive_class {params.positive_class} is outside 0..{len(class_names) - 1}",
                            key="dataset.positive_class")
        patients = read_strings(npz, "patient_ids", len(images))
        raw_groups = patients if patients is not None else np.array([f"row-{i}" for i in range(len(images))])
        fractions = fractions_from_list(params.split_fractions, "dataset.split_fractions")
        assignment, from_file = assign_splits(npz, labels, raw_groups, params, fractions)
        keep = np.arange(len(images))
        if params.max_per_split is not None:
            keep = subset(assignment, labels, raw_groups, params.max_per_split, params.split_seed)
        group_ids = [str(g) for g in raw_groups[keep].tolist()]
        sample_ids = [f"{g}/{i}" for g, i in zip(raw_groups[keep], keep, strict=True)]
        metadata = {key[len(META_PREFIX):]: read_strings(npz, key, len(images))[keep].tolist()
                    for key in sorted(npz.keys) if key.startswith(META_PREFIX)}
        geometry = Geometry(params.image_size, params.resize)
        splits = build_splits(resized(images[keep], params.image_size, params.resize, geometry), labels[keep],
                              sample_ids, group_ids,
                              assignment[keep], metadata)
        if len(splits["test"]) == 0:
            raise npz.fail("the test split is empty (use split: all_test for a test-only set)")
        provenance = {
            "source": f"npz file {path.name}",
            "path": params.path,
            "file_sha256": file_sha256(path),
            "content_sha256": content_sha256(splits),
            "counts": class_counts(splits, class_names),
            "patients": group_counts(splits),
            "n_samples": int(len(keep)),
            "n_samples_in_file": int(len(images)),
            "stored_dtype": str(raw.dtype),
            "stored_shape": list(raw.shape),
            "scaling": scaling,
            "resized_to": None if params.image_size is None else [params.image_size, params.image_size],
            "geometry": geometry.to_json(),
            "split_method": self._split_method(from_file, patients is not None, params, fractions),
        }
        return DatasetBundle(name=self.name, class_names=class_names, splits=splits, provenance=provenance,
                             native_units=native_units(params, raw.dtype), positive_class=params.positive_class,
                             modality=params.modality, pixel_spacing_mm=params.pixel_spacing_mm,
                             voxel_spacing_mm=(None if params.voxel_spacing_mm is None
                                               else tuple(float(v) for v in params.voxel_spacing_mm)))

    @staticmethod
    def _split_method(from_file: bool, has_patients: bool, params: NpzParams, fractions: dict[str, float]) -> str:
        if params.split == "all_test":
            text = "all rows are test (split: all_test)"
        elif from_file:
            text = "from the file's 'split' key"
        else:
            groups = "patient-grouped" if has_patients else "no patient_ids in the file: each sample its own group"
            text = (f"generated: {groups}, label-stratified (harness.data.splits.grouped_stratified_split, seed "
                    f"{params.split_seed}, fractions {describe_fractions(fractions)})")
        if params.max_per_split is not None:
            text += (f"; subset of at most {params.max_per_split} per split (whole patients, seeded "
                     f"round-robin over majority label, seed {params.split_seed})")
        return text


@hookimpl
def harness_register_datasets() -> list[Any]:
    """Register the npz dataset."""
    return [NpzDataset()]
