"""The core on N×C×D×H×W volumes (issue 27): splits, the judge's bound check, Square, auto batch size, leakage
thumbnails, BatchNorm3d folding and the report's orthogonal planes; 2-D behaviour unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.attacks.engine.batch_size import auto_batch_size, input_mib_per_batch
from harness.attacks.engine.batchnorm import fold_batchnorm
from harness.attacks.judge import judge
from harness.attacks.native.square import square_linf
from harness.data.leakage import find_leakage, thumbnails
from harness.registry.contracts import TensorSplit
from harness.report.plots import image_png, orthogonal_planes, projections
from harness.report.saved_examples import read_examples

CPU = torch.device("cpu")


class Volume3D(nn.Module):
    """A tiny 3-D classifier: Conv3d, BatchNorm3d, ReLU, pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
                                      nn.AdaptiveAvgPool3d(1))
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.features[1].running_mean.uniform_(-0.1, 0.1)
            self.features[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def test_tensor_split_takes_volumes_and_refuses_other_ranks() -> None:
    split = TensorSplit(torch.rand(3, 1, 4, 5, 6), np.array([0, 1, 0]), ["a", "b", "c"], ["p", "q", "r"])
    assert split[1][0].shape == (1, 4, 5, 6)
    with pytest.raises(ValueError, match="N×C×H×W or N×C×D×H×W"):
        TensorSplit(torch.rand(3, 4, 5), np.array([0, 1, 0]), ["a", "b", "c"], ["p", "q", "r"])


def test_the_judge_checks_the_bound_on_volumes() -> None:
    model = Volume3D().eval()
    x = torch.rand(3, 1, 6, 6, 6) * 0.5
    y = torch.tensor([0, 1, 0])
    inside = judge(model, x, y, x + 0.005, "linf", 0.01)
    outside = judge(model, x, y, x + 0.02, "linf", 0.01)
    assert bool(inside.valid.all()) and not bool(outside.valid.any())
    assert float(inside.distance.max()) == pytest.approx(0.005, abs=1e-6)


def test_square_attacks_volumes_within_the_bound() -> None:
    model = Volume3D().eval()
    x = torch.rand(2, 1, 5, 8, 8)
    torch.manual_seed(1)
    adversarial = square_linf(model, x, torch.tensor([0, 1]), 0.03, queries=20)
    assert adversarial.shape == x.shape
    assert float((adversarial - x).abs().max()) <= 0.03 + 1e-6
    assert float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1


def test_auto_batch_size_counts_every_voxel_of_a_volume() -> None:
    assert auto_batch_size(nn.Identity(), (1, 64, 64), CPU) == 32  # 2-D unchanged
    assert auto_batch_size(nn.Identity(), (1, 32, 32, 32), CPU) == 4
    assert auto_batch_size(nn.Identity(), (1, 16, 16, 16), CPU) == 32
    assert input_mib_per_batch((1, 32, 32, 32), 4) == 0.5


def test_leakage_finds_a_duplicate_volume_across_splits() -> None:
    volumes = torch.rand(6, 1, 8, 16, 16)
    train = TensorSplit(volumes[:3], np.array([0, 1, 0]), ["a", "b", "c"], ["p", "q", "r"])
    near = (volumes[2:3] + 0.001 * torch.randn(1, 1, 8, 16, 16)).clamp(0, 1)
    test = TensorSplit(torch.cat([volumes[1:2], near, torch.rand(1, 1, 8, 16, 16)]), np.array([1, 0, 1]),
                       ["d", "e", "f"], ["s", "t", "u"])
    found = find_leakage({"train": train, "val": TensorSplit(volumes[5:], np.array([0]), ["g"], ["v"]),
                          "test": test})
    assert found.exact["train→test"] == 1 and found.near["train→test"] == 1
    assert thumbnails(volumes).shape[0] == 6


def test_batchnorm3d_folds_into_conv3d_with_the_same_logits() -> None:
    model = Volume3D().eval()
    x = torch.rand(2, 1, 6, 6, 6)
    before = model(x)
    assert fold_batchnorm(model) == 1
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)


def test_report_shows_a_volume_as_three_orthogonal_planes_and_mips() -> None:
    volume = np.zeros((1, 4, 6, 8))
    volume[0, 2, 3, 4] = 1.0
    strip = orthogonal_planes(volume)
    assert strip.shape == (1, 6, 8 + 2 + 8 + 2 + 6)  # axial H×W, coronal D×W, sagittal D×H, 2-pixel gaps
    assert strip[0, 3, 4] == 1.0  # the axial plane through the centre holds the voxel
    assert projections(volume).max() == 1.0 and projections(volume).shape == strip.shape
    assert image_png(volume.astype(np.float32))[:4] == b"\x89PNG"


def test_saved_examples_of_volumes_are_read(tmp_path) -> None:  # noqa: ANN001
    clean = np.random.default_rng(0).random((2, 1, 4, 6, 6), dtype=np.float32)
    np.savez(tmp_path / "examples_naive.npz", clean=clean, adversarial=clean, labels=np.array([0, 1]),
             clean_pred=np.array([0, 1]), clean_conf=np.array([0.9, 0.8]), adv_pred=np.array([0, 1]),
             adv_conf=np.array([0.9, 0.8]), sample_ids=np.array(["a", "b"]), attack_id=np.asarray("pgd"),
             epsilon=np.asarray(0.004))
    assert read_examples(tmp_path / "examples_naive.npz").clean.shape == (2, 1, 4, 6, 6)
