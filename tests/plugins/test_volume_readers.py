"""The 'volumes' data set: DICOM series (shuffled files) and NIfTI round trips, the 3-D ROI, and bad input."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataError
from harness.registry.contracts import DatasetContext
from harness_plugins.datasets.phantoms.ct3d import Phantom3DParams, generate
from harness_plugins.datasets.readers.dicom import WindowParams
from harness_plugins.datasets.readers.volume_io import read_nifti, read_series, roi_grid, write_nifti
from harness_plugins.datasets.readers.volumes import VolumeParams, VolumesDataset

WINDOW = (-600.0, 1500.0)  # the phantom's lung window (center, width)


def phantom_hu(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A few 16³ phantom volumes back in HU (integers, as a scanner stores them) and their labels."""
    hu, labels = _phantom_hu()
    return hu[:n].copy(), labels[:n].copy()


@functools.lru_cache(maxsize=1)
def _phantom_hu() -> tuple[np.ndarray, np.ndarray]:
    images, labels, _, _ = generate(Phantom3DParams(n_patients=20, volume_size=16))
    hu = np.round(images[:12, 0].astype(np.float64) * WINDOW[1] + WINDOW[0] - WINDOW[1] / 2)
    return hu.astype(np.int16), labels[:12]


def write_series(folder: Path, hu: np.ndarray, spacing: tuple[float, float, float] = (2.0, 0.7, 0.7),
                 patient: str = "Doe^Jane", series_uid: str | None = None, skip: int | None = None,
                 duplicate: int | None = None, tilt: int | None = None, positions: list[float] | None = None,
                 seed: int = 0) -> list[Path]:
    """Write a D×H×W int16 HU volume as one CT DICOM file per slice, in shuffled order with random names."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    order = list(range(hu.shape[0]))
    if skip is not None:
        order.remove(skip)
    if duplicate is not None:
        order.append(duplicate)
    random.Random(seed).shuffle(order)
    paths = []
    for count, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"img{random.Random(seed * 1000 + count).randrange(10**8):08d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "PID-0001", patient
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, generate_uid()
        ds.InstanceNumber = count + 1  # deliberately not the slice order
        z = positions[k] if positions is not None else -50.0 + k * spacing[0]
        ds.ImagePositionPatient = [-10.0, -20.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0] if tilt != k else [1, 0, 0, 0, 0.9, 0.43589]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (hu[k].astype(np.int32) + 1024).astype(np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def namer(rel: str) -> str:
    return f"file <{abs(hash(rel)) % 10**6:06d}>"


def test_dicom_series_in_shuffled_file_order_reads_back_the_same_volume_and_hu(tmp_path: Path) -> None:
    hu, _ = phantom_hu(1)
    write_series(tmp_path / "s", hu[0])
    volume = read_series(tmp_path / "s", "s", namer)
    np.testing.assert_array_equal(volume.values, hu[0].astype(np.float32))
    assert volume.spacing_mm == pytest.approx((2.0, 0.7, 0.7))
    assert volume.modality == "CT"
    # the patient-mm frame: slice k sits at z = -50 + 2k
    assert volume.to_voxel([-10.0 + 0.7 * 3, -20.0 + 0.7 * 5, -50.0 + 2.0 * 4]) == pytest.approx([4, 5, 3])


def test_nifti_round_trip(tmp_path: Path) -> None:
    hu, _ = phantom_hu(1)
    write_nifti(tmp_path / "v.nii.gz", hu[0], (2.0, 0.8, 0.7))
    volume = read_nifti(tmp_path / "v.nii.gz", "v")
    np.testing.assert_array_equal(volume.values, hu[0].astype(np.float32))
    assert volume.spacing_mm == pytest.approx((2.0, 0.8, 0.7))
    assert volume.to_voxel([0.7 * 2, 0.8 * 3, 2.0 * 5]) == pytest.approx([5, 3, 2])


@pytest.mark.parametrize(("case", "message"), [
    ({"skip": 5}, "1 missing slice(s) between"),
    ({"duplicate": 3}, "duplicate slices at one position"),
    ({"tilt": 2}, "mixed slice orientations"),
    ({"positions": [0, 1, 2, 3, 4, 5.5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]}, "non-uniform slice spacing"),
])
def test_bad_series_are_refused_naming_the_files_without_phi(tmp_path: Path, case: dict, message: str) -> None:
    hu, _ = phantom_hu(1)
    paths = write_series(tmp_path / "s", hu[0], **case)
    with pytest.raises(DataError) as info:
        read_series(tmp_path / "s", "s", namer)
    line = info.value.one_line()
    assert message in line and "\n" not in line
    assert "file <" in line and "Doe" not in line and "PID-0001" not in line
    assert not any(p.name in line for p in paths)


def test_two_series_in_one_folder_are_refused(tmp_path: Path) -> None:
    hu, _ = phantom_hu(1)
    write_series(tmp_path / "s", hu[0][:8], seed=1)
    write_series(tmp_path / "s", hu[0][8:], seed=2)
    with pytest.raises(DataError, match="2 series in one folder"):
        read_series(tmp_path / "s", "s", namer)


def test_a_4d_nifti_is_refused(tmp_path: Path) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), str(tmp_path / "t.nii"))
    with pytest.raises(DataError, match="a 4-D NIfTI image .* split the series into 3-D files"):
        read_nifti(tmp_path / "t.nii", "file <x>")


def test_roi_is_resampled_to_the_grid_and_refused_outside_the_volume(tmp_path: Path) -> None:
    hu, _ = phantom_hu(1)
    write_nifti(tmp_path / "v.nii", hu[0], (1.0, 1.0, 1.0))
    volume = read_nifti(tmp_path / "v.nii", "v")
    same = roi_grid(volume, (7.5, 7.5, 7.5), "voxel", (16, 16, 16), (1.0, 1.0, 1.0), "v")
    np.testing.assert_allclose(same, hu[0], atol=1e-3)
    half = roi_grid(volume, (7.5, 7.5, 7.5), "voxel", (8, 8, 8), (2.0, 2.0, 2.0), "v")
    assert half.shape == (8, 8, 8)
    by_mm = roi_grid(volume, (7.5, 7.5, 7.5), "mm", (8, 8, 8), (1.0, 1.0, 1.0), "v")
    np.testing.assert_allclose(by_mm, hu[0][4:12, 4:12, 4:12], atol=1e-3)
    with pytest.raises(DataError, match="reaches outside the volume"):
        roi_grid(volume, (2.0, 7.5, 7.5), "voxel", (8, 8, 8), (1.0, 1.0, 1.0), "v")


def _manifest(tmp_path: Path, n: int = 12) -> tuple[Path, np.ndarray]:
    hu, labels = phantom_hu(n)
    tmp_path.mkdir(parents=True, exist_ok=True)
    lines = ["path,label,patient_id"]
    for i in range(n):
        if i % 2:
            write_series(tmp_path / f"series{i}", hu[i], spacing=(1.0, 1.0, 1.0), seed=i)
            lines.append(f"series{i},{int(labels[i])},p{i // 2}")
        else:
            write_nifti(tmp_path / f"vol{i}.nii.gz", hu[i], (1.0, 1.0, 1.0))
            lines.append(f"vol{i}.nii.gz,{int(labels[i])},p{i // 2}")
    (tmp_path / "volumes.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "volumes.csv", labels


def test_the_volumes_plugin_gives_windowed_5d_splits_grouped_by_patient(tmp_path: Path) -> None:
    manifest, _ = _manifest(tmp_path)
    params = VolumeParams(path=str(manifest), class_names=["benign", "malignant"],
                          window=WindowParams(center=-600, width=1500), roi_grid=[12, 12, 12])
    bundle = VolumesDataset().load(params, DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path))
    assert bundle.image_shape == (1, 12, 12, 12)
    assert bundle.voxel_spacing_mm == (1.0, 1.0, 1.0) and bundle.modality == "CT"
    assert bundle.native_units.unit == "HU" and bundle.native_units.per_unit == 1500
    groups = {name: set(split.group_ids) for name, split in bundle.splits.items()}
    assert not (groups["train"] & groups["test"]) and not (groups["val"] & groups["test"])
    assert sum(len(s) for s in bundle.splits.values()) == 12
    image = bundle.splits["test"][0][0]
    assert image.shape == (1, 12, 12, 12) and 0 <= float(image.min()) and float(image.max()) <= 1


def test_a_missing_slice_stops_the_run_with_exit_2_and_nothing_in_the_weight_cache(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    manifest, labels = _manifest(tmp_path, 6)
    hu, _ = phantom_hu(6)
    for path in (tmp_path / "series1").iterdir():
        path.unlink()
    write_series(tmp_path / "series1", hu[1], spacing=(1.0, 1.0, 1.0), skip=4)
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""harness: 1
name: volumes_bad
seed: 0
device: cpu
dataset:
  plugin: volumes
  path: {manifest}
  class_names: [benign, malignant]
  window: {{center: -600, width: 1500}}
  roi_grid: [12, 12, 12]
model:
  plugin: train
  architecture: small_cnn_3d
  epochs: 1
epsilons: [0.004]
attacks:
  - attack: fgsm
""")
    cache = tmp_path / "cache"
    code = main(["run", str(plan), "--out", str(tmp_path / "runs"), "--cache-dir", str(cache), "--no-report",
                 "--no-progress"])
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "missing slice(s) between" in err[0] and "Doe" not in err[0]
    weights = [p for p in cache.rglob("*") if p.is_file() and p.suffix in (".pt", ".pth", ".json")]
    assert weights == []


