"""The npz dataset plugin: the real LIDC file, hashing of patient ids, generated splits, and bad inputs."""

from __future__ import annotations

import json
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
from support import SHARED_DATASETS, require_shared

from harness.data.loading import load_dataset
from harness.errors import DataError, PlanError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, DatasetContext, DatasetPlugin
from harness.registry.manager import Registry, make_plugin_manager
from harness.storage.deid import hash_id
from harness_plugins.datasets.readers import npz as npz_module
from harness_plugins.datasets.readers.npz import NpzDataset

LIDC = (SHARED_DATASETS
        / "lidc_segmented_nodules_64" / "lidc_segmented_nodules_64.npz")
SPLITS = ("train", "val", "test")
SALT = "test-salt"


def load(mapping: dict, base_dir: Path = Path("."), salt: str = SALT) -> DatasetBundle:
    """Validate `mapping` like a plan would and load it as the core does (ids de-identified)."""
    plugin = NpzDataset()
    params = build_dataclass(plugin.Params, mapping, "dataset")
    return load_dataset(plugin, params, DatasetContext(seed=0, base_dir=base_dir, cache_dir=base_dir), salt)


def write(tmp_path: Path, name: str = "data.npz", **arrays: np.ndarray) -> Path:
    """Save `arrays` into tmp_path/name."""
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def toy(n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """A small valid data set: uint8 images, balanced labels, 10 patients, no split key."""
    rng = np.random.default_rng(seed)
    return {"images": rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
            "labels": np.arange(n) % 2,
            "patient_ids": np.array([f"PAT{i % 10:03d}" for i in range(n)])}


@pytest.fixture(scope="module")
def raw_lidc() -> dict[str, np.ndarray]:
    """The LIDC arrays as stored (the file ships with the repository's shared data; absent = failure)."""
    require_shared(LIDC)
    with np.load(LIDC) as data:
        return {key: data[key] for key in ("patient_ids", "split", "labels")}


@pytest.fixture(scope="module")
def lidc() -> DatasetBundle:
    """The full LIDC file through the plugin."""
    require_shared(LIDC)
    return load({"path": str(LIDC), "class_names": ["benign", "malignant"]})


def test_registered_through_hook_and_entry_point() -> None:
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[npz_module]))
    plugin = registry.get("dataset", "npz")
    assert isinstance(plugin, DatasetPlugin)
    names = {ep.name: ep.value for ep in entry_points(group="harness")}
    assert names.get("npz") == "harness_plugins.datasets.readers.npz"


def test_lidc_counts_match_the_readme(lidc: DatasetBundle) -> None:
    assert {name: len(lidc.splits[name]) for name in SPLITS} == {"train": 3467, "val": 802, "test": 774}
    assert lidc.provenance["counts"] == {"train": {"benign": 1926, "malignant": 1541},
                                         "val": {"benign": 397, "malignant": 405},
                                         "test": {"benign": 502, "malignant": 272}}
    assert lidc.provenance["patients"] == {"train": 345, "val": 74, "test": 75}
    assert lidc.provenance["n_samples"] == 5043
    assert lidc.provenance["split_method"] == "from the file's 'split' key"


def test_lidc_images_are_scaled_float32_nchw(lidc: DatasetBundle) -> None:
    assert lidc.image_shape == (1, 64, 64)
    assert lidc.class_names == ["benign", "malignant"]
    images = lidc.splits["test"].images
    assert str(images.dtype) == "torch.float32"
    assert float(images.min()) == 0.0 and 0.9 < float(images.max()) <= 1.0
    values = images.numpy() * 255
    assert np.allclose(values, np.round(values), atol=1e-3)  # exactly uint8 / 255
    assert lidc.splits["train"].labels.dtype == np.int64
    assert lidc.native_units is not None and lidc.native_units.per_unit == 255.0


