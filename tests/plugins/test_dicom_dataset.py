"""The dicom dataset plugin: real files, compressed variants, generated edge cases, bad files, laziness and PHI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless, generate_uid
from support import SHARED_DATASETS, require_shared

from harness.data.checks import validate_dataset
from harness.data.loading import load_dataset
from harness.errors import DataError, PlanError
from harness.plan.params import build_dataclass
from harness.plan.schema import load_plan_text
from harness.registry.contracts import DatasetBundle, DatasetContext
from harness.registry.manager import default_registry
from harness.run.runner import RunConfig, Runner
from harness.storage.deid import hash_id
from harness_plugins.datasets.readers.dicom import EXTRA_TAGS, DicomDataset, DicomReader, WindowParams, modality
from harness_plugins.datasets.readers.medical_io import short_reason

SALT = "test-salt"
SHARED_DICOM = SHARED_DATASETS / "dicom_samples"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


# ------------------------------------------------------------------------------------------------ helpers


def load(mapping: dict, base_dir: Path = Path("."), seed: int = 0, show_paths: bool = False) -> DatasetBundle:
    """Validate `mapping` like a plan's dataset section and load it as the core does (ids de-identified; file
    names in messages only with `show_paths`)."""
    plugin = DicomDataset()
    params = build_dataclass(plugin.Params, mapping, "dataset")
    context = DatasetContext(seed=seed, base_dir=base_dir, cache_dir=base_dir, show_paths=show_paths)
    return load_dataset(plugin, params, context, SALT)


def pydicom_file(name: str) -> Path:
    """A file shipped inside pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path, f"pydicom no longer ships {name}"
    return Path(path)


def shared(name: str) -> Path:
    """A file of ../shared/datasets/dicom_samples (present in CI: absence is a failure)."""
    path = require_shared(SHARED_DICOM / name)
    assert path.is_file(), f"missing {path}"
    return path


