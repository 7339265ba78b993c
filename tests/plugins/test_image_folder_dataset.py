"""The image_folder dataset plugin: the real MIAS and brain-MRI sets, PIL modes, grouping and bad inputs."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import SHARED_DATASETS, require_shared

from harness.data.checks import validate_dataset
from harness.data.loading import load_dataset
from harness.errors import DataError, PlanError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, DatasetContext
from harness.storage.deid import hash_id
from harness_plugins.datasets.readers.image_folder import ImageFolderDataset

SALT = "test-salt"
SHARED = SHARED_DATASETS


def load(mapping: dict, base_dir: Path = Path("."), seed: int = 0, show_paths: bool = False) -> DatasetBundle:
    """Validate `mapping` like a plan's dataset section and load it as the core does (ids de-identified; file
    names in messages only with `show_paths`)."""
    plugin = ImageFolderDataset()
    params = build_dataclass(plugin.Params, mapping, "dataset")
    context = DatasetContext(seed=seed, base_dir=base_dir, cache_dir=base_dir, show_paths=show_paths)
    return load_dataset(plugin, params, context, SALT)


def read_labels(folder: Path) -> list[dict[str, str]]:
    """A shared data set's labels.csv (present in CI: absence is a failure)."""
    path = folder / "labels.csv"
    assert path.is_file(), f"missing {path}"
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def counts(bundle: DatasetBundle) -> dict[str, int]:
    return {name: len(split) for name, split in bundle.splits.items()}


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = ("path", "label", "split")) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def by_path(bundle: DatasetBundle) -> dict[str, np.ndarray]:
    """Relative path → loaded image, over every split."""
    return {rel: split[i][0].numpy() for split in bundle.splits.values() for i, (rel, _, _) in enumerate(split.items)}


# ------------------------------------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def mias() -> DatasetBundle:
    return load({"path": str(require_shared(SHARED / "mias_roi_crops")), "class_names": ["benign", "malignant"],
                 "image_size": 64})


@pytest.fixture(scope="module")
def brain() -> DatasetBundle:
    return load({"path": str(require_shared(SHARED / "brain_mri_tumor_yes_no")), "class_names": ["no", "yes"],
                 "image_size": 64, "group_column": "dup_group"})


def test_mias_loads_with_the_readme_split_counts(mias):
    validate_dataset(mias)
    assert counts(mias) == {"train": 84, "val": 17, "test": 18}
    assert mias.provenance["counts"] == {"train": {"benign": 52, "malignant": 32},
                                         "val": {"benign": 5, "malignant": 12},
                                         "test": {"benign": 11, "malignant": 7}}
    assert mias.provenance["grouping"] == "manifest column 'patient_id'" and mias.provenance["patients"]["train"] > 0
    assert mias.provenance["modes"] == {"L": 119} and mias.provenance["skipped"] == []
    assert mias.image_shape == (1, 64, 64) and mias.positive_class == 1 and mias.native_units is None
    image, label = mias.splits["test"][0]
    assert image.dtype.is_floating_point and 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
    assert label in (0, 1)


def test_brain_mri_loads_with_the_readme_split_counts_and_all_modes(brain):
    validate_dataset(brain)
    assert counts(brain) == {"train": 168, "val": 38, "test": 47}
    assert brain.provenance["counts"]["train"] == {"no": 62, "yes": 106}
    assert brain.provenance["modes"] == {"L": 30, "P": 1, "RGB": 217, "RGBA": 5}
    assert brain.provenance["file_formats"].keys() >= {"JPEG", "PNG"}


@pytest.mark.parametrize(("fixture", "folder", "column"), [("mias", "mias_roi_crops", "patient_id"),
                                                           ("brain", "brain_mri_tumor_yes_no", "dup_group")])
def test_groups_follow_the_grouping_column(request, fixture, folder, column):
    bundle = request.getfixturevalue(fixture)
    rows = read_labels(require_shared(SHARED / folder))
    expected = {r["path"]: hash_id(f"patient:{r[column]}", SALT) for r in rows}
    splits_of = defaultdict(set)
    for name, split in bundle.splits.items():
        for (rel, _, _), group in zip(split.items, split.group_ids, strict=True):
            assert group == expected[rel]
            splits_of[group].add(name)
    assert all(len(s) == 1 for s in splits_of.values())
    assert len(splits_of) == len({r[column] for r in rows})
    raw = {r[column] for r in rows} | {r["path"] for r in rows}
    ids = json.dumps([s.sample_ids + s.group_ids for s in bundle.splits.values()])
    assert not any(f'"{value}"' in ids for value in raw)


