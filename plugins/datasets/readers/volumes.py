"""Dataset plugin 'volumes': 3-D volumes (DICOM series folders or NIfTI files) listed in a manifest CSV, each cut
to a 3-D ROI on the plan's voxel grid, windowed to [0,1] → N×1×D×H×W.

Manifest columns: `path` (a DICOM series folder or a .nii/.nii.gz file, relative to the manifest), `label`,
optional `patient_id` (default: the DICOM PatientID, else the path), optional `split`, and optional ROI centre
columns `roi_z, roi_y, roi_x` (voxels d, h, w of the volume as read, or patient mm x, y, z in the file's own frame
with `roi_unit: mm`; default: the volume's centre). The ROI is `roi_grid` voxels `roi_spacing_mm` apart, resampled
trilinearly; an ROI reaching outside the volume is refused. docs/volumes.md gives the reader and ROI rules.
Ids come from the source, so the core replaces them by keyed hashes; messages name files only de-identified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from harness.data.splits import grouped_stratified_split
from harness.errors import DataError, PlanError
from harness.registry.contracts import DatasetBundle, DatasetContext, NativeUnits, TensorSplit
from harness.registry.hookspecs import hookimpl
from harness_plugins.datasets.common import (
    class_counts,
    content_sha256,
    describe_fractions,
    fractions_from_list,
    group_counts,
)
from harness_plugins.datasets.readers.dicom import DICOM_MODALITIES, WindowParams, linear_window
from harness_plugins.datasets.readers.medical_io import _label, _read_csv, _relative, _split_value
from harness_plugins.datasets.readers.volume_io import Volume, is_nifti, read_nifti, read_series, roi_grid

SPLITS = ("train", "val", "test")
ROI_CENTRE_COLUMNS = ("roi_z", "roi_y", "roi_x")


@dataclass
class VolumeParams:
    """Parameters of the volume data set."""

    path: str  # the manifest .csv (paths in it are relative to its folder)
    class_names: list[str] = field(default_factory=list)  # label names in index order
    window: WindowParams | Literal["minmax"] = "minmax"  # CT: {center, width} in HU → 1.0 = width HU
    roi_grid: list[int] = field(default_factory=lambda: [32, 32, 32], metadata={"min": 4, "max": 512})
    roi_spacing_mm: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0], metadata={"gt": 0, "max": 20})
    roi_unit: Literal["voxel", "mm"] = "voxel"
    modality: Literal["CT", "MRI", "PET", "other"] | None = None  # default: from the DICOM header
    positive_class: str | None = None
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15], metadata={"min": 0})
    split_seed: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        fractions_from_list(self.split_fractions, "dataset.split_fractions")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise PlanError(f"expected two or more distinct class names, got {self.class_names}",
                            key="dataset.class_names")
        if len(self.roi_grid) != 3:
            raise PlanError(f"expected [depth, height, width] voxels, e.g. [32, 32, 32], got {self.roi_grid}",
                            key="dataset.roi_grid")
        if len(self.roi_spacing_mm) != 3:
            raise PlanError(f"expected [depth, height, width] mm, e.g. [1, 1, 1], got {self.roi_spacing_mm}",
                            key="dataset.roi_spacing_mm")
        if self.positive_class is not None and self.positive_class not in self.class_names:
            raise PlanError(f"'{self.positive_class}' is not one of class_names {self.class_names}",
                            key="dataset.positive_class")


@dataclass
class _Row:
    rel: str
    label: int
    where: str
    group: str | None
    split: str | None
    centre: tuple[float, float, float] | None


def _rows(params: VolumeParams, manifest: Path, root: Path, context: DatasetContext) -> list[_Row]:
    """The manifest's rows, each checked (paths inside the root, labels known, ROI centres numbers)."""
    header, rows = _read_csv(manifest)
    for column in ("path", "label"):
        if column not in header:
            raise DataError(f"{context.name_file(manifest.name)}: no '{column}' column (columns: "
                            f"{', '.join(header)})")
    roi = [c for c in ROI_CENTRE_COLUMNS if c in header]
    if roi and len(roi) != 3:
        raise DataError(f"{context.name_file(manifest.name)}: give all of {', '.join(ROI_CENTRE_COLUMNS)} or none")
    out = []
    for line, row in rows:
        where = f"{context.name_file(manifest.name)} line {line}"
        centre = None
        if roi and any(row[c] for c in ROI_CENTRE_COLUMNS):
            try:
                centre = tuple(float(row[c]) for c in ROI_CENTRE_COLUMNS)
            except ValueError:
                raise DataError(f"{where}: {', '.join(ROI_CENTRE_COLUMNS)} must all be numbers") from None
        out.append(_Row(rel=_relative(row["path"], root, where, context.name_file),
                        label=_label(row["label"], params.class_names, where), where=where,
                        group=row.get("patient_id") or None,
                        split=_split_value(row["split"], where) if row.get("split") else None, centre=centre))
    if not out:
        raise DataError(f"{context.name_file(manifest.name)}: the manifest lists no volumes")
    return out


def read_volume(root: Path, rel: str, context: DatasetContext) -> Volume:
    """A DICOM series folder or a NIfTI file, checked against the plan's sandbox."""
    shown = context.name_file(rel)
    path = context.check_file(root / rel, rel)
    if path.is_dir():
        return read_series(path, rel, context.name_file, context.check_file)
    if path.is_file() and is_nifti(path):
        return read_nifti(path, shown)
    if not path.exists():
        raise DataError(f"{shown}: not found; the manifest's path must name a series folder or a NIfTI file")
    raise DataError(f"{shown}: neither a DICOM series folder nor a .nii/.nii.gz file")