def link(folder: Path, source: Path, name: str | None = None) -> str:
    """Symlink `source` into `folder` (under the data root); returns its name."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or source.name)
    target.symlink_to(source)
    return target.name


def write_manifest(path: Path, rows: list[dict], columns: tuple[str, ...] = ("path", "label", "split")) -> Path:
    """A manifest CSV with the given rows."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_dicom(path: Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
               modality_name: str = "OT", rescale: tuple[float, float] | None = None,
               window: tuple[float, float] | None = None, patient_id: str = "P0", syntax: str | None = None,
               **tags: object) -> Path:
    """Write a DICOM file holding `pixels` (rows×cols, frames×rows×cols or rows×cols×3)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE if modality_name == "CT" else SECONDARY_CAPTURE
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = modality_name, patient_id
    ds.set_pixel_data(pixels, photometric, bits_stored or pixels.dtype.itemsize * 8)
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    if syntax:
        ds.compress(UID(syntax))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp(rows: int = 16, cols: int = 16, dtype: str = "uint16", scale: int = 1, offset: int = 0) -> np.ndarray:
    """A deterministic test pattern."""
    return (np.arange(rows * cols).reshape(rows, cols) * scale + offset).astype(dtype)


def split_manifest(folder: Path, names: list[str], labels: list[str]) -> Path:
    """Alternate files between train and test so both splits exist; one patient per file."""
    rows = [{"path": n, "label": lb, "split": ("train", "test")[i % 2], "patient_id": f"p{i}"}
            for i, (n, lb) in enumerate(zip(names, labels, strict=True))]
    return write_manifest(folder / "manifest.csv", rows, ("path", "label", "split", "patient_id"))


def all_images(bundle: DatasetBundle) -> dict[str, np.ndarray]:
    """Relative path (and frame) → loaded image, over every split."""
    out = {}
    for split in bundle.splits.values():
        for i, (rel, frame, _) in enumerate(split.items):
            out[rel if frame is None else f"{rel}#{frame}"] = split[i][0].numpy()
    return out


# ------------------------------------------------------------------------------------------------ real files


def test_ct_small_is_in_hu_after_the_modality_lut_and_windowed_to_unit_range(tmp_path):
    path = shared("CT_small.dcm")
    meta = Dataset()
    hu = modality(meta, pixel_array(str(path), ds_out=meta, specific_tags=EXTRA_TAGS), 0)
    # stored 128..2191 with slope 1, intercept -1024
    assert (hu.min(), hu.max()) == (-896.0, 1167.0)
    image = DicomReader(WindowParams(center=40, width=400), "middle").read(path, None)
    assert image.shape == (1, 128, 128) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], np.clip((hu + 160) / 400, 0, 1), atol=1e-6)
    assert 0.0 <= image.min() < image.max() <= 1.0


def test_ct_data_set_reports_native_units_in_hu(tmp_path):
    names = [link(tmp_path, shared("CT_small.dcm")), link(tmp_path, pydicom_file("693_J2KI.dcm"))]
    bundle = load({"path": str(split_manifest(tmp_path, names, ["a", "b"])), "class_names": ["a", "b"],
                   "window": {"center": -600, "width": 1500}, "image_size": 32})
    validate_dataset(bundle)
    assert bundle.native_units.per_unit == 1500 and bundle.native_units.unit == "HU"
    assert bundle.native_units.describe(0.004) == "6 HU"
    prov = bundle.provenance
    assert prov["modalities"] == {"CT": 2} and prov["window"] == {"center": -600.0, "width": 1500.0, "from": "plan"}
    assert prov["transfer_syntaxes"] == {"Explicit VR Little Endian (1.2.840.10008.1.2.1)": 1,
                                         "JPEG 2000 Image Compression (1.2.840.10008.1.2.4.91)": 1}


def test_mr_small_uses_the_files_window(tmp_path):
    path = shared("MR_small.dcm")
    stored = pydicom.dcmread(path).pixel_array.astype(np.float64)  # WindowCenter 600, WindowWidth 1600
    image = DicomReader("file", "middle").read(path, None)
    np.testing.assert_allclose(image[0], np.clip((stored + 200) / 1600, 0, 1), atol=1e-6)
    names = [link(tmp_path, path), link(tmp_path, pydicom_file("MR_small_RLE.dcm"))]
    bundle = load({"path": str(split_manifest(tmp_path, names, ["a", "b"])), "class_names": ["a", "b"]})
    assert bundle.native_units.per_unit == 1600 and bundle.native_units.unit == "raw units"
    assert bundle.provenance["window"]["windows"] == [{"center": 600.0, "width": 1600.0}]


@pytest.mark.parametrize("window", [{"center": 600, "width": 1600}, "file", "minmax"])
def test_lossless_variants_decode_to_the_same_pixels(tmp_path, window):
    variants = ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                "MR_small_bigendian.dcm", "MR_small_implicit.dcm"]
    names = [link(tmp_path, shared("MR_small.dcm"))] + [link(tmp_path, pydicom_file(v)) for v in variants]
    manifest = split_manifest(tmp_path, names, ["a", "b"] * 3)
    bundle = load({"path": str(manifest), "class_names": ["a", "b"], "window": window, "cache_decoded": False})
    images = all_images(bundle)
    for name in variants:
        np.testing.assert_array_equal(images[name], images["MR_small.dcm"], err_msg=name)
    # the shared SOPInstanceUID is not unique here, so ids fall back to the (unique) relative paths
    ids = [i for s in bundle.splits.values() for i in s.sample_ids]
    assert len(set(ids)) == len(ids)


def test_colour_variants_lossless_exact_and_lossy_close():
    reader = DicomReader("file", "middle")
    reference = reader.read(pydicom_file("SC_rgb_rle.dcm"), None)
    assert reference.shape == (3, 100, 100)
    for name in ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle_16bit.dcm"):  # JPEG lossless; 16-bit RLE of the same image
        np.testing.assert_array_equal(reader.read(pydicom_file(name), None), reference, err_msg=name)
    np.testing.assert_array_equal(reader.read(pydicom_file("SC_rgb_rle_2frame.dcm"), 0), reference)
    lossy = reader.read(pydicom_file("SC_rgb_jpeg_dcmtk.dcm"), None)  # JPEG baseline, YBR_FULL → RGB
    assert np.abs(lossy - reference).mean() < 0.01 and np.abs(lossy - reference).max() < 0.05


def test_compressed_copies_give_the_same_content_hash(tmp_path):
    hashes = []
    for variant in ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        folder = tmp_path / variant
        names = [link(folder, pydicom_file(variant), "a.dcm"), link(folder, shared("CT_small.dcm"), "b.dcm")]
        bundle = load({"path": str(split_manifest(folder, names, ["x", "y"])), "class_names": ["x", "y"],
                       "window": "minmax", "image_size": 32})
        hashes.append(bundle.provenance["content_sha256"])
    assert len(set(hashes)) == 1
    changed = load({"path": str(tmp_path / "MR_small.dcm" / "manifest.csv"), "class_names": ["x", "y"],
                    "window": "minmax", "image_size": 16})
    assert changed.provenance["content_sha256"] != hashes[0]


# ------------------------------------------------------------------------------------------------ generated


def test_monochrome1_is_inverted(tmp_path):
    pixels = ramp(dtype="uint8")
    make_dicom(tmp_path / "m2.dcm", pixels, window=(127.5, 255))
    make_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1", window=(127.5, 255))
    reader = DicomReader("file", "middle")
    normal, inverted = reader.read(tmp_path / "m2.dcm", None), reader.read(tmp_path / "m1.dcm", None)
    np.testing.assert_allclose(normal, pixels[None] / 255.0, atol=1e-6)
    np.testing.assert_allclose(inverted, 1.0 - normal, atol=1e-6)


def test_12_bit_stored_in_16_ignores_the_unused_high_bits(tmp_path):
    pixels = ramp(64, 64) % 4096
    path = make_dicom(tmp_path / "b12.dcm", pixels, bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.PixelData = (np.frombuffer(ds.PixelData, dtype=np.uint16) | 0xF000).tobytes()  # garbage in bits 12..15
    ds.save_as(path)
    image = DicomReader(WindowParams(2048, 4096), "middle").read(path, None)
    np.testing.assert_allclose(image[0], pixels / 4096.0, atol=1e-6)


@pytest.mark.parametrize("bits", [16, 12])
def test_signed_ct_with_rescale_is_windowed_in_hu(tmp_path, bits):
    stored = (ramp(32, 32, "int32", scale=3) % 4000 - 2000).astype(np.int16)  # signed stored values
    path = make_dicom(tmp_path / "s.dcm", stored, bits_stored=bits, modality_name="CT", rescale=(1.0, -24.0))
    assert pydicom.dcmread(path).PixelRepresentation == 1
    image = DicomReader(WindowParams(-600, 1500), "middle").read(path, None)
    np.testing.assert_allclose(image[0], np.clip((stored - 24.0 + 1350) / 1500, 0, 1), atol=1e-6)


def test_eight_bit_unsigned_and_rle_compressed_generated_file(tmp_path):
    pixels = ramp(dtype="uint8")
    plain = make_dicom(tmp_path / "p.dcm", pixels)
    rle = make_dicom(tmp_path / "r.dcm", pixels, syntax=RLELossless)
    reader = DicomReader("minmax", "middle")
    np.testing.assert_array_equal(reader.read(plain, None), reader.read(rle, None))
    np.testing.assert_allclose(reader.read(plain, None)[0], pixels / 255.0, atol=1e-6)


def write_multiframe(folder: Path, n_patients: int = 2) -> None:
    """Per class, files of 5 frames whose frame k is constant 10·k (+100 for class b)."""
    for label, offset in (("a", 0), ("b", 100)):
        for p in range(n_patients):
            frames = np.stack([np.full((8, 8), 10 * k + offset, np.uint16) for k in range(5)])
            make_dicom(folder / label / f"pat{p}.dcm", frames, patient_id=f"{label}{p}")


def test_multi_frame_middle_list_and_all(tmp_path):
    write_multiframe(tmp_path, n_patients=1)
    # one patient per class: the split comes from a manifest
    rows = [{"path": "a/pat0.dcm", "label": "a", "split": "train"}, {"path": "b/pat0.dcm", "label": "b",
                                                                      "split": "test"}]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    base = {"path": str(manifest), "class_names": ["a", "b"], "window": {"center": 100, "width": 200}}
    middle = all_images(load(base))
    assert set(middle) == {"a/pat0.dcm#2", "b/pat0.dcm#2"}
    np.testing.assert_allclose(middle["a/pat0.dcm#2"], 20 / 200)
    listed = load({**base, "frames": [0, 4], "cache_decoded": False})
    images = all_images(listed)
    assert set(images) == {"a/pat0.dcm#0", "a/pat0.dcm#4", "b/pat0.dcm#0", "b/pat0.dcm#4"}
    np.testing.assert_allclose(images["b/pat0.dcm#4"], (100 + 40) / 200)
    train = listed.splits["train"]
    assert len(set(train.group_ids)) == 1 and len(set(train.sample_ids)) == 2  # frames share the patient
    assert len(all_images(load({**base, "frames": "all"}))) == 10
    with pytest.raises(DataError, match=r"m\.csv line \d, file [0-9a-f]{8}: frame 7 was asked for but the file "
                                        "has 5 frames"):
        load({**base, "frames": [7]})


def test_enhanced_multi_frame_functional_groups_give_rescale_and_per_frame_windows(tmp_path):
    frames = np.stack([np.full((4, 4), 100 * (k + 1), np.uint16) for k in range(3)])
    rescale, shared_group = Dataset(), Dataset()
    rescale.RescaleSlope, rescale.RescaleIntercept = 2, -100
    shared_group.PixelValueTransformationSequence = [rescale]
    per_frame = []
    for k in range(3):
        voi, group = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = 100.0 * (k + 1), 400.0  # frame k: values 200(k+1)-100
        group.FrameVOILUTSequence = [voi]
        per_frame.append(group)
    path = make_dicom(tmp_path / "enhanced.dcm", frames, SharedFunctionalGroupsSequence=[shared_group],
                      PerFrameFunctionalGroupsSequence=per_frame)
    reader = DicomReader("file", "all")
    assert reader.inspect(path).frames == [0, 1, 2]
    for k in range(3):
        value = 2 * 100 * (k + 1) - 100
        expected = (value - (100 * (k + 1) - 200)) / 400
        np.testing.assert_allclose(reader.read(path, k), expected, atol=1e-6)


def test_voi_lut_sequence_is_used_when_the_file_has_no_window_values(tmp_path):
    pixels = ramp(16, 16, "uint8")
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 8]
    lut.add_new("LUTData", "US", list(range(255, -1, -1)))  # an inverting LUT
    path = make_dicom(tmp_path / "lut.dcm", pixels, VOILUTSequence=[lut])
    np.testing.assert_allclose(DicomReader("file", "middle").read(path, None)[0], (255 - pixels) / 255.0, atol=1e-6)


def test_rgb_to_one_or_three_channels(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    path = make_dicom(tmp_path / "rgb.dcm", pixels, photometric="RGB")
    rows = [{"path": "rgb.dcm", "label": "a", "split": "train"},
            {"path": link(tmp_path, pydicom_file("SC_rgb_rle.dcm")), "label": "b", "split": "test"}]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    rgb = all_images(load({"path": str(manifest), "class_names": ["a", "b"], "channels": 3, "image_size": 12}))
    np.testing.assert_allclose(rgb["rgb.dcm"], pixels.transpose(2, 0, 1) / 255.0, atol=1e-6)
    grey = all_images(load({"path": str(manifest), "class_names": ["a", "b"], "channels": 1, "image_size": 12}))
    luma = (pixels.astype(np.float64) @ [0.299, 0.587, 0.114]) / 255.0
    np.testing.assert_allclose(grey["rgb.dcm"][0], luma, atol=1e-5)
    assert path.is_file()


def test_roi_crop_pads_outside_the_image_and_resizes(tmp_path):
    pixels = ramp(20, 20, "uint16")
    make_dicom(tmp_path / "a.dcm", pixels, patient_id="A")
    make_dicom(tmp_path / "b.dcm", pixels, patient_id="B")
    rows = [{"path": "a.dcm", "label": "a", "split": "train", "roi_x": 10, "roi_y": 5, "roi_size": 4},
            {"path": "b.dcm", "label": "b", "split": "test", "roi_x": 1, "roi_y": 1, "roi_size": 4}]
    manifest = write_manifest(tmp_path / "m.csv", rows, ("path", "label", "split", "roi_x", "roi_y", "roi_size"))
    images = all_images(load({"path": str(manifest), "class_names": ["a", "b"], "window": {"center": 200,
                                                                                       "width": 400}}))
    np.testing.assert_allclose(images["a.dcm"][0], pixels[3:7, 8:12] / 400.0, atol=1e-6)
    corner = images["b.dcm"][0]
    assert np.all(corner[0] == 0) and np.all(corner[:, 0] == 0)  # outside the image: black
    np.testing.assert_allclose(corner[1:, 1:], pixels[0:3, 0:3] / 400.0, atol=1e-6)
    resized = load({"path": str(manifest), "class_names": ["a", "b"], "window": "minmax", "image_size": 8})
    assert resized.image_shape == (1, 8, 8)


def test_class_folders_and_patient_grouped_split(tmp_path):
    for label, value in (("benign", 100), ("malignant", 900)):
        for p in range(10):
            for k in range(2):
                make_dicom(tmp_path / label / f"pat{p}" / f"img{k}.dcm", ramp(8, 8, offset=value + p + k),
                           patient_id=f"{label}-{p}")
    (tmp_path / "benign" / "notes.txt").write_text("not a dicom file; not matched by *.dcm")
    bundle = load({"path": str(tmp_path), "window": "minmax"}, seed=3)
    validate_dataset(bundle)
    assert bundle.class_names == ["benign", "malignant"] and bundle.positive_class == 1
    assert sum(len(s) for s in bundle.splits.values()) == 40
    assert bundle.provenance["grouping"].startswith("DICOM PatientID")
    assert "grouped_stratified_split, seed 3" in bundle.provenance["split_method"]
    expected = {hash_id(f"patient:{c}-{p}", SALT) for c in ("benign", "malignant") for p in range(10)}
    assert {g for s in bundle.splits.values() for g in s.group_ids} == expected
    again = load({"path": str(tmp_path), "window": "minmax", "split_seed": 3}, seed=99)
    assert again.provenance["content_sha256"] == bundle.provenance["content_sha256"]


# ------------------------------------------------------------------------------------------------ bad inputs


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, str]:
    """Bad files beside two good ones: file name → the reason expected in messages."""
    data = shared("CT_small.dcm").read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(data[: int(len(data) * 0.6)])
    (tmp_path / "random.dcm").write_bytes(np.random.default_rng(0).bytes(4000))
    no_pixels = pydicom.dcmread(shared("CT_small.dcm"))
    del no_pixels.PixelData
    no_pixels.save_as(tmp_path / "nopixels.dcm")
    make_dicom(tmp_path / "mpeg.dcm", ramp(dtype="uint8"))
    mpeg = pydicom.dcmread(tmp_path / "mpeg.dcm")
    mpeg.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no pixel decoder
    mpeg.PixelData = encapsulate([b"\x00" * 256])
    mpeg.save_as(tmp_path / "mpeg.dcm", enforce_file_format=True)
    private = pydicom.dcmread(tmp_path / "mpeg.dcm")
    private.file_meta.TransferSyntaxUID = UID("1.2.3.4.5.6.7")
    private.save_as(tmp_path / "private.dcm", enforce_file_format=True, implicit_vr=False, little_endian=True)
    link(tmp_path, pydicom_file("JPEG-lossy.dcm"))  # 12-bit JPEG Extended: no installed plugin decodes it
    link(tmp_path, shared("CT_small.dcm"), "good_ct.dcm")
    link(tmp_path, shared("MR_small.dcm"), "good_mr.dcm")
    return {"truncated.dcm": "truncated: the pixel data needs 32768 bytes",
            "random.dcm": "not a DICOM file",
            "nopixels.dcm": "no pixel data",
            "mpeg.dcm": "unsupported transfer syntax MPEG2 Main Profile / Main Level (1.2.840.10008.1.2.4.100)",
            "private.dcm": "unsupported transfer syntax '1.2.3.4.5.6.7'",
            "JPEG-lossy.dcm": "cannot decode the JPEG Extended (Process 2 and 4) (1.2.840.10008.1.2.4.51) pixel data"}


def test_each_bad_file_fails_in_one_line_naming_it(tmp_path, bad_files):
    for name, reason in bad_files.items():
        rows = [{"path": "good_ct.dcm", "label": "a", "split": "train"}, {"path": name, "label": "b",
                                                                          "split": "test"}]
        manifest = write_manifest(tmp_path / "one.csv", rows)
        with pytest.raises(DataError) as info:
            load({"path": str(manifest), "class_names": ["a", "b"], "window": "minmax"}, show_paths=True)
        message = str(info.value)
        assert "\n" not in message and message == info.value.one_line(), message
        assert f"one.csv line 3, file {hash_id(f'file:{name}', SALT)[:8]} ({name}): " in message, message
        assert reason in message, message
        with pytest.raises(DataError) as info:  # by default the file is named by its keyed hash only
            load({"path": str(manifest), "class_names": ["a", "b"], "window": "minmax"})
        assert name not in str(info.value) and reason in str(info.value)


def test_skip_lists_every_bad_file_with_its_reason(tmp_path, bad_files):
    rows = [{"path": "good_ct.dcm", "label": "a", "split": "train"},
            {"path": "good_mr.dcm", "label": "b", "split": "test"}]
    rows += [{"path": name, "label": "b", "split": "val"} for name in bad_files]
    rows.append({"path": "missing.dcm", "label": "a", "split": "val"})
    manifest = write_manifest(tmp_path / "all.csv", rows)
    bundle = load({"path": str(manifest), "class_names": ["a", "b"], "window": "minmax", "on_error": "skip",
                   "image_size": 32}, show_paths=True)
    skipped = {entry["file"].split("(")[1].rstrip(")"): entry["reason"] for entry in bundle.provenance["skipped"]}
    assert set(skipped) == set(bad_files) | {"missing.dcm"}
    for name, reason in bad_files.items():
        assert reason in skipped[name]
    assert skipped["missing.dcm"] == "file not found"
    assert bundle.provenance["n_skipped"] == 7 and bundle.provenance["n_samples"] == 2
    assert str(tmp_path) not in json.dumps(bundle.provenance["skipped"])


def test_mixed_sizes_without_image_size_name_the_file_and_both_sizes(tmp_path):
    names = [link(tmp_path, shared("CT_small.dcm")), link(tmp_path, shared("MR_small.dcm"))]
    manifest = split_manifest(tmp_path, names, ["a", "b"])
    with pytest.raises(DataError, match=r"\(MR_small\.dcm\) is 64×64 .* but file \w+ \(CT_small\.dcm\) is 128×128 "
                                        ".*image_size"):
        load({"path": str(manifest), "class_names": ["a", "b"], "window": "minmax"}, show_paths=True)


def test_label_not_in_the_classes_names_csv_line_and_value(tmp_path):
    names = [link(tmp_path, shared("CT_small.dcm")), link(tmp_path, shared("MR_small.dcm"))]
    manifest = split_manifest(tmp_path, names, ["a", "tumour"])
    with pytest.raises(DataError, match=r"manifest\.csv line 3: label 'tumour' is not one of the classes"):
        load({"path": str(manifest), "class_names": ["a", "b"], "window": "minmax"})
    manifest = split_manifest(tmp_path, names, ["0", "2"])
    with pytest.raises(DataError, match=r"line 3: label '2' is not one of the classes \['a', 'b'\]"):
        load({"path": str(manifest), "class_names": ["a", "b"], "window": "minmax"})


def test_a_class_without_images_is_named(tmp_path):
    names = [link(tmp_path, shared("CT_small.dcm")), link(tmp_path, shared("MR_small.dcm"))]
    manifest = split_manifest(tmp_path, names, ["a", "a"])
    with pytest.raises(DataError, match="class 'c' has no images"):
        load({"path": str(manifest), "class_names": ["a", "c"], "window": "minmax", "image_size": 32})


def test_paths_outside_the_data_root_are_refused(tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", [{"path": "../elsewhere.dcm", "label": "a", "split": "train"}])
    with pytest.raises(DataError, match=r"m\.csv line 2: the path of file \w+ is outside the data folder"):
        load({"path": str(manifest), "class_names": ["a", "b"]})


def test_file_window_missing_asks_for_a_window(tmp_path):
    names = [link(tmp_path, shared("CT_small.dcm")), link(tmp_path, shared("MR_small.dcm"))]
    with pytest.raises(DataError, match=r"\(CT_small\.dcm\): the file has no window .*window: minmax"):
        load({"path": str(split_manifest(tmp_path, names, ["a", "b"])), "class_names": ["a", "b"]}, show_paths=True)


def test_bad_params_are_plan_errors():
    with pytest.raises(PlanError, match="dataset.window"):
        build_dataclass(DicomDataset.Params, {"path": "x", "window": "auto"}, "dataset")
    with pytest.raises(PlanError, match="dataset.window"):
        build_dataclass(DicomDataset.Params, {"path": "x", "window": {"center": 0, "width": 0}}, "dataset")
    with pytest.raises(PlanError, match="dataset.frames"):
        build_dataclass(DicomDataset.Params, {"path": "x", "frames": []}, "dataset")
    with pytest.raises(PlanError, match="dataset.positive_class"):
        build_dataclass(DicomDataset.Params, {"path": "x", "class_names": ["a", "b"], "positive_class": "c"},
                        "dataset")


def make_float_dicom(path: Path, pixels: np.ndarray, patient_id: str = "P0") -> Path:
    """A DICOM file with 32-bit Float Pixel Data (which, unlike integer pixel data, can hold NaN and Inf)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "OT", patient_id
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.BitsAllocated = 1, "MONOCHROME2", 32
    ds.FloatPixelData = pixels.astype(np.float32).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("window", ["minmax", {"center": 0.5, "width": 1.0}])