def test_the_split_column_can_be_replaced_by_a_generated_grouped_split(tmp_path):
    bundle = load({"path": str(require_shared(SHARED / "mias_roi_crops")), "class_names": ["benign", "malignant"],
                   "image_size": 32, "split_column": "no_such_column", "cache_decoded": False}, seed=5)
    validate_dataset(bundle)
    assert "grouped_stratified_split, seed 5" in bundle.provenance["split_method"]
    assert sum(counts(bundle).values()) == 119 and bundle.splits["train"].images is None


# ------------------------------------------------------------------------------------------------ PIL modes


def write_modes(root: Path) -> dict[str, np.ndarray]:
    """One 8×8 image per PIL mode; returns the expected 1-channel [0,1] image of each file."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    deep = (rng.integers(0, 65536, (8, 8))).astype(np.uint16)
    luma = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]) / 255.0
    expected = {}
    Image.fromarray(rgb, "RGB").save(root / "rgb.png")
    expected["rgb.png"] = luma
    Image.fromarray(np.dstack([rgb, np.full((8, 8), 128, np.uint8)]), "RGBA").save(root / "rgba.png")
    expected["rgba.png"] = luma  # alpha is dropped
    Image.fromarray(grey, "L").save(root / "grey.png")
    expected["grey.png"] = grey / 255.0
    Image.fromarray(grey, "L").convert("P").save(root / "palette.png")  # a grey palette
    expected["palette.png"] = grey / 255.0
    Image.fromarray(deep).save(root / "deep.png")  # 16-bit greyscale: I;16
    expected["deep.png"] = deep / 65535.0
    Image.fromarray(grey, "L").save(root / "grey.bmp")
    expected["grey.bmp"] = grey / 255.0
    Image.fromarray(deep).save(root / "deep.tif")
    expected["deep.tif"] = deep / 65535.0
    return expected


def test_pil_modes_convert_to_one_channel(tmp_path):
    expected = write_modes(tmp_path)
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    rows = [{"path": name, "label": ("a", "b")[i % 2], "split": ("train", "test")[i % 2]}
            for i, name in enumerate(expected)]
    images = by_path(load({"path": str(write_csv(tmp_path / "labels.csv", rows)), "channels": 1}))
    for name, target in expected.items():
        assert images[name].shape == (1, 8, 8)
        np.testing.assert_allclose(images[name][0], target, atol=2e-3 if name == "palette.png" else 1e-5,
                                   err_msg=name)


def test_three_channels_keep_colour_and_repeat_grey(tmp_path):
    expected = write_modes(tmp_path)
    rows = [{"path": name, "label": ("a", "b")[i % 2], "split": ("train", "test")[i % 2]}
            for i, name in enumerate(expected)]
    images = by_path(load({"path": str(write_csv(tmp_path / "labels.csv", rows)), "channels": 3}))
    rgb = np.asarray(Image.open(tmp_path / "rgb.png"), dtype=np.float64).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(images["rgb.png"], rgb, atol=1e-6)
    np.testing.assert_allclose(images["rgba.png"], rgb, atol=1e-6)
    for name in ("grey.png", "deep.png"):
        assert images[name].shape == (3, 8, 8)
        np.testing.assert_allclose(images[name], np.repeat(expected[name][None], 3, 0), atol=1e-5)


# ------------------------------------------------------------------------------------------------ folders


def write_class_folders(root: Path, per_class: int = 10, size: int = 12) -> None:
    rng = np.random.default_rng(1)
    for label, mean in (("cyst", 60), ("tumour", 180)):
        (root / label).mkdir(parents=True)
        for k in range(per_class):
            pixels = np.clip(rng.normal(mean, 25, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"img{k}.png")


def test_class_folders_each_image_its_own_group(tmp_path):
    write_class_folders(tmp_path)
    (tmp_path / "cyst" / "readme.txt").write_text("ignored: not an image extension")
    (tmp_path / ".hidden").mkdir()
    bundle = load({"path": str(tmp_path), "positive_class": "tumour"})
    validate_dataset(bundle)
    assert bundle.class_names == ["cyst", "tumour"] and bundle.positive_class == 1
    assert sum(counts(bundle).values()) == 20 and bundle.provenance["manifest"] is None
    assert bundle.provenance["grouping"].startswith("none: each image is its own group")
    assert bundle.provenance["patients"] == counts(bundle)


def test_lazy_and_cached_reads_agree(tmp_path):
    write_class_folders(tmp_path, size=20)
    cached, lazy = load({"path": str(tmp_path), "image_size": 8}), load({"path": str(tmp_path), "image_size": 8,
                                                                         "cache_decoded": False})
    assert cached.splits["train"].images is not None and lazy.splits["train"].images is None
    for name in ("train", "val", "test"):
        for i in range(len(lazy.splits[name])):
            np.testing.assert_array_equal(lazy.splits[name][i][0].numpy(), cached.splits[name][i][0].numpy())
    assert lazy.provenance["content_sha256"] == cached.provenance["content_sha256"]


def test_native_units_only_when_the_plan_gives_them(tmp_path):
    write_class_folders(tmp_path)
    units = load({"path": str(tmp_path), "native_per_unit": 255.0, "native_unit": "grey levels"}).native_units
    assert units.describe(0.004) == "1.02 grey levels"
    with pytest.raises(PlanError, match="native_per_unit"):
        build_dataclass(ImageFolderDataset.Params, {"path": "x", "native_per_unit": 2.0}, "dataset")


# ------------------------------------------------------------------------------------------------ bad inputs


def test_mixed_sizes_need_image_size(tmp_path):
    write_class_folders(tmp_path)
    Image.new("L", (30, 20)).save(tmp_path / "tumour" / "zz_wide.png")
    with pytest.raises(DataError, match=r"\(tumour/zz_wide\.png\) is 30×20 .* but file \w+ \(cyst/img0\.png\) is "
                                        "12×12 .*set image_size"):
        load({"path": str(tmp_path)}, show_paths=True)
    assert load({"path": str(tmp_path), "image_size": 16}).image_shape == (1, 16, 16)


@pytest.fixture
def bad_images(tmp_path: Path) -> dict[str, str]:
    """Unusable image files beside good ones: name → the reason expected."""
    write_class_folders(tmp_path)
    good = (tmp_path / "cyst" / "img0.png").read_bytes()
    (tmp_path / "tumour" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "tumour" / "random.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "tumour" / "empty.bmp").write_bytes(b"")
    return {"tumour/truncated.png": "cannot decode the PNG image", "tumour/random.jpg": "not an image file",
            "tumour/empty.bmp": "not an image file"}


def test_bad_image_fails_in_one_line_naming_the_file(tmp_path, bad_images):
    for name, reason in bad_images.items():
        others = [n for n in bad_images if n != name]
        for other in others:
            (tmp_path / other).rename(tmp_path / f"{other}.off")
        with pytest.raises(DataError) as info:
            load({"path": str(tmp_path)}, show_paths=True)
        message = str(info.value)
        assert "\n" not in message and f"({name}): {reason}" in message, message
        with pytest.raises(DataError) as info:  # by default the file is named by its keyed hash only
            load({"path": str(tmp_path)})
        message = str(info.value)
        assert name not in message and reason in message and "show_paths: true" in message, message
        for other in others:
            (tmp_path / f"{other}.off").rename(tmp_path / other)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_float_tiff_with_nan_or_inf_is_refused_naming_the_file(tmp_path, bad):
    write_class_folders(tmp_path)
    pixels = np.full((12, 12), 0.5, dtype=np.float32)
    pixels[0, 0] = bad
    Image.fromarray(pixels, mode="F").save(tmp_path / "tumour" / "float.tif")
    with pytest.raises(DataError, match=r"file \w+ \(tumour/float\.tif\): the pixel data contain 1 NaN or Inf value"):
        load({"path": str(tmp_path)}, show_paths=True)


def test_bad_images_are_skipped_and_listed(tmp_path, bad_images):
    bundle = load({"path": str(tmp_path), "on_error": "skip"}, show_paths=True)
    skipped = {entry["file"].split("(")[1].rstrip(")"): entry["reason"] for entry in bundle.provenance["skipped"]}
    assert set(skipped) == set(bad_images)
    for name, reason in bad_images.items():
        assert skipped[name].startswith(reason) and str(tmp_path) not in skipped[name]
    assert bundle.provenance["n_samples"] == 20


def test_label_not_in_the_classes_names_the_csv_row_and_value(tmp_path):
    write_class_folders(tmp_path)
    rows = [{"path": "cyst/img0.png", "label": "cyst", "split": "train"},
            {"path": "tumour/img0.png", "label": "glioma", "split": "test"}]
    manifest = write_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(DataError, match=r"labels\.csv line 3: label 'glioma' is not one of the classes"):
        load({"path": str(tmp_path), "class_names": ["cyst", "tumour"]})
    rows[1]["label"] = "5"
    write_csv(manifest, rows)
    with pytest.raises(DataError, match=r"line 3: label '5' is not one of the classes"):
        load({"path": str(manifest), "class_names": ["cyst", "tumour"]})


def test_a_class_without_images_and_a_bad_split_value_are_named(tmp_path):
    write_class_folders(tmp_path)
    rows = [{"path": "cyst/img0.png", "label": "0", "split": "train"},
            {"path": "cyst/img1.png", "label": "0", "split": "test"}]
    write_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(DataError, match="class 'tumour' has no images"):
        load({"path": str(tmp_path), "class_names": ["cyst", "tumour"]})
    rows[1]["split"] = "holdout"
    write_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(DataError, match=r"labels\.csv line 3: split 'holdout' is not one of train, val, test"):
        load({"path": str(tmp_path), "class_names": ["cyst", "tumour"]})


def test_a_missing_group_column_and_a_missing_folder_are_named(tmp_path):
    write_class_folders(tmp_path)
    write_csv(tmp_path / "labels.csv", [{"path": "cyst/img0.png", "label": "0", "split": "train"}])
    with pytest.raises(DataError, match=r"labels\.csv: no 'dup_group' column"):
        load({"path": str(tmp_path), "group_column": "dup_group"})
    with pytest.raises(DataError, match="does not exist"):
        load({"path": str(tmp_path / "nowhere")})


def test_groups_in_two_manifest_splits_are_refused(tmp_path):
    write_class_folders(tmp_path)
    rows = [{"path": "cyst/img0.png", "label": "0", "split": "train", "patient_id": "same"},
            {"path": "tumour/img0.png", "label": "1", "split": "test", "patient_id": "same"}]
    write_csv(tmp_path / "labels.csv", rows, ("path", "label", "split", "patient_id"))
    with pytest.raises(DataError, match=r"labels\.csv: patient [0-9a-f]{16} appears in both the train and test"):
        load({"path": str(tmp_path), "class_names": ["cyst", "tumour"]})


def test_truncated_images_are_refused_after_weasyprint_is_imported(tmp_path, bad_images):
    """WeasyPrint sets PIL's LOAD_TRUNCATED_IMAGES on import; the reader must still refuse a truncated file."""
    pytest.importorskip("weasyprint")
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES  # the global the reader must not depend on
    bundle = load({"path": str(tmp_path), "on_error": "skip"}, show_paths=True)
    assert any("truncated.png" in entry["file"] for entry in bundle.provenance["skipped"])
    assert ImageFile.LOAD_TRUNCATED_IMAGES  # and it is left as it was found


def test_the_four_class_brain_mri_set_loads_with_the_readme_counts():
    """K classes from a labels.csv's class column (../shared/datasets/brain_mri_4class): names in index order."""
    bundle = load({"path": str(require_shared(SHARED / "brain_mri_4class")), "label_column": "class",
                   "image_size": 16, "group_column": "dup_group", "cache_decoded": False})
    assert bundle.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert {name: np.bincount(split.labels, minlength=4).tolist() for name, split in bundle.splits.items()} == {
        "train": [746, 758, 309, 691], "val": [159, 163, 68, 148], "test": [160, 163, 50, 148]}
