"""The phantom_ct dataset plugin: determinism, contract, class balance, nodule sizes, params validation."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from harness.errors import PlanError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, DatasetContext, DatasetPlugin, TensorSplit
from harness.registry.manager import Registry, make_plugin_manager
from harness_plugins.datasets.phantoms import ct as phantom_ct
from harness_plugins.datasets.phantoms.ct import PhantomCT

SPLITS = ("train", "val", "test")
SOFT_TISSUE = (-300 + 1350) / 1500  # -300 HU after the default lung window (W1500 L-600)


def context(seed: int = 0) -> DatasetContext:
    """A dataset context; the phantom must not depend on it."""
    return DatasetContext(seed=seed, base_dir=Path("."), cache_dir=Path("/nonexistent-cache"))


def load(**mapping: object) -> DatasetBundle:
    """Validate `mapping` like a plan would and load the phantom."""
    plugin = PhantomCT()
    return plugin.load(build_dataclass(plugin.Params, dict(mapping), "dataset"), context())


def all_images(bundle: DatasetBundle) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of all splits, concatenated."""
    images = np.concatenate([bundle.splits[s].images.numpy() for s in SPLITS])
    labels = np.concatenate([bundle.splits[s].labels for s in SPLITS])
    return images, labels


@pytest.fixture(scope="module")
def default_bundle() -> DatasetBundle:
    """The phantom with default parameters (about 800 patches)."""
    return load()


@pytest.fixture(scope="module")
def small_bundle() -> DatasetBundle:
    """A small phantom for the determinism checks."""
    return load(n_patients=40, seed=3)


def test_registered_through_hook_and_entry_point() -> None:
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[phantom_ct]))
    plugin = registry.get("dataset", "phantom_ct")
    assert isinstance(plugin, DatasetPlugin)
    assert plugin.description and "\n" not in plugin.description
    names = {ep.name: ep.value for ep in entry_points(group="harness")}
    assert names.get("phantom_ct") == "harness_plugins.datasets.phantoms.ct"


def test_same_params_give_identical_bytes(small_bundle: DatasetBundle) -> None:
    again = PhantomCT().load(build_dataclass(PhantomCT.Params, {"n_patients": 40, "seed": 3}),
                             context(seed=99))
    for name in SPLITS:
        assert small_bundle.splits[name].images.numpy().tobytes() == again.splits[name].images.numpy().tobytes()
        assert np.array_equal(small_bundle.splits[name].labels, again.splits[name].labels)
        assert small_bundle.splits[name].sample_ids == again.splits[name].sample_ids
    assert small_bundle.provenance["content_sha256"] == again.provenance["content_sha256"]


def test_different_seed_or_params_change_data_and_hash(small_bundle: DatasetBundle) -> None:
    other_seed = load(n_patients=40, seed=4)
    other_window = load(n_patients=40, seed=3, window_width=1400.0)
    first = small_bundle.splits["train"].images.numpy()
    assert not np.array_equal(first[:5], other_seed.splits["train"].images.numpy()[:5])
    hashes = {b.provenance["content_sha256"] for b in (small_bundle, other_seed, other_window)}
    assert len(hashes) == 3


def test_shapes_dtypes_and_range(default_bundle: DatasetBundle) -> None:
    assert default_bundle.class_names == ["benign", "malignant"]
    assert default_bundle.positive_class == 1
    assert default_bundle.image_shape == (1, 64, 64)
    for name in SPLITS:
        split = default_bundle.splits[name]
        assert isinstance(split, TensorSplit)
        assert len(split) > 0
        assert split.images.dtype.is_floating_point and str(split.images.dtype) == "torch.float32"
        assert split.labels.dtype == np.int64
        assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
        assert set(np.unique(split.labels)) == {0, 1}
        assert len(set(split.sample_ids)) == len(split)
        image, label = split[0]
        assert tuple(image.shape) == (1, 64, 64) and isinstance(label, int)
    # lung parenchyma fills most of a patch: the median lies near -850 HU after windowing
    images, _ = all_images(default_bundle)
    assert abs(float(np.median(images)) - (-850 + 1350) / 1500) < 0.05


def test_image_size_param_scales_patches() -> None:
    bundle = load(n_patients=20, image_size=32)
    assert bundle.image_shape == (1, 32, 32)
    assert bundle.provenance["image_shape"] == [1, 32, 32]