def test_npz_volumes_are_read_as_n_c_d_h_w(tmp_path: Path) -> None:
    from harness.plan.params import build_dataclass
    from harness_plugins.datasets.readers.npz import NpzDataset

    hu, labels = phantom_hu(12)
    np.savez(tmp_path / "v.npz", images=((hu + 1350) / 1500).clip(0, 1).astype(np.float32), labels=labels,
             patient_ids=np.array([f"p{i // 2}" for i in range(12)]))
    params = build_dataclass(NpzDataset.Params, {"path": "v.npz", "volumes": True, "voxel_spacing_mm": [2, 2, 2]},
                             "dataset")
    bundle = NpzDataset().load(params, DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path))
    assert bundle.image_shape == (1, 16, 16, 16) and bundle.voxel_spacing_mm == (2.0, 2.0, 2.0)
    np.savez(tmp_path / "flat.npz", images=np.zeros((4, 8, 8), np.float32), labels=np.array([0, 1, 0, 1]))
    params = build_dataclass(NpzDataset.Params, {"path": "flat.npz", "volumes": True}, "dataset")
    with pytest.raises(DataError, match="must be N×D×H×W or N×C×D×H×W volumes"):
        NpzDataset().load(params, DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path))


def test_a_series_file_linking_out_of_the_sandbox_is_refused(tmp_path: Path) -> None:
    manifest, _ = _manifest(tmp_path / "data", 6)
    outside = tmp_path / "outside.dcm"
    first = sorted((tmp_path / "data" / "series1").iterdir())[0]
    first.rename(outside)
    first.symlink_to(outside)
    params = VolumeParams(path=str(manifest), class_names=["benign", "malignant"], roi_grid=[12, 12, 12])
    context = DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path, sandbox_roots=(tmp_path / "data",))
    with pytest.raises(DataError, match="resolves outside the sandbox") as info:
        VolumesDataset().load(params, context)
    assert first.name not in info.value.one_line()
