"""Built-in plugins on volumes (issue 27): the 3-D CT phantom, the 3-D architectures and the input wrapper, training
helpers, and the 3-D corruptions (native units, five severities, whole volumes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import DataError, ModelError, PlanError
from harness.registry.contracts import CorruptionContext, DatasetBundle, DatasetContext, NativeUnits
from harness_plugins.corruptions.ct import CTBlur, CTNoise, CTNPSNoise, CTQuantumNoise, CTRing, CTWindowShift
from harness_plugins.corruptions.general import GaussianBlur
from harness_plugins.corruptions.mri import MRIBiasField, MRIGhosting, MRIMotion, MRIRicianNoise, MRISpike
from harness_plugins.corruptions.volume import SliceThickness, thick_slices
from harness_plugins.datasets.phantoms.ct3d import Phantom3DCT, Phantom3DParams, generate
from harness_plugins.models.architectures import MonaiDenseNet121, MonaiResNet18, SmallCNN, SmallCNN3D
from harness_plugins.models.model_input import InputParams, NormalizedClassifier, wrap
from harness_plugins.models.training import augment_batch, channel_stats

LUNG = NativeUnits(1500.0, "HU", "lung window W1500 L-600", offset=-1350.0)
CONTEXT = CorruptionContext(seed=5, native_units=LUNG, native_offset=-1350.0, pixel_spacing_mm=1.0,
                            voxel_spacing_mm=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, np.ndarray]:
    images, labels, _, _ = generate(Phantom3DParams(n_patients=24, volume_size=16))
    return images, labels


def test_the_3d_phantom_is_seeded_in_hu_with_voxel_spacing(tmp_path, phantom) -> None:  # noqa: ANN001
    images, labels = phantom
    again, _, _, _ = generate(Phantom3DParams(n_patients=24, volume_size=16))
    np.testing.assert_array_equal(images, again)
    assert images.ndim == 5 and images.shape[1:] == (1, 16, 16, 16) and images.dtype == np.float32
    hu = images[:, 0] * 1500 - 1350
    assert -900 < float(np.median(hu[:, :3, :3, :3])) < -780  # parenchyma about −850 HU
    centre = hu[:, 6:10, 6:10, 6:10].mean(axis=(1, 2, 3))
    assert centre[labels == 1].mean() > -400 and centre.mean() > float(np.median(hu))  # a nodule at the centre
    bundle = Phantom3DCT().load(Phantom3DParams(n_patients=24, volume_size=16),
                                DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path))
    assert bundle.image_shape == (1, 16, 16, 16) and bundle.voxel_spacing_mm == (2.0, 2.0, 2.0)
    assert bundle.native_units.unit == "HU" and bundle.modality == "CT"


def test_3d_architectures_follow_the_data_and_refuse_a_wrong_rank() -> None:
    assert SmallCNN3D().build(1, 2, (16, 16, 16))(torch.rand(2, 1, 16, 16, 16)).shape == (2, 2)
    resnet, densenet = MonaiResNet18(), MonaiDenseNet121()
    assert resnet.describe(1, 2, (32, 32, 32), {"spatial_dims": 3})["arguments"]["spatial_dims"] == 3
    assert densenet.describe(1, 2, (32, 32, 32))["arguments"]["spatial_dims"] == 3  # follows the data
    assert resnet.describe(1, 2, (64, 64))["arguments"]["spatial_dims"] == 2  # 2-D unchanged
    with pytest.raises(PlanError, match="spatial_dims 3 but the data are 2-D"):
        resnet.build(1, 2, (32, 32), spatial_dims=3)
    with pytest.raises(ModelError, match="takes 2-D images, but the data are 3-D .*small_cnn_3d"):
        SmallCNN().build(1, 2, (32, 32, 32))
    with pytest.raises(ModelError, match="takes 3-D volumes"):
        SmallCNN3D().build(1, 2, (32, 32))


@pytest.mark.slow
def test_monai_3d_networks_run_on_volumes() -> None:
    x = torch.rand(1, 1, 32, 32, 32)
    assert MonaiResNet18().build(1, 2, (32, 32, 32), spatial_dims=3).eval()(x).shape == (1, 2)
    assert MonaiDenseNet121().build(1, 2, (32, 32, 32), spatial_dims=3).eval()(x).shape == (1, 2)


def test_the_input_wrapper_normalises_volumes_per_channel_and_resizes_trilinearly() -> None:
    net = torch.nn.Flatten()
    model = NormalizedClassifier(net, 1, mean=0.5, std=0.25, spatial_dims=3)
    assert model.mean.shape == (1, 1, 1, 1, 1)
    x = torch.rand(2, 1, 4, 4, 4)
    torch.testing.assert_close(model(x), ((x - 0.5) / 0.25).flatten(1))
    assert NormalizedClassifier(net, 1).mean.shape == (1, 1, 1, 1)  # 2-D state dicts keep their shape
    resized = wrap(net, (1, 4, 4, 4), InputParams(size=[8, 8, 8], channels=3), None)
    assert resized(x).shape == (2, 3 * 8 * 8 * 8)
    with pytest.raises(PlanError, match="has 2 sides; give 3"):
        wrap(net, (1, 4, 4, 4), InputParams(size=[8, 8]), None)


def test_training_helpers_take_volumes() -> None:
    from harness.registry.contracts import TensorSplit
    from harness_plugins.models.training import AugmentParams

    volumes = torch.rand(4, 1, 4, 6, 6)
    mean, std = channel_stats(TensorSplit(volumes, np.zeros(4), list("abcd"), list("abcd")))
    assert mean[0] == pytest.approx(float(volumes.mean()), abs=1e-6)
    out = augment_batch(volumes, AugmentParams(hflip=True, vflip=True, rotate90=True, rotation_degrees=10),
                        torch.Generator().manual_seed(0))
    assert out.shape == volumes.shape


@pytest.mark.parametrize("plugin", [CTNoise(), CTNPSNoise(), CTQuantumNoise(), CTWindowShift(), CTBlur(), CTRing(),
                                    SliceThickness(), MRIMotion(), MRIGhosting(), MRISpike(), MRIBiasField(),
                                    MRIRicianNoise()], ids=lambda p: p.name)
def test_3d_corruptions_corrupt_whole_volumes_more_at_each_severity(plugin, phantom) -> None:  # noqa: ANN001
    images = torch.from_numpy(phantom[0][:2])
    change = []
    for level in range(1, 6):
        out = plugin.apply(images, [0, 1], plugin.params_for(level), CONTEXT)
        assert out.shape == images.shape and out.dtype == torch.float32
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        change.append(float((out - images).abs().mean()))
    assert change[0] > 0 and change[-1] > change[0]
    again = plugin.apply(images, [0, 1], plugin.params_for(3), CONTEXT)
    torch.testing.assert_close(again, plugin.apply(images, [0, 1], plugin.params_for(3), CONTEXT))


def test_slice_thickness_keeps_a_z_constant_volume_and_smooths_along_z_only() -> None:
    flat_z = np.broadcast_to(np.random.default_rng(0).random((1, 1, 1, 8, 8)), (1, 1, 12, 8, 8)).copy()
    np.testing.assert_allclose(thick_slices(flat_z, 3.0), flat_z, atol=1e-12)
    ramp = np.broadcast_to(np.arange(12.0)[None, None, :, None, None], (1, 1, 12, 4, 4)).copy()
    out = thick_slices(ramp, 3.0)
    assert np.allclose(out[0, 0, :, 0, 0], out[0, 0, :, 3, 3])  # nothing moves in-plane
    assert SliceThickness().severities[0].value == 1.5 and SliceThickness().unit.startswith("mm")


def test_a_2d_only_corruption_or_slice_thickness_on_the_wrong_data_is_refused() -> None:
    volume = torch.rand(1, 1, 4, 8, 8)
    with pytest.raises(DataError, match="is for 2-D images, but the data are volumes"):
        GaussianBlur().apply(volume, [0], GaussianBlur().params_for(1), CONTEXT)
    with pytest.raises(DataError, match="is for volumes, but the data are 2-D images"):
        SliceThickness().apply(torch.rand(1, 1, 8, 8), [0], SliceThickness().params_for(1), CONTEXT)
    no_spacing = CorruptionContext(seed=0, native_units=LUNG, native_offset=-1350.0)
    with pytest.raises(DataError, match="voxel spacing"):
        SliceThickness().apply(volume, [0], SliceThickness().params_for(1), no_spacing)
    thick = CorruptionContext(seed=0, voxel_spacing_mm=(2.0, 1.0, 1.0))
    with pytest.raises(DataError, match="not thicker than the volume's 2 mm slices"):
        SliceThickness().apply(volume, [0], SliceThickness().params_for(1), thick)


@pytest.mark.parametrize("name", ["pgd_adversarial_training", "trades"])
def test_defences_fine_tune_a_3d_model(name: str, tmp_path) -> None:  # noqa: ANN001
    from harness.plan.params import build_dataclass
    from harness.registry.contracts import DefenceContext, ModelBundle, TensorSplit
    from harness.registry.manager import default_registry

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    def split(n: int, prefix: str) -> TensorSplit:
        labels = np.arange(n) % 2
        images = (0.5 + 0.05 * rng.standard_normal((n, 1, 8, 8, 8)) + 0.1 * labels[:, None, None, None, None])
        ids = [f"{prefix}{i}" for i in range(n)]
        return TensorSplit(torch.from_numpy(np.clip(images, 0, 1).astype(np.float32)), labels, ids, ids)

    data = DatasetBundle("toy3d", ["a", "b"], {"train": split(16, "tr"), "val": split(8, "va"),
                                               "test": split(4, "te")}, {"content_sha256": "toy3d"})
    torch.manual_seed(0)
    module = NormalizedClassifier(SmallCNN3D().build(1, 2, (8, 8, 8)), 1, spatial_dims=3).eval()
    naive = ModelBundle(module=module, provenance={"architecture": "small_cnn_3d", "weights_sha256": "0" * 64})
    plugin = default_registry().get("defence", name)
    params = build_dataclass(plugin.Params, {"epsilon": 0.03, "epochs": 1, "steps": 2, "batch_size": 8,
                                             "selection_steps": 2, "mixed_precision": False}, "defence")
    context = DefenceContext(dataset=data, device=torch.device("cpu"), seed=1, cache_dir=tmp_path / "c",
                             checkpoint_dir=tmp_path / "k")
    hardened = plugin.harden(naive, params, context)
    assert hardened.module(torch.rand(2, 1, 8, 8, 8)).shape == (2, 2)
    assert [e["round"] for e in hardened.provenance["training_log"]] == [0, 1]