def test_classes_roughly_balanced_overall_and_per_split(default_bundle: DatasetBundle) -> None:
    _, labels = all_images(default_bundle)
    assert 700 <= len(labels) <= 900  # 400 patients × 1..3 nodules
    assert abs(labels.mean() - 0.5) < 0.01
    for name in SPLITS:
        assert 0.35 < default_bundle.splits[name].labels.mean() < 0.65
    skewed = load(n_patients=60, malignant_fraction=0.25)
    assert abs(all_images(skewed)[1].mean() - 0.25) < 0.01


def test_split_sizes_and_no_patient_crosses_splits(default_bundle: DatasetBundle) -> None:
    groups = {name: set(default_bundle.splits[name].group_ids) for name in SPLITS}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(g) for g in groups.values()) == 400
    assert 0.6 < len(groups["train"]) / 400 < 0.8
    for name in SPLITS:
        split = default_bundle.splits[name]
        for sample, group in zip(split.sample_ids, split.group_ids, strict=True):
            assert group.startswith("phantom-patient-") and sample.startswith("phantom-")
            assert sample.split("-")[1] == group.rsplit("-", 1)[1]  # a sample carries its patient's number


def test_benign_nodules_smaller_than_malignant_with_overlap(default_bundle: DatasetBundle) -> None:
    images, labels = all_images(default_bundle)
    centre = images[:, 0, 20:44, 20:44]
    dense = (centre > SOFT_TISSUE).sum(axis=(1, 2))
    benign, malignant = dense[labels == 0], dense[labels == 1]
    assert benign.mean() < 0.6 * malignant.mean()
    # size alone must not separate the classes: the best threshold on it stays well below 100 %
    best = max(((dense > t) == labels).mean() for t in range(int(dense.max()) + 1))
    assert 0.65 < best < 0.92


def test_native_units_are_the_window_width(default_bundle: DatasetBundle) -> None:
    units = default_bundle.native_units
    assert units is not None
    assert units.per_unit == 1500.0 and units.unit == "HU"
    assert "W1500" in units.note and "L-600" in units.note
    assert units.describe(0.004) == "6 HU"
    narrow = load(n_patients=20, window_width=1000.0, window_center=-500.0)
    assert narrow.native_units.per_unit == 1000.0 and "L-500" in narrow.native_units.note


def test_provenance_is_complete_and_json_ready(default_bundle: DatasetBundle) -> None:
    prov = default_bundle.provenance
    for key in ("source", "content_sha256", "counts", "split_method", "n_samples"):
        assert key in prov
    json.dumps(prov)
    assert len(prov["content_sha256"]) == 64
    assert prov["n_samples"] == sum(len(default_bundle.splits[s]) for s in SPLITS)
    for name in SPLITS:
        split = default_bundle.splits[name]
        assert prov["counts"][name] == {"benign": int((split.labels == 0).sum()),
                                        "malignant": int((split.labels == 1).sum())}
    assert "grouped" in prov["split_method"] and "stratified" in prov["split_method"]


@pytest.mark.parametrize("mapping, key", [
    ({"n_patients": -1}, "dataset.n_patients"),
    ({"n_patients": 5}, "dataset.n_patients"),
    ({"malignant_fraction": 1.5}, "dataset.malignant_fraction"),
    ({"window_width": 0}, "dataset.window_width"),
    ({"image_size": "big"}, "dataset.image_size"),
    ({"nodules_per_patient": [3, 1]}, "dataset.nodules_per_patient"),
    ({"nodules_per_patient": [0, 2]}, "dataset.nodules_per_patient"),
    ({"split_fractions": [0.7, 0.3]}, "dataset.split_fractions"),
    ({"split_fractions": [0.7, 0.3, 0.0]}, "dataset.split_fractions"),
    ({"n_patient": 100}, "dataset.n_patient"),
])
def test_bad_params_raise_plan_error_naming_the_key(mapping: dict, key: str) -> None:
    with pytest.raises(PlanError) as info:
        build_dataclass(PhantomCT.Params, mapping, "dataset")
    assert info.value.key == key


def test_defaults_validate_from_an_empty_mapping() -> None:
    params = build_dataclass(PhantomCT.Params, {}, "dataset")
    assert (params.n_patients, params.image_size, params.window_center, params.window_width) == (400, 64, -600, 1500)
    assert params.nodules_per_patient == [1, 3] and params.malignant_fraction == 0.5