def test_non_finite_float_pixel_data_is_refused_naming_the_file(tmp_path, bad, window):
    good = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    broken = good.copy()
    broken[3, 4] = bad
    make_float_dicom(tmp_path / "good.dcm", good, "p0")
    make_float_dicom(tmp_path / "broken.dcm", broken, "p1")
    make_float_dicom(tmp_path / "good_b.dcm", good[::-1].copy(), "p2")
    manifest = write_manifest(tmp_path / "m.csv", [{"path": "good.dcm", "label": "a", "split": "train"},
                                                   {"path": "broken.dcm", "label": "b", "split": "test"},
                                                   {"path": "good_b.dcm", "label": "b", "split": "test"}])
    mapping = {"path": str(manifest), "class_names": ["a", "b"], "window": window}
    with pytest.raises(DataError, match=r"m\.csv line 3, file \w+ \(broken\.dcm\): the pixel data contain 1 NaN or "
                                        "Inf value"):
        load(mapping, show_paths=True)
    skipped = load({**mapping, "on_error": "skip"}, show_paths=True)  # an unusable file like any other
    assert len(skipped.provenance["skipped"]) == 1 and "NaN or Inf" in skipped.provenance["skipped"][0]["reason"]


def roi_manifest(folder: Path, roi_x: int, roi_y: int) -> Path:
    """Two 16×16 files; the test one's ROI centre at (roi_x, roi_y)."""
    make_dicom(folder / "a.dcm", ramp(), patient_id="p0", window=(128, 256))
    make_dicom(folder / "b.dcm", ramp(), patient_id="p1", window=(128, 256))
    rows = [{"path": "a.dcm", "label": "a", "split": "train", "roi_x": 8, "roi_y": 8, "roi_size": 8},
            {"path": "b.dcm", "label": "b", "split": "test", "roi_x": roi_x, "roi_y": roi_y, "roi_size": 8}]
    return write_manifest(folder / "rois.csv", rows, ("path", "label", "split", "roi_x", "roi_y", "roi_size"))


