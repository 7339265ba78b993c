"""The phantom_mammogram and phantom_brain_mri dataset plugins, and the example plans that use them."""

from __future__ import annotations

import json
import time
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from support import REPO

from harness.data.checks import validate_dataset
from harness.errors import PlanError
from harness.plan.params import build_dataclass
from harness.plan.schema import load_plan
from harness.registry.contracts import DatasetBundle, DatasetContext, DatasetPlugin, TensorSplit
from harness.registry.manager import Registry, make_plugin_manager
from harness_plugins.datasets.phantoms import brain_mri as phantom_brain_mri
from harness_plugins.datasets.phantoms import mammogram as phantom_mammogram
from harness_plugins.datasets.phantoms.brain_mri import PhantomBrainMRI
from harness_plugins.datasets.phantoms.mammogram import PhantomMammogram
from harness_plugins.datasets.phantoms.shapes import content_sha256_with_ids

SPLITS = ("train", "val", "test")
PLUGINS = {"phantom_mammogram": PhantomMammogram, "phantom_brain_mri": PhantomBrainMRI}
# Clean mammograms for shape measurements: fatty breasts, no grain, no calcifications, typical margins only.
CLEAN_MAMMO = {"noise_scale": 0.0, "density_weights": [1, 0, 0, 0], "class_overlap": 0.0,
               "calcification_fraction": 0.0}


def context(seed: int = 0) -> DatasetContext:
    """A dataset context; the phantoms must not depend on it."""
    return DatasetContext(seed=seed, base_dir=Path("."), cache_dir=Path("/nonexistent-cache"))


def load(plugin: str, **mapping: object) -> DatasetBundle:
    """Validate `mapping` like a plan would and load the phantom `plugin`."""
    instance = PLUGINS[plugin]()
    return instance.load(build_dataclass(instance.Params, dict(mapping), "dataset"), context())


def all_images(bundle: DatasetBundle) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×H×W) and labels of all splits, concatenated."""
    images = np.concatenate([bundle.splits[s].images.numpy()[:, 0] for s in SPLITS])
    labels = np.concatenate([bundle.splits[s].labels for s in SPLITS])
    return images, labels


def best_threshold_accuracy(feature: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the best single threshold on `feature` (either direction)."""
    return max(max(float(((feature > t) == labels).mean()), float(((feature <= t) == labels).mean()))
               for t in np.unique(feature))


def irregularity(image: np.ndarray) -> float:
    """Perimeter² / (4π·area) of the bright blob through the patch centre (about 0.7 for a digital disc)."""
    smooth = ndimage.gaussian_filter(image.astype(np.float64), 1.0)
    c = image.shape[0] // 2
    centre = smooth[c - 3:c + 3, c - 3:c + 3]
    background = np.median(smooth)
    labelled, _ = ndimage.label(smooth > background + 0.5 * (centre.max() - background))
    hits = labelled[c - 3:c + 3, c - 3:c + 3]
    if not (hits > 0).any():
        return 0.0
    blob = labelled == np.bincount(hits[hits > 0]).argmax()
    perimeter = (blob & ~ndimage.binary_erosion(blob)).sum()
    return float(perimeter ** 2 / (4 * np.pi * blob.sum()))


@pytest.fixture(scope="module")
def mammo() -> DatasetBundle:
    """The mammogram phantom with default parameters (about 600 ROIs); generation must be fast."""
    started = time.perf_counter()
    bundle = load("phantom_mammogram")
    assert time.perf_counter() - started < 30
    return bundle


@pytest.fixture(scope="module")
def mri() -> DatasetBundle:
    """The brain-MRI phantom with default parameters (about 600 slices)."""
    started = time.perf_counter()
    bundle = load("phantom_brain_mri")
    assert time.perf_counter() - started < 30
    return bundle


@pytest.fixture(scope="module")
def bundles(mammo: DatasetBundle, mri: DatasetBundle) -> dict[str, DatasetBundle]:
    """Both default bundles by plugin name."""
    return {"phantom_mammogram": mammo, "phantom_brain_mri": mri}


# ---------------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name, module", [("phantom_mammogram", phantom_mammogram),
                                          ("phantom_brain_mri", phantom_brain_mri)])
def test_registered_through_hook_and_entry_point(name: str, module: object) -> None:
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[module]))
    plugin = registry.get("dataset", name)
    assert isinstance(plugin, DatasetPlugin)
    assert plugin.description and "\n" not in plugin.description
    names = {ep.name: ep.value for ep in entry_points(group="harness")}
    assert names.get(name) == module.__name__


