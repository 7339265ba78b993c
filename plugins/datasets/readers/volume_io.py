"""Volumes from files: a DICOM series (one folder) or a NIfTI file → a D×H×W array in native units, its voxel
spacing and its voxel→patient-mm map; and a 3-D ROI resampled to a fixed voxel grid.

A DICOM series is grouped by SeriesInstanceUID and sorted by ImagePositionPatient projected on the slice normal
(never by file name or InstanceNumber); rescale slope and intercept give HU; the slice spacing comes from the
positions. Refused, naming the files through `name` (de-identified): two series in one folder, mixed
orientations, duplicate slices, a missing slice, spacing that varies beyond SPACING_TOLERANCE. A NIfTI file is read
through nibabel (its scl_slope/inter applied); a 4-D NIfTI is refused. Messages carry no tag values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from harness.errors import DataError

SPACING_TOLERANCE = 0.01  # relative: a gap may differ from the median slice spacing by 1 % (and 0.01 mm)
ORIENTATION_TOLERANCE = 1e-4
NIFTI_SUFFIXES = (".nii", ".nii.gz")

Namer = Callable[[str], str]


@dataclass
class Volume:
    """A volume in native units (D×H×W float32), its voxel size (D, H, W in mm) and voxel (d, h, w) → patient mm."""

    values: np.ndarray
    spacing_mm: tuple[float, float, float]
    origin: np.ndarray  # patient position of voxel (0, 0, 0), mm
    axes: np.ndarray  # 3×3: row k is the unit patient direction of voxel axis k (d, h, w)
    modality: str | None = None
    patient_id: str | None = None

    def to_voxel(self, point_mm: Sequence[float]) -> np.ndarray:
        """A patient-mm point (the file's own frame: LPS for DICOM, RAS for NIfTI) → fractional (d, h, w)."""
        offset = np.asarray(point_mm, dtype=np.float64) - self.origin
        return (self.axes @ offset) / np.asarray(self.spacing_mm)


def is_nifti(path: Path) -> bool:
    """Whether the file name ends in .nii or .nii.gz."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


# ------------------------------------------------------------------------------------------------ NIfTI


def read_nifti(path: Path, shown: str) -> Volume:
    """A 3-D NIfTI file as a Volume with axes (k, j, i) → (d, h, w); DataError naming `shown` otherwise."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on corrupt files
        raise DataError(f"{shown}: unreadable NIfTI file ({type(exc).__name__}); check that it is a complete "
                        ".nii/.nii.gz file") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{shown}: a {data.ndim}-D NIfTI image (shape {'×'.join(map(str, data.shape))}); the harness "
                        "takes one 3-D volume per file: split the series into 3-D files")
    if not np.isfinite(data).all():
        raise DataError(f"{shown}: the NIfTI image holds NaN or infinite values")
    affine = np.asarray(image.affine, dtype=np.float64)
    columns = affine[:3, :3]
    zooms = np.linalg.norm(columns, axis=0)  # i, j, k
    if np.any(zooms <= 0):
        raise DataError(f"{shown}: the NIfTI affine has a zero voxel size")
    directions = (columns / zooms).T  # row n: direction of voxel axis i, j, k
    return Volume(values=np.ascontiguousarray(data.transpose(2, 1, 0)),
                  spacing_mm=(float(zooms[2]), float(zooms[1]), float(zooms[0])),
                  origin=affine[:3, 3].copy(), axes=directions[::-1].copy())


def write_nifti(path: Path, values: np.ndarray, spacing_mm: Sequence[float]) -> None:
    """Write a D×H×W array as a NIfTI file with a diagonal affine (axes i, j, k = w, h, d); for tests and tools."""
    import nibabel as nib

    dz, dy, dx = (float(v) for v in spacing_mm)
    nib.save(nib.Nifti1Image(np.asarray(values, dtype=np.float32).transpose(2, 1, 0),
                             np.diag([dx, dy, dz, 1.0])), str(path))


# ------------------------------------------------------------------------------------------------ DICOM series


