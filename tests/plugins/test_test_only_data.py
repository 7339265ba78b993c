"""A locked external test set: every reader loads a test-only set, and only training plugins demand train/val."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_files import dicom_test_set, toy_images
from PIL import Image

from harness.data.checks import validate_dataset
from harness.data.loading import load_dataset
from harness.errors import DataError, PlanError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetContext
from harness_plugins.datasets.readers.dicom import DicomDataset
from harness_plugins.datasets.readers.image_folder import ImageFolderDataset
from harness_plugins.datasets.readers.npz import NpzDataset


def load(plugin: object, base: Path, **values: object):
    params = build_dataclass(plugin.Params, values, "dataset")
    return load_dataset(plugin, params, DatasetContext(seed=0, base_dir=base, cache_dir=base), "salt")


def sizes(bundle) -> dict[str, int]:
    return {name: len(split) for name, split in bundle.splits.items()}


def test_dicom_manifest_of_three_patients_all_test(tmp_path: Path) -> None:
    images, labels = toy_images(6, 16)
    manifest = dicom_test_set(tmp_path, images, labels, n_patients=3)
    bundle = load(DicomDataset(), tmp_path, path=str(manifest))
    assert sizes(bundle) == {"train": 0, "val": 0, "test": 6}
    assert bundle.provenance["patients"]["test"] == 3
    validate_dataset(bundle)  # a supplied model needs only the test split
    with pytest.raises(DataError, match=r"empty train split, but model plugin 'train' trains on it \(a supplied "
                                        r"model .* needs only a test split\)"):
        validate_dataset(bundle, ["model plugin 'train'"])
    with pytest.raises(DataError, match="model plugin 'state_dict' and defence 'adversarial_training' train on it"):
        validate_dataset(bundle, ["model plugin 'state_dict'", "defence 'adversarial_training'"])


def test_dicom_all_test_without_a_split_column_and_its_conflicts(tmp_path: Path) -> None:
    images, labels = toy_images(6, 16)
    manifest = dicom_test_set(tmp_path, images, labels, n_patients=3)
    text = manifest.read_text().replace(",split,", ",fold,")
    (tmp_path / "nosplit.csv").write_text(text)
    with pytest.raises(DataError, match=r"the test split is empty .* or use split: all_test"):
        load(DicomDataset(), tmp_path, path="nosplit.csv", split_fractions=[0.9, 0.1, 0.01])
    bundle = load(DicomDataset(), tmp_path, path="nosplit.csv", split="all_test")
    assert sizes(bundle)["test"] == 6 and bundle.provenance["split_method"] == "all rows are test (split: all_test)"
    (tmp_path / "mixed.csv").write_text(manifest.read_text().replace(",test,", ",train,", 1))
    with pytest.raises(PlanError, match=r"dataset\.split.*puts rows in train"):
        load(DicomDataset(), tmp_path, path="mixed.csv", split="all_test")


def test_image_folder_all_test(tmp_path: Path) -> None:
    images, labels = toy_images(4, 16)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = tmp_path / ("dark", "bright")[label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.rint(image[0] * 255).astype(np.uint8)).save(folder / f"{i}.png")
    bundle = load(ImageFolderDataset(), tmp_path, path=".", split="all_test")
    assert sizes(bundle) == {"train": 0, "val": 0, "test": 4}
    validate_dataset(bundle)


def test_npz_all_test_rows_and_split_all_test(tmp_path: Path) -> None:
    images, labels = toy_images(6, 16)
    np.savez(tmp_path / "locked.npz", images=images, labels=labels, split=np.array(["test"] * 6),
             patient_ids=np.array(["a", "a", "b", "b", "c", "c"]))
    bundle = load(NpzDataset(), tmp_path, path="locked.npz")
    assert sizes(bundle) == {"train": 0, "val": 0, "test": 6}
    np.savez(tmp_path / "plain.npz", images=images, labels=labels)
    bundle = load(NpzDataset(), tmp_path, path="plain.npz", split="all_test")
    assert sizes(bundle)["test"] == 6 and "all_test" in bundle.provenance["split_method"]
    np.savez(tmp_path / "mixed.npz", images=images, labels=labels, split=np.array(["train"] + ["test"] * 5))
    with pytest.raises(PlanError, match=r"dataset\.split.*puts rows in train"):
        load(NpzDataset(), tmp_path, path="mixed.npz", split="all_test")