@pytest.mark.parametrize("plugin", PLUGINS)
def test_same_params_give_identical_bytes_and_hash(plugin: str) -> None:
    first = load(plugin, n_patients=30, seed=3)
    instance = PLUGINS[plugin]()
    again = instance.load(build_dataclass(instance.Params, {"n_patients": 30, "seed": 3}), context(99))
    for name in SPLITS:
        assert first.splits[name].images.numpy().tobytes() == again.splits[name].images.numpy().tobytes()
        assert np.array_equal(first.splits[name].labels, again.splits[name].labels)
        assert first.splits[name].sample_ids == again.splits[name].sample_ids
    assert first.provenance["content_sha256"] == again.provenance["content_sha256"]
    other = load(plugin, n_patients=30, seed=4)
    assert other.provenance["content_sha256"] != first.provenance["content_sha256"]
    assert not np.array_equal(first.splits["train"].images[:3].numpy(), other.splits["train"].images[:3].numpy())


@pytest.mark.parametrize("plugin", PLUGINS)
def test_hash_covers_the_split_assignment(plugin: str) -> None:
    default = load(plugin, n_patients=30, seed=3)
    resplit = load(plugin, n_patients=30, seed=3, split_fractions=[0.5, 0.25, 0.25])
    pixels = [np.sort(all_images(b)[0].reshape(-1)) for b in (default, resplit)]
    assert np.array_equal(*pixels)  # the same images, dealt differently
    assert default.provenance["content_sha256"] != resplit.provenance["content_sha256"]
    assert default.provenance["content_sha256"] == content_sha256_with_ids(default.splits)


@pytest.mark.parametrize("plugin, class_names", [("phantom_mammogram", ["benign", "malignant"]),
                                                 ("phantom_brain_mri", ["no_tumour", "tumour"])])
def test_shapes_dtypes_and_range(bundles: dict[str, DatasetBundle], plugin: str, class_names: list[str]) -> None:
    bundle = bundles[plugin]
    validate_dataset(bundle)
    assert bundle.class_names == class_names and bundle.positive_class == 1
    assert bundle.image_shape == (1, 64, 64)
    for name in SPLITS:
        split = bundle.splits[name]
        assert isinstance(split, TensorSplit) and len(split) > 0
        assert str(split.images.dtype) == "torch.float32" and split.labels.dtype == np.int64
        assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
        assert set(np.unique(split.labels)) == {0, 1}
        assert 0.3 < split.labels.mean() < 0.7
        assert len(set(split.sample_ids)) == len(split)
        image, label = split[0]
        assert tuple(image.shape) == (1, 64, 64) and isinstance(label, int)
    _, labels = all_images(bundle)
    assert 500 <= len(labels) <= 700  # 400 patients × 1..2 images
    assert abs(labels.mean() - 0.5) < 0.06


@pytest.mark.parametrize("plugin", PLUGINS)
def test_image_size_param_scales_images(plugin: str) -> None:
    bundle = load(plugin, n_patients=20, image_size=32)
    assert bundle.image_shape == (1, 32, 32)
    assert bundle.provenance["image_shape"] == [1, 32, 32]


@pytest.mark.parametrize("plugin, prefix", [("phantom_mammogram", "phantom-mammo"),
                                            ("phantom_brain_mri", "phantom-mri")])
def test_no_patient_crosses_splits(bundles: dict[str, DatasetBundle], plugin: str, prefix: str) -> None:
    bundle = bundles[plugin]
    groups = {name: set(bundle.splits[name].group_ids) for name in SPLITS}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(g) for g in groups.values()) == 400
    assert 0.6 < len(groups["train"]) / 400 < 0.8
    per_patient: dict[str, int] = {}
    for name in SPLITS:
        split = bundle.splits[name]
        for sample, group in zip(split.sample_ids, split.group_ids, strict=True):
            assert group.startswith(f"{prefix}-patient-") and sample.startswith(f"{prefix}-")
            assert sample.split("-")[-2] == group.rsplit("-", 1)[1]  # a sample carries its patient's number
            per_patient[group] = per_patient.get(group, 0) + 1
    assert set(per_patient.values()) == {1, 2}


@pytest.mark.parametrize("plugin, version_source", [("phantom_mammogram", "generated: phantom_mammogram v1"),
                                                    ("phantom_brain_mri", "generated: phantom_brain_mri v1")])