def read_series(folder: Path, rel: str, name: Namer,
                check: Callable[[Path, str], Path] | None = None) -> Volume:
    """The one DICOM series in `folder` as a Volume in HU (modality LUT applied), sorted along the slice normal;
    `check(path, relative path)` vets each file first (the plan's sandbox)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{name(rel)}: no files in the series folder; give one folder per series")
    headers = []
    for path in files:
        shown = name(f"{rel}/{path.name}")
        if check is not None:
            check(path, f"{rel}/{path.name}")
        try:
            headers.append((path, pydicom.dcmread(path)))
        except (InvalidDicomError, OSError, ValueError):
            raise DataError(f"{shown}: not a readable DICOM file; a series folder holds only the series' "
                            "DICOM files") from None
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in headers}
    if len(series) > 1:
        raise DataError(f"{name(rel)}: {len(series)} series in one folder (SeriesInstanceUID differs); put each "
                        "series in its own folder")
    for path, ds in headers:
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds or "PixelSpacing" not in ds:
            raise DataError(f"{name(rel + '/' + path.name)}: no ImagePositionPatient, ImageOrientationPatient or "
                            "PixelSpacing; a volume needs each slice's position and orientation")
    orientation = np.array([float(v) for v in headers[0][1].ImageOrientationPatient])
    for path, ds in headers[1:]:
        if np.abs(np.array([float(v) for v in ds.ImageOrientationPatient]) - orientation).max() > \
                ORIENTATION_TOLERANCE:
            raise DataError(f"{name(rel)}: mixed slice orientations ({name(rel + '/' + headers[0][0].name)} and "
                            f"{name(rel + '/' + path.name)} differ); a series must be one stack of parallel slices")
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in headers])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    headers = [headers[i] for i in order]
    along = along[order]
    shown = [name(f"{rel}/{path.name}") for path, _ in headers]
    spacing = _slice_spacing(along, shown, name(rel))
    row_spacing, col_spacing = (float(v) for v in headers[0][1].PixelSpacing)
    slices = [_hu_slice(ds, label) for (_, ds), label in zip(headers, shown, strict=True)]
    if len({s.shape for s in slices}) > 1:
        raise DataError(f"{name(rel)}: slices of different sizes (rows × columns); a series must be one stack")
    return Volume(values=np.stack(slices).astype(np.float32), spacing_mm=(spacing, row_spacing, col_spacing),
                  origin=positions[order[0]], axes=np.stack([normal, col_dir, row_dir]),
                  modality=str(headers[0][1].get("Modality", "")) or None,
                  patient_id=str(headers[0][1].get("PatientID", "")) or None)


def _slice_spacing(along: np.ndarray, shown: list[str], folder: str) -> float:
    """The uniform slice spacing; DataError naming the files for a duplicate, a missing slice or uneven gaps."""
    if len(along) < 2:
        raise DataError(f"{folder}: a series of one slice is not a volume")
    gaps = np.diff(along)
    for i, gap in enumerate(gaps):
        if gap < 1e-3:
            raise DataError(f"{folder}: duplicate slices at one position ({shown[i]} and {shown[i + 1]}); remove "
                            "the duplicate")
    spacing = float(np.median(gaps))
    tolerance = max(SPACING_TOLERANCE * spacing, 0.01)
    for i, gap in enumerate(gaps):
        if abs(gap - spacing) <= tolerance:
            continue
        if abs(gap / spacing - round(gap / spacing)) * spacing <= tolerance and round(gap / spacing) >= 2:
            raise DataError(f"{folder}: {round(gap / spacing) - 1} missing slice(s) between {shown[i]} and "
                            f"{shown[i + 1]}; export the complete series")
        raise DataError(f"{folder}: non-uniform slice spacing ({gap:.3g} mm between {shown[i]} and {shown[i + 1]}, "
                        f"median {spacing:.3g} mm, tolerance {tolerance:.2g} mm); resample the series to uniform "
                        "spacing first")
    return spacing


def _hu_slice(ds: object, shown: str) -> np.ndarray:
    """One slice's pixels through the modality LUT (rescale slope and intercept → HU for CT)."""
    from pydicom.pixels import apply_modality_lut

    try:
        values = np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - decoders raise many types
        raise DataError(f"{shown}: the pixel data cannot be decoded ({type(exc).__name__})") from None
    if values.ndim != 2:
        raise DataError(f"{shown}: a multi-frame or colour file in a series; a series holds one 2-D slice per file")
    if not np.isfinite(values).all():
        raise DataError(f"{shown}: NaN or infinite pixel values")
    return values


# ------------------------------------------------------------------------------------------------ ROI


def roi_grid(volume: Volume, centre: Sequence[float], centre_unit: str, grid: Sequence[int],
             spacing_mm: Sequence[float], shown: str) -> np.ndarray:
    """The volume resampled (trilinear) on a `grid` of voxels `spacing_mm` apart, centred at `centre` (voxels
    d, h, w, or patient mm in the file's frame); DataError naming `shown` when the ROI leaves the volume."""
    centre_vox = (np.asarray(centre, dtype=np.float64) if centre_unit == "voxel"
                  else volume.to_voxel(centre))
    step = np.asarray(spacing_mm, dtype=np.float64) / np.asarray(volume.spacing_mm)  # ROI step in source voxels
    offsets = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(grid, step, strict=True)]
    low = centre_vox + np.array([o[0] for o in offsets])
    high = centre_vox + np.array([o[-1] for o in offsets])
    shape = np.asarray(volume.values.shape)
    if np.any(low < -0.5) or np.any(high > shape - 0.5):
        size = " × ".join(f"{n * s:g}" for n, s in zip(grid, spacing_mm, strict=True))
        raise DataError(f"{shown}: the ROI ({size} mm around voxel "
                        f"{', '.join(f'{v:.1f}' for v in centre_vox)}) reaches outside the volume "
                        f"({' × '.join(map(str, volume.values.shape))} voxels); move its centre or shrink "
                        "dataset.roi_grid / dataset.roi_spacing_mm")
    coordinates = np.meshgrid(*[centre_vox[k] + offsets[k] for k in range(3)], indexing="ij")
    return ndimage.map_coordinates(volume.values, coordinates, order=1, mode="nearest").astype(np.float32)