def to_unit(values: np.ndarray, window: WindowParams | str) -> np.ndarray:
    """Native values → [0,1] by the plan's window, or each volume's own min..max."""
    if isinstance(window, WindowParams):
        return linear_window(values, window.center, window.width).astype(np.float32)
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high <= low else ((values - low) / (high - low)).astype(np.float32)


class VolumesDataset:
    """Dataset plugin 'volumes': DICOM series and NIfTI volumes → 3-D ROIs on the plan's voxel grid."""

    name = "volumes"
    description = ("3-D volumes (DICOM series folders or NIfTI files) from a manifest CSV, cut to a 3-D ROI on "
                   "a fixed voxel grid and windowed to [0,1]: N×1×D×H×W.")
    identifiers = "from_source"
    Params = VolumeParams

    def load(self, params: VolumeParams, context: DatasetContext) -> DatasetBundle:
        """Read every listed volume, cut its ROI, split by patient and wrap."""
        manifest = Path(params.path)
        manifest = manifest if manifest.is_absolute() else context.base_dir / manifest
        if not manifest.is_file():
            raise DataError(f"dataset.path: the manifest {context.name_file(Path(params.path).name)} does not "
                            "exist; give the manifest .csv of the volumes")
        root = manifest.parent
        rows = _rows(params, manifest, root, context)
        images, groups, modalities = [], [], set()
        for row in rows:
            volume = read_volume(root, row.rel, context)
            centre = row.centre if row.centre is not None else tuple((np.array(volume.values.shape) - 1) / 2.0)
            unit = params.roi_unit if row.centre is not None else "voxel"
            roi = roi_grid(volume, centre, unit, params.roi_grid, params.roi_spacing_mm,
                           context.name_file(row.rel))
            images.append(to_unit(roi, params.window)[None])
            groups.append(row.group or volume.patient_id or row.rel)
            if volume.modality:
                modalities.add(DICOM_MODALITIES.get(volume.modality, "other"))
        labels = np.array([r.label for r in rows], dtype=np.int64)
        sample_ids = [r.rel for r in rows]
        assignment, method = self._assign(params, rows, labels, groups, context.seed)
        stack = np.stack(images).astype(np.float32)
        splits = {name: TensorSplit(torch.from_numpy(np.ascontiguousarray(stack[assignment == name])),
                                    labels[assignment == name],
                                    [sample_ids[i] for i in np.flatnonzero(assignment == name)],
                                    [groups[i] for i in np.flatnonzero(assignment == name)]) for name in SPLITS}
        modality = params.modality or (modalities.pop() if len(modalities) == 1 else None)
        window = params.window
        units = (NativeUnits(float(window.width), "HU" if modality == "CT" else "native",
                             f"window W{window.width:g} L{window.center:g}",
                             offset=float(window.center - window.width / 2))
                 if isinstance(window, WindowParams) else None)
        spacing = tuple(float(v) for v in params.roi_spacing_mm)
        provenance = {
            "source": "harness_plugins.datasets.readers.volumes (DICOM series / NIfTI volumes)",
            "manifest": context.name_file(manifest.name),
            "content_sha256": content_sha256(splits, with_ids=True),
            "counts": class_counts(splits, params.class_names), "patients": group_counts(splits),
            "n_samples": len(rows), "image_shape": [1, *params.roi_grid],
            "roi": {"grid": list(params.roi_grid), "spacing_mm": list(spacing), "centre_unit": params.roi_unit,
                    "resampling": "trilinear (scipy.ndimage.map_coordinates, order 1)"},
            "window": ({"center": window.center, "width": window.width} if isinstance(window, WindowParams)
                       else "minmax (each volume's own range)"),
            "split_method": method,
        }
        return DatasetBundle(name=params.name or self.name, class_names=list(params.class_names), splits=splits,
                             provenance=provenance, native_units=units,
                             positive_class=(params.class_names.index(params.positive_class)
                                             if params.positive_class else 1),
                             modality=modality, pixel_spacing_mm=spacing[1] if spacing[1] == spacing[2] else None,
                             voxel_spacing_mm=spacing)  # type: ignore[arg-type]

    @staticmethod
    def _assign(params: VolumeParams, rows: list[_Row], labels: np.ndarray, groups: list[str],
                seed: int) -> tuple[np.ndarray, str]:
        if any(r.split for r in rows):
            if not all(r.split for r in rows):
                missing = next(r for r in rows if not r.split)
                raise DataError(f"{missing.where}: no split, but other rows give one; give every row a split or none")
            return np.array([r.split for r in rows]), "from the manifest's 'split' column"
        fractions = fractions_from_list(params.split_fractions, "dataset.split_fractions")
        split_seed = seed if params.split_seed is None else params.split_seed
        assignment = grouped_stratified_split(labels.tolist(), groups, split_seed, fractions)
        return assignment, (f"patient-grouped, label-stratified (seed {split_seed}, fractions "
                            f"{describe_fractions(fractions)})")


@hookimpl
def harness_register_datasets() -> list[Any]:
    """Register the volumes dataset."""
    return [VolumesDataset()]