def test_provenance_is_complete_and_json_ready(bundles: dict[str, DatasetBundle], plugin: str,
                                               version_source: str) -> None:
    bundle = bundles[plugin]
    prov = bundle.provenance
    json.dumps(prov)
    assert prov["source"].startswith(version_source)
    assert len(prov["content_sha256"]) == 64
    assert prov["n_samples"] == sum(len(bundle.splits[s]) for s in SPLITS)
    for name in SPLITS:
        labels = bundle.splits[name].labels
        assert prov["counts"][name] == {bundle.class_names[k]: int((labels == k).sum()) for k in (0, 1)}
    assert "grouped" in prov["split_method"] and "stratified" in prov["split_method"]


# ---------------------------------------------------------------------------------------------- mammogram


def test_mammogram_native_units_are_8bit_grey_levels(mammo: DatasetBundle) -> None:
    units = mammo.native_units
    assert units is not None and units.per_unit == 255.0 and units.unit == "grey levels (8-bit)"
    assert units.describe(0.004) == "1.02 grey levels (8-bit)"
    images, _ = all_images(mammo)
    assert np.allclose(images * 255, np.round(images * 255), atol=1e-3)  # quantised to 8-bit levels


def test_malignant_masses_have_more_irregular_boundaries() -> None:
    images, labels = all_images(load("phantom_mammogram", n_patients=120, **CLEAN_MAMMO))
    score = np.array([irregularity(image) for image in images])
    assert np.median(score[labels == 1]) > 1.25 * np.median(score[labels == 0])
    assert best_threshold_accuracy(score, labels) > 0.9


def test_mammogram_classes_overlap_by_default(mammo: DatasetBundle) -> None:
    images, labels = all_images(mammo)
    score = np.array([irregularity(image) for image in images])
    assert np.median(score[labels == 1]) > np.median(score[labels == 0])
    assert 0.75 < best_threshold_accuracy(score, labels) < 0.97  # margins help, but do not decide alone
    centre = images[:, 22:42, 22:42].mean(axis=(1, 2))
    assert best_threshold_accuracy(centre, labels) < 0.88  # nor does mass brightness


def test_breast_density_brightens_the_background() -> None:
    fatty, _ = all_images(load("phantom_mammogram", n_patients=40, density_weights=[1, 0, 0, 0]))
    dense, _ = all_images(load("phantom_mammogram", n_patients=40, density_weights=[0, 0, 0, 1]))
    border = np.ones((64, 64), bool)
    border[12:52, 12:52] = False
    assert dense[:, border].mean() > fatty[:, border].mean() + 0.03


# ---------------------------------------------------------------------------------------------- brain MRI


def central_bright_pixels(images: np.ndarray, level: float = 0.85) -> np.ndarray:
    """Per image, the number of pixels above `level` within the central disc (inside the skull)."""
    size = images.shape[-1]
    yy, xx = np.mgrid[0:size, 0:size]
    disc = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2) < 15 * size / 64
    return (images > level)[:, disc].sum(axis=1)


def test_tumour_slices_have_more_enhancing_pixels_with_overlap(mri: DatasetBundle) -> None:
    images, labels = all_images(mri)
    bright = central_bright_pixels(images)
    assert bright[labels == 1].mean() > 10 * max(bright[labels == 0].mean(), 0.5)
    assert (bright[labels == 1] > 0).mean() > 0.7
    assert (bright[labels == 0] > 0).mean() > 0.05  # normal vessels and choroid plexus mimic enhancement
    assert 0.7 < best_threshold_accuracy(bright, labels) < 0.95


def test_mri_is_normalised_per_slice_and_has_no_native_unit(mri: DatasetBundle) -> None:
    assert mri.native_units is None
    assert "no native unit" in mri.provenance["intensity"]
    images, _ = all_images(mri)
    flat = images.reshape(len(images), -1)
    p99 = np.percentile(flat, 99, axis=1, keepdims=True)
    head_median = np.nanmedian(np.where(flat > 0.25 * p99, flat, np.nan), axis=1)
    assert np.all(np.abs(head_median - 0.5) < 0.05)
    corners = images[:, :4, :4].mean(axis=(1, 2))
    assert np.median(corners) < 0.1  # air outside the head: only the Rician noise floor


def test_smaller_fainter_lesions_are_harder_to_see() -> None:
    easy, easy_labels = all_images(load("phantom_brain_mri", n_patients=60, lesion_radius=[6.0, 9.0],
                                        enhancement=[0.35, 0.45]))
    hard, hard_labels = all_images(load("phantom_brain_mri", n_patients=60, lesion_radius=[2.0, 3.0],
                                        enhancement=[0.05, 0.1]))
    assert central_bright_pixels(easy)[easy_labels == 1].mean() > 5 * central_bright_pixels(hard)[
        hard_labels == 1].mean()


# ---------------------------------------------------------------------------------------------- params