def test_lidc_ids_are_hashed_and_no_raw_id_leaves(lidc: DatasetBundle, raw_lidc: dict) -> None:
    raw_ids = set(raw_lidc["patient_ids"].tolist())
    out = set()
    for name in SPLITS:
        out |= set(lidc.splits[name].sample_ids) | set(lidc.splits[name].group_ids)
    assert not out & raw_ids
    assert not any(raw in value for raw in list(raw_ids)[:50] for value in list(out)[:500])
    blob = json.dumps(lidc.provenance)
    assert not any(raw in blob for raw in raw_ids)
    all_samples = [s for name in SPLITS for s in lidc.splits[name].sample_ids]
    assert len(set(all_samples)) == 5043
    # the core hashes "patient:<id>" with the secret salt (HMAC), consistent with the stored split
    expected = Counter(hash_id(f"patient:{p}", SALT) for p in raw_lidc["patient_ids"][raw_lidc["split"] == "test"])
    assert Counter(lidc.splits["test"].group_ids) == expected


def test_lidc_no_patient_crosses_splits(lidc: DatasetBundle) -> None:
    groups = [set(lidc.splits[name].group_ids) for name in SPLITS]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_salt_changes_ids_but_not_content(tmp_path: Path) -> None:
    path = write(tmp_path, **toy())
    a, b, c = load({"path": str(path)}), load({"path": str(path)}), load({"path": str(path)}, salt="other")
    assert a.splits["train"].group_ids == b.splits["train"].group_ids
    assert a.splits["train"].sample_ids == b.splits["train"].sample_ids
    assert set(a.splits["train"].group_ids).isdisjoint(c.splits["train"].group_ids)
    assert a.provenance["content_sha256"] == c.provenance["content_sha256"]


def test_max_per_split_keeps_whole_patients_and_balance(lidc: DatasetBundle) -> None:
    small = load({"path": str(LIDC), "class_names": ["benign", "malignant"], "max_per_split": 150})
    full_sizes = {name: Counter(lidc.splits[name].group_ids) for name in SPLITS}
    for name in SPLITS:
        split = small.splits[name]
        assert 100 <= len(split) <= 150
        for group, count in Counter(split.group_ids).items():
            assert full_sizes[name][group] == count  # a kept patient keeps all its slices
        assert 0.3 < split.labels.mean() < 0.7
    again = load({"path": str(LIDC), "class_names": ["benign", "malignant"], "max_per_split": 150})
    assert again.provenance["content_sha256"] == small.provenance["content_sha256"]
    assert small.provenance["content_sha256"] != lidc.provenance["content_sha256"]
    assert "at most 150" in small.provenance["split_method"]


def test_generated_split_is_grouped_by_patient(tmp_path: Path) -> None:
    path = write(tmp_path, **toy(n=200))
    bundle = load({"path": str(path), "split_seed": 1})
    groups = [set(bundle.splits[name].group_ids) for name in SPLITS]
    assert sum(len(g) for g in groups) == 10 and not (groups[0] & groups[1] or groups[0] & groups[2])
    assert "patient-grouped" in bundle.provenance["split_method"]
    assert bundle.class_names == ["class_0", "class_1"]
    other = load({"path": str(path), "split_seed": 2})
    assert other.provenance["content_sha256"] != bundle.provenance["content_sha256"]


def test_without_patient_ids_each_sample_is_its_own_group(tmp_path: Path) -> None:
    data = toy(n=60)
    del data["patient_ids"]
    bundle = load({"path": str(write(tmp_path, **data))})
    assert sum(len(bundle.splits[name]) for name in SPLITS) == 60
    assert len({g for name in SPLITS for g in bundle.splits[name].group_ids}) == 60
    assert "own group" in bundle.provenance["split_method"]