def test_an_roi_outside_the_image_names_the_file_and_the_row(tmp_path):
    for x, y in ((5000, 8), (8, -1), (16, 8)):
        manifest = roi_manifest(tmp_path, x, y)
        with pytest.raises(DataError, match=rf"rois\.csv line 3, file \w+: the ROI centre \(roi_x={x}, roi_y={y}\) "
                                            r"lies outside the image \(16×16"):
            load({"path": str(manifest), "class_names": ["a", "b"]})
    # a lesion near the edge: the square reaches past the border, which is black (as the MIAS crops are)
    bundle = load({"path": str(roi_manifest(tmp_path, 15, 0)), "class_names": ["a", "b"]})
    image = bundle.splits["test"][0][0].numpy()
    assert image.shape == (1, 8, 8) and (image[0, :4] == 0).all() and (image[0, :, 7] == 0).all()


def test_sandbox_refuses_a_symlinked_file_that_leads_outside_the_data_folder(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    make_dicom(data / "a" / "inside.dcm", ramp(), patient_id="p0", window=(128, 256))
    make_dicom(outside / "secret.dcm", ramp(), patient_id="p1", window=(128, 256))
    link(data / "b", outside / "secret.dcm", "escape.dcm")
    params = build_dataclass(DicomDataset.Params, {"path": str(data), "split": "all_test"}, "dataset")
    loose = DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path)
    assert len(load_dataset(DicomDataset(), params, loose, SALT).splits["test"]) == 2  # no sandbox: followed
    sandboxed = DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path, sandbox_roots=(data,))
    with pytest.raises(DataError, match=r"dicom: file \w+ resolves outside the sandbox") as info:
        load_dataset(DicomDataset(), params, sandboxed, SALT)
    assert "escape" not in str(info.value) and "secret" not in str(info.value)
    skip = build_dataclass(DicomDataset.Params, {"path": str(data), "split": "all_test", "on_error": "skip"},
                           "dataset")
    with pytest.raises(DataError, match="outside the sandbox"):  # never skipped: it is not a damaged file
        load_dataset(DicomDataset(), skip, sandboxed, SALT)


