"""What the built-in data sets tell the corruptions (modality, native offset, pixel spacing), and which built-in
corruptions fit which data: the fit check runs each corruption as the runner will, before any training."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from support import SHARED_DATASETS, require_shared

from harness.corruptions.fit import check_fit, corruption_context
from harness.data.loading import load_dataset
from harness.errors import PlanError
from harness.plan.params import build_dataclass
from harness.plan.schema import load_plan_text
from harness.registry.contracts import DatasetBundle, DatasetContext
from harness.registry.manager import default_registry

SALT = "test-salt"
REGISTRY = default_registry()


def load(plugin: str, mapping: dict, base_dir: Path = Path(".")) -> DatasetBundle:
    """Validate `mapping` like a plan's dataset section and load it as the core does."""
    found = REGISTRY.get("dataset", plugin)
    params = build_dataclass(found.Params, mapping, "dataset")
    return load_dataset(found, params, DatasetContext(seed=0, base_dir=base_dir, cache_dir=base_dir), SALT)


def test_ct_phantom_gives_modality_window_offset_and_nominal_spacing():
    small = load("phantom_ct", {"n_patients": 20, "image_size": 32})
    assert small.modality == "CT" and small.pixel_spacing_mm == pytest.approx(1.4)
    assert (small.native_units.per_unit, small.native_units.offset) == (1500.0, -1350.0)
    shifted = load("phantom_ct", {"n_patients": 20, "window_center": 40, "window_width": 400})
    assert shifted.pixel_spacing_mm == pytest.approx(0.7) and shifted.native_units.offset == -160.0


def test_mri_and_mammography_phantoms_give_their_modality_only():
    brain = load("phantom_brain_mri", {"n_patients": 20})
    mammo = load("phantom_mammogram", {"n_patients": 20})
    assert (brain.modality, brain.pixel_spacing_mm, brain.native_units) == ("MRI", None, None)
    assert (mammo.modality, mammo.pixel_spacing_mm, mammo.native_units.offset) == ("MG", None, None)


def _dicom_folder(tmp_path: Path, *names: str) -> Path:
    root = tmp_path / "dicom"
    for i, name in enumerate(names):
        folder = root / ("a" if i % 2 == 0 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.dcm").symlink_to(require_shared(SHARED_DATASETS / "dicom_samples" / name))
    return root


def test_dicom_gives_the_files_modality_window_offset_and_resized_spacing(tmp_path):
    root = _dicom_folder(tmp_path, "CT_small.dcm", "CT_small.dcm")
    window = {"center": 40, "width": 400}
    native = load("dicom", {"path": str(root), "split": "all_test", "window": window})
    resized = load("dicom", {"path": str(root), "split": "all_test", "window": window, "image_size": 64})
    assert native.modality == "CT" and native.pixel_spacing_mm == pytest.approx(0.661468)
    assert resized.pixel_spacing_mm == pytest.approx(0.661468 * 128 / 64)  # 128 pixels resized to 64
    assert resized.provenance["pixel_spacing_from"] == "PixelSpacing scaled by the resize to 64 pixels"
    assert native.native_units.unit == "HU" and native.native_units.offset == -160.0


def test_dicom_of_mixed_modalities_and_sizes_states_neither(tmp_path):
    root = _dicom_folder(tmp_path, "CT_small.dcm", "MR_small.dcm")
    bundle = load("dicom", {"path": str(root), "split": "all_test", "window": "minmax", "image_size": 32})
    assert bundle.modality is None and bundle.pixel_spacing_mm is None
    assert bundle.provenance["pixel_spacing_from"].startswith("unknown: pixel sizes after crop and resize range")


def test_npz_and_image_folder_take_modality_and_spacing_from_the_plan(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, images=rng.uniform(0, 1, (30, 8, 8)).astype(np.float32), labels=np.arange(30) % 2)
    bundle = load("npz", {"path": str(path), "modality": "CT", "pixel_spacing_mm": 0.8, "scale": "value_range",
                          "value_range": [-1000, 400], "native_unit": "HU"})
    assert (bundle.modality, bundle.pixel_spacing_mm) == ("CT", 0.8)
    assert (bundle.native_units.per_unit, bundle.native_units.offset) == (1400.0, -1000.0)
    with pytest.raises(PlanError, match="expected 'CT' | 'MRI' | 'MG' | 'XR' | 'US' | 'PET' | 'other', got"):
        load("npz", {"path": str(path), "modality": "ultrasound"})
    from PIL import Image

    for label in ("no", "yes"):
        (tmp_path / "png" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "png" / label / f"{i}.png")
    folder = load("image_folder", {"path": str(tmp_path / "png"), "split": "all_test", "modality": "MRI",
                                   "pixel_spacing_mm": 1.2})
    assert (folder.modality, folder.pixel_spacing_mm) == ("MRI", 1.2)


PLAN = textwrap.dedent("""\
    harness: 1
    name: fit
    dataset: {plugin: phantom_ct, n_patients: 20}
    model: {plugin: train, architecture: small_cnn}
    attacks: [{attack: fgsm}]
    corruptions:
      - corruption: ct_noise
      - corruption: ct_quantum_noise
      - corruption: ct_blur
      - corruption: jpeg
    """)


def _check(bundle: DatasetBundle, overrides: list[str] | None = None) -> None:
    plan = load_plan_text(PLAN, overrides, registry=REGISTRY, source="fit.yaml")
    check_fit(plan.corruptions, REGISTRY, bundle, plan.seed, plan.source)


def test_every_ct_corruption_fits_the_ct_phantom():
    bundle = load("phantom_ct", {"n_patients": 20})
    _check(bundle)
    context = corruption_context(bundle, 5)
    assert (context.seed, context.native_offset, context.pixel_spacing_mm) == (5, -1350.0, 0.7)


@pytest.mark.parametrize(("plugin", "params", "override", "message"), [
    ("phantom_ct", {"n_patients": 20}, "corruptions.3.corruption=mri_motion",
     "corruption 'mri_motion' is for MRI images, but the data set 'phantom_ct' is CT"),
    ("phantom_brain_mri", {"n_patients": 20}, None,
     "corruption 'ct_noise' is for CT images, but the data set 'phantom_brain_mri' is MRI"),
])
def test_a_corruption_of_another_modality_is_refused(plugin, params, override, message):
    with pytest.raises(PlanError) as caught:
        _check(load(plugin, params), [override] if override else None)
    assert caught.value.detail == message and caught.value.source == "fit.yaml" and caught.value.line


def test_ct_data_without_hu_offset_or_spacing_name_what_is_missing(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "ct.npz"
    np.savez(path, images=rng.integers(0, 256, (30, 8, 8), dtype=np.uint8), labels=np.arange(30) % 2)
    grey = load("npz", {"path": str(path), "modality": "CT"})
    with pytest.raises(PlanError, match="corruption 'ct_noise' is defined in HU, but the data set's native units "
                                        "are 'grey levels'") as caught:
        _check(grey)
    assert caught.value.key == "corruptions.0.corruption"
    hu = load("npz", {"path": str(path), "modality": "CT", "native_per_unit": 1500, "native_unit": "HU"})
    with pytest.raises(PlanError, match="'ct_quantum_noise' needs absolute HU"):
        _check(hu)
    with pytest.raises(PlanError, match="does not give the pixel spacing; use 'gaussian_blur'") as caught:
        _check(hu, ["corruptions.1.corruption=ct_window_shift"])
    assert caught.value.key == "corruptions.2.corruption"
