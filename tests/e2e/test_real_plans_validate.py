"""The real-data plans in tests/real_plans/: each validates as a plan and its data set loads from ../shared."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from support import REAL_PLANS, SHARED_DATASETS, require_shared

from harness.data.checks import validate_dataset
from harness.data.loading import load_dataset
from harness.plan.schema import Plan, load_plan
from harness.registry.contracts import DatasetBundle, DatasetContext
from harness.registry.manager import default_registry

SHARED = SHARED_DATASETS
PLANS = REAL_PLANS
EXPECTED = {  # plan → (dataset plugin, split sizes)
    "mammo_cbis_mass_roi": ("image_folder", {"train": 902, "val": 194, "test": 189}),
    "brain_mri_4class": ("image_folder", {"train": 2504, "val": 538, "test": 521}),
    "brain_mri_tumor_yes_no": ("image_folder", {"train": 168, "val": 38, "test": 47}),
    "lidc_npz": ("npz", {"train": 3467, "val": 802, "test": 774}),
    "dicom_samples": ("dicom", {"train": 5, "val": 2, "test": 2}),
}
CLASS_COUNTS = {  # plan → split → test images per class, in class_names order (from the data sets' READMEs)
    "mammo_cbis_mass_roi": {"train": [476, 426], "val": [101, 93], "test": [101, 88]},
    "brain_mri_4class": {"train": [746, 758, 309, 691], "val": [159, 163, 68, 148], "test": [160, 163, 50, 148]},
}
# The DICOM manifest: (file, where it comes from, label, split). Patients come from each file's PatientID, and
# every patient stays in one split (the MR variants all belong to patient 4MR1, the colour ones to ID1).
DICOM_ROWS = [
    ("CT_small.dcm", "shared", "ct", "train"),
    ("MR_small.dcm", "shared", "other", "train"),
    ("MR_small_RLE.dcm", "pydicom", "other", "train"),
    ("MR_small_jp2klossless.dcm", "pydicom", "other", "train"),
    ("MR_small_jpeg_ls_lossless.dcm", "pydicom", "other", "train"),
    ("SC_rgb_rle.dcm", "pydicom", "other", "val"),
    ("SC_rgb_jpeg_gdcm.dcm", "pydicom", "other", "val"),
    ("693_J2KI.dcm", "pydicom", "ct", "test"),
    ("JPEG2000.dcm", "pydicom", "other", "test"),
]


def write_dicom_manifest(folder: Path) -> Path:
    """Links to the shared DICOM samples and pydicom's compressed variants, and a manifest CSV beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for name, origin, label, split in DICOM_ROWS:
            source = SHARED / "dicom_samples" / name if origin == "shared" else get_testdata_file(name, download=False)
            assert source and Path(source).is_file(), f"missing DICOM sample {name} ({origin})"
            (folder / name).symlink_to(source)
            writer.writerow([name, label, split])
    return folder / "manifest.csv"


@pytest.fixture
def real_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """HARNESS_SHARED_DATASETS → ../shared/datasets, HARNESS_DICOM_MANIFEST → a generated manifest."""
    require_shared(SHARED)
    monkeypatch.setenv("HARNESS_SHARED_DATASETS", str(SHARED))
    monkeypatch.setenv("HARNESS_DICOM_MANIFEST", str(write_dicom_manifest(tmp_path / "dicom")))
    return tmp_path


def load_plan_dataset(plan: Plan, cache_dir: Path) -> DatasetBundle:
    """The plan's data set, loaded by its plugin as the runner would."""
    plugin = default_registry().get("dataset", plan.dataset.plugin)
    context = DatasetContext(seed=plan.seed, base_dir=plan.base_dir, cache_dir=cache_dir)
    return load_dataset(plugin, plan.dataset.params, context, "test-salt")


def test_every_real_plan_is_covered():
    assert {p.stem for p in PLANS.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_plan_validates_and_its_data_loads(real_env, name):
    plan = load_plan(PLANS / f"{name}.yaml")
    plugin, sizes = EXPECTED[name]
    assert plan.name == name and plan.dataset.plugin == plugin
    assert "${" not in str(plan.resolved["dataset"]["path"])
    bundle = load_plan_dataset(plan, real_env)
    validate_dataset(bundle)  # includes: no patient in two splits
    assert {split: len(bundle.splits[split]) for split in sizes} == sizes
    if name in CLASS_COUNTS:  # the README's per-split class counts (the four-class labels come from class_index)
        k = len(bundle.class_names)
        counts = {split: np.bincount(np.asarray(bundle.splits[split].labels), minlength=k).tolist()
                  for split in CLASS_COUNTS[name]}
        assert counts == CLASS_COUNTS[name]
    assert bundle.provenance["content_sha256"]
    assert not bundle.provenance.get("skipped")
    if plugin == "image_folder":
        assert bundle.provenance["source"] == str(SHARED / name) and bundle.image_shape == (1, 64, 64)
    if plugin == "dicom":
        assert bundle.image_shape == (1, 64, 64)
        assert len(bundle.provenance["transfer_syntaxes"]) == 6
        image, _ = bundle.splits["test"][0]
        assert 0.0 <= float(image.min()) < float(image.max()) <= 1.0