# ------------------------------------------------------------------------------------------------ laziness


def test_lazy_reads_equal_cached_images_and_the_auto_cache_has_a_limit(tmp_path):
    write_multiframe(tmp_path, n_patients=6)
    base = {"path": str(tmp_path), "class_names": ["a", "b"], "window": "minmax", "frames": "all"}
    cached, lazy = load(base), load({**base, "cache_decoded": False})
    over_limit = load({**base, "cache_limit_mb": 0.001})
    assert cached.splits["train"].images is not None and cached.provenance["cache_decoded"] is True
    assert lazy.splits["train"].images is None and over_limit.splits["train"].images is None
    assert over_limit.provenance["cache_decoded"] is False
    for name in ("train", "val", "test"):
        for i in range(len(cached.splits[name])):
            np.testing.assert_array_equal(cached.splits[name][i][0].numpy(), lazy.splits[name][i][0].numpy())
    assert lazy.provenance["content_sha256"] == cached.provenance["content_sha256"]


# ------------------------------------------------------------------------------------------------ privacy


PHI = {"PatientName": "Zyxwvuts^Qponmlk", "PatientBirthDate": "19450317", "StudyDate": "20230102",
       "AcquisitionDate": "20230102", "InstitutionName": "Hospital Of Nowhere Special", "AccessionNumber": "ACC7781"}