@pytest.mark.parametrize("plugin, mapping, key", [
    ("phantom_mammogram", {"n_patients": 5}, "dataset.n_patients"),
    ("phantom_mammogram", {"malignant_fraction": 1.5}, "dataset.malignant_fraction"),
    ("phantom_mammogram", {"image_size": "big"}, "dataset.image_size"),
    ("phantom_mammogram", {"lesions_per_patient": [2, 1]}, "dataset.lesions_per_patient"),
    ("phantom_mammogram", {"lesions_per_patient": [0, 2]}, "dataset.lesions_per_patient"),
    ("phantom_mammogram", {"density_weights": [1, 1]}, "dataset.density_weights"),
    ("phantom_mammogram", {"density_weights": [0, 0, 0, 0]}, "dataset.density_weights"),
    ("phantom_mammogram", {"texture_beta": 5.0}, "dataset.texture_beta"),
    ("phantom_mammogram", {"class_overlap": -0.1}, "dataset.class_overlap"),
    ("phantom_mammogram", {"split_fractions": [0.7, 0.3]}, "dataset.split_fractions"),
    ("phantom_mammogram", {"lesion_per_patient": [1, 2]}, "dataset.lesion_per_patient"),
    ("phantom_brain_mri", {"n_patients": -1}, "dataset.n_patients"),
    ("phantom_brain_mri", {"tumour_fraction": 0.0}, "dataset.tumour_fraction"),
    ("phantom_brain_mri", {"slices_per_patient": [3, 1]}, "dataset.slices_per_patient"),
    ("phantom_brain_mri", {"lesion_radius": [5.0, 2.0]}, "dataset.lesion_radius"),
    ("phantom_brain_mri", {"lesion_radius": [0, 2.0]}, "dataset.lesion_radius"),
    ("phantom_brain_mri", {"enhancement": [0.5, 0.1]}, "dataset.enhancement"),
    ("phantom_brain_mri", {"ring_fraction": 2}, "dataset.ring_fraction"),
    ("phantom_brain_mri", {"bias_strength": 1.0}, "dataset.bias_strength"),
    ("phantom_brain_mri", {"split_fractions": [0.7, 0.3, 0.0]}, "dataset.split_fractions"),
])
def test_bad_params_raise_plan_error_naming_the_key(plugin: str, mapping: dict, key: str) -> None:
    with pytest.raises(PlanError) as info:
        build_dataclass(PLUGINS[plugin].Params, mapping, "dataset")
    assert info.value.key == key


# ---------------------------------------------------------------------------------------------- plans


@pytest.mark.parametrize("spec, dataset, epsilons", [
    ("mammogram.yaml", "phantom_mammogram", [0.00001, 0.0001, 0.0005, 0.001, 0.002, 0.004, 0.008]),
    ("brain_mri.yaml", "phantom_brain_mri", [0.0001, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.012]),
])
def test_example_plans_load(spec: str, dataset: str, epsilons: list[float]) -> None:
    plan = load_plan(REPO / "specs" / spec)
    assert plan.dataset.plugin == dataset and plan.model.plugin == "train"
    assert plan.epsilons == epsilons
    attacks = {a.attack: a for a in plan.attacks}
    assert list(attacks) == ["fgsm", "pgd_linf", "bim_linf", "fmn_linf"]
    pgd, bim, fmn = attacks["pgd_linf"].params, attacks["bim_linf"].params, attacks["fmn_linf"].params
    assert (pgd.steps, pgd.rel_stepsize, pgd.random_start, pgd.restarts) == (10, 0.25, True, 1)
    assert (bim.steps, bim.rel_stepsize) == (10, 0.1)
    assert fmn.steps == 50
    assert {c.metric for c in plan.acceptance} >= {"clean_accuracy", "robust_accuracy", "median_min_epsilon"}


def test_the_brain_phantom_with_four_classes_draws_each_tumour_type() -> None:
    """`classes: 4`: no tumour, glioma, meningioma, pituitary, every class in every split; two classes unchanged."""
    four = load("phantom_brain_mri", n_patients=60, classes=4)
    assert four.class_names == ["no_tumour", "glioma", "meningioma", "pituitary"]
    for split in four.splits.values():
        assert set(np.unique(split.labels)) == {0, 1, 2, 3}
    two = load("phantom_brain_mri", n_patients=60)
    assert two.class_names == ["no_tumour", "tumour"]
    images, labels = all_images(four)
    bright = np.array([(image > 0.75).mean() for image in images])
    assert bright[labels == 2].mean() > bright[labels == 0].mean()  # meningiomas: large bright solid lesions