def test_layouts_dtypes_and_class_names_key(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    split = np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    labels = np.arange(10) % 3
    nhwc = rng.random((10, 8, 8, 3)).astype(np.float32)
    bundle = load({"path": str(write(tmp_path, "nhwc.npz", images=nhwc, labels=labels, split=split,
                                     class_names=np.array(["a", "b", "c"])))})
    assert bundle.image_shape == (3, 8, 8) and bundle.class_names == ["a", "b", "c"]
    assert np.allclose(bundle.splits["train"].images[0].numpy(), np.moveaxis(nhwc[0], 2, 0))
    assert bundle.native_units is None  # float data: no stored levels, no units given
    wide = rng.integers(0, 65536, (10, 1, 8, 8)).astype(np.uint16)
    bundle = load({"path": str(write(tmp_path, "u16.npz", images=wide, labels=labels, split=split))})
    assert bundle.image_shape == (1, 8, 8)
    assert np.allclose(bundle.splits["train"].images[0].numpy(), wide[0] / 65535.0, atol=1e-6)


def test_value_range_clip_and_native_units(tmp_path: Path) -> None:
    hu = np.linspace(-1400, 400, 10 * 4 * 4).reshape(10, 4, 4)
    split = np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    path = write(tmp_path, "hu.npz", images=hu, labels=np.arange(10) % 2, split=split)
    bundle = load({"path": str(path), "value_range": [-1350, 150], "clip": True, "native_unit": "HU"})
    images = bundle.splits["train"].images
    assert float(images.min()) == 0.0 and float(bundle.splits["test"].images.max()) == 1.0
    assert bundle.native_units.per_unit == 1500.0 and bundle.native_units.describe(0.004) == "6 HU"
    with pytest.raises(DataError, match="hu.npz.*outside"):
        load({"path": str(path), "value_range": [-1350, 150]})
    explicit = load({"path": str(path), "value_range": [-1400, 400], "native_per_unit": 1800.0,
                     "native_unit": "HU"})
    assert explicit.native_units.per_unit == 1800.0


def test_relative_and_home_paths_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", **toy())
    assert load({"path": "sub/data.npz"}, base_dir=tmp_path).provenance["n_samples"] == 40
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load({"path": "~/sub/data.npz"}).provenance["source"] == "npz file data.npz"


def _bad_cases(tmp_path: Path) -> dict[str, tuple[Path, dict, str]]:
    """name → (file, extra params, expected message fragment); each file is invalid in one way."""
    base = toy()
    split_ok = np.array(["train"] * 28 + ["val"] * 6 + ["test"] * 6)
    nan = base["images"].astype(np.float32) / 255
    nan[3, 2, 2] = np.nan
    inf = nan.copy()
    inf[3, 2, 2] = np.inf
    text = tmp_path / "notzip.npz"
    text.write_text("not an archive")
    cases = {
        "missing": (tmp_path / "absent.npz", {}, "not found"),
        "not_npz": (text, {}, "not a readable"),
        "object": (write(tmp_path, "object.npz", images=base["images"],
                         labels=np.array([{"x": 1}] * 40, dtype=object)), {}, "Python objects"),
        "no_images": (write(tmp_path, "noimages.npz", labels=base["labels"]), {}, "'images' is missing"),
        "no_labels": (write(tmp_path, "nolabels.npz", images=base["images"]), {}, "'labels' is missing"),
        "mismatch": (write(tmp_path, "mismatch.npz", images=base["images"], labels=base["labels"][:30]), {},
                     "40 images"),
        "label_range": (write(tmp_path, "range.npz", images=base["images"], labels=base["labels"] * 2), {
            "class_names": ["benign", "malignant"]}, "label 2 is outside"),
        "negative": (write(tmp_path, "neg.npz", images=base["images"], labels=base["labels"] - 1), {},
                     "label -1"),
        "nan": (write(tmp_path, "nan.npz", images=nan, labels=base["labels"]), {}, "NaN or Inf"),
        "inf": (write(tmp_path, "inf.npz", images=inf, labels=base["labels"]), {}, "NaN or Inf"),
        "float_range": (write(tmp_path, "float.npz", images=base["images"].astype(np.float32),
                              labels=base["labels"]), {}, "outside \\[0,1\\]"),
        "split_value": (write(tmp_path, "split.npz", images=base["images"], labels=base["labels"],
                              split=np.where(split_ok == "train", "training", split_ok)), {}, "'training'"),
        "empty_test": (write(tmp_path, "notest.npz", images=base["images"], labels=base["labels"],
                             split=np.where(split_ok == "test", "val", split_ok)), {}, "test split is empty"),
        "crossing": (write(tmp_path, "cross.npz", **base, split=split_ok), {}, "appears in both"),
        "layout": (write(tmp_path, "layout.npz", images=np.zeros((40, 8, 8, 8), np.uint8), labels=base["labels"]),
                   {}, "channel axis"),
        "ndim": (write(tmp_path, "ndim.npz", images=np.zeros((40, 64), np.uint8), labels=base["labels"]), {},
                 "shape"),
        "empty": (write(tmp_path, "empty.npz", images=np.zeros((0, 8, 8), np.uint8),
                        labels=np.zeros(0, np.int64)), {}, "no samples"),
        "patients": (write(tmp_path, "pids.npz", images=base["images"], labels=base["labels"],
                           patient_ids=base["patient_ids"][:10]), {}, "'patient_ids'"),
    }
    return cases


BAD = ["missing", "not_npz", "object", "no_images", "no_labels", "mismatch", "label_range", "negative", "nan",
       "inf", "float_range", "split_value", "empty_test", "crossing", "layout", "ndim", "empty", "patients"]


@pytest.mark.parametrize("case", BAD)
def test_bad_files_raise_one_line_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path, extra, fragment = _bad_cases(tmp_path)[case]
    with pytest.raises(DataError, match=fragment) as info:
        load({"path": str(path), **extra})
    message = str(info.value)
    assert path.name in message and "\n" not in message
    assert "PAT00" not in message  # raw patient ids never appear, not even in errors


@pytest.mark.parametrize("mapping, key", [
    ({}, "dataset.path"),
    ({"path": "x.npz", "value_range": [1.0, 0.0]}, "dataset.value_range"),
    ({"path": "x.npz", "scale": "value_range"}, "dataset.scale"),
    ({"path": "x.npz", "scale": "linear"}, "dataset.scale"),
    ({"path": "x.npz", "max_per_split": 0}, "dataset.max_per_split"),
    ({"path": "x.npz", "class_names": ["only"]}, "dataset.class_names"),
    ({"path": "x.npz", "native_per_unit": -1.0}, "dataset.native_per_unit"),
    ({"path": "x.npz", "split_fractions": [0.0, 0.5, 0.5]}, "dataset.split_fractions"),
])
def test_bad_params_raise_plan_error(mapping: dict, key: str) -> None:
    with pytest.raises(PlanError) as info:
        build_dataclass(NpzDataset.Params, mapping, "dataset")
    assert info.value.key == key


def test_positive_class_must_name_a_class(tmp_path: Path) -> None:
    path = write(tmp_path, **toy())
    with pytest.raises(PlanError, match="positive_class"):
        load({"path": str(path), "positive_class": 2})


def test_image_size_resizes_every_split_and_is_recorded(tmp_path):
    arrays = toy()
    arrays["images"][:, 2:6, 2:6] = 255  # a bright square in every image
    arrays["images"][:, :2, :] = 0
    arrays["images"][:, 6:, :] = 0
    bundle = load({"path": str(write(tmp_path, **arrays)), "image_size": 32})
    for split in (bundle.splits[name] for name in ("train", "test")):
        assert tuple(split.images.shape[1:]) == (1, 32, 32)
        assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
    # the square stays in the middle: the centre is bright, the top rows dark
    image = bundle.splits["train"].images[0, 0]
    assert float(image[14:18, 14:18].mean()) > 0.9 and float(image[:4].max()) < 0.05
    assert bundle.provenance["resized_to"] == [32, 32]
    assert load({"path": str(write(tmp_path, **toy()))}).provenance["resized_to"] is None


def test_image_size_out_of_range_is_a_plan_error(tmp_path):
    with pytest.raises(PlanError, match="image_size"):
        load({"path": str(write(tmp_path, **toy())), "image_size": 2})