def write_phi_folder(root: Path) -> list[str]:
    """Class folders of DICOM files carrying patient names, ids and dates; returns the strings to look for."""
    secrets = list(PHI.values()) + ["Zyxwvuts", "Qponmlk"]
    rng = np.random.default_rng(0)
    for label, mean in (("benign", 60), ("malignant", 160)):
        for p in range(8):
            patient_id = f"MRN-{label[:3].upper()}-55{p:03d}"
            secrets.append(patient_id)
            for k in range(2):
                pixels = np.clip(rng.normal(mean, 20, (16, 16)), 0, 255).astype(np.uint8)
                path = make_dicom(root / label / f"case{p}_{k}.dcm", pixels, patient_id=patient_id,
                                  window=(127.5, 255), **PHI)
                secrets.append(str(pydicom.dcmread(path).SOPInstanceUID))
    return secrets


def test_no_patient_data_in_bundle_or_run_directory(tmp_path):
    root = tmp_path / "data"
    secrets = write_phi_folder(root)
    bundle = load({"path": str(root), "image_size": 16})
    validate_dataset(bundle)
    exposed = json.dumps({"ids": [[s.sample_ids, s.group_ids] for s in bundle.splits.values()],
                          "provenance": bundle.provenance, "name": bundle.name, "classes": bundle.class_names,
                          "units": str(bundle.native_units)})
    for secret in secrets:
        assert secret not in exposed, secret
    plan = load_plan_text(f"""
harness: 1
name: phi_check
seed: 1
device: cpu
batch_size: 8
dataset: {{plugin: dicom, path: "{root}", image_size: 16, on_error: fail}}
model: {{plugin: train, architecture: small_cnn, epochs: 1, batch_size: 8, cache: false}}
epsilons: [0.004]
attacks:
  - attack: fgsm
acceptance:
  - metric: clean_accuracy
    min: 0.0
""", registry=default_registry(), base_dir=tmp_path)
    result = Runner(plan, default_registry(), RunConfig(out_root=tmp_path / "runs", progress=False,
                                                        echo=lambda message: None)).run()
    files = [p for p in result.run_dir.rglob("*") if p.is_file()]
    assert {"manifest.json", "results.json", "samples.csv"} <= {p.name for p in files}
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for secret in secrets:
            assert secret not in text, f"{secret} found in {path.name}"
    samples = (result.run_dir / "samples.csv").read_text()
    assert bundle.splits["test"].sample_ids[0] in samples  # the hashed ids are what reach the outputs


def test_reasons_quote_neither_the_path_nor_the_name_of_a_file():
    path = Path("/data/Doe_John_MRN1234.dcm")
    error = ValueError(f"bad tag in Doe_John_MRN1234.dcm (read from {path})")
    assert short_reason(error, path) == "bad tag in <file> (read from <file>)"


def test_salt_changes_every_id(tmp_path):
    write_multiframe(tmp_path, n_patients=6)
    params = build_dataclass(DicomDataset.Params, {"path": str(tmp_path), "window": "minmax"}, "dataset")
    ids = []
    for salt in ("one", "two"):
        context = DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path)
        bundle = load_dataset(DicomDataset(), params, context, salt)
        ids.append({i for s in bundle.splits.values() for i in s.sample_ids + s.group_ids})
    assert not ids[0] & ids[1]
