"""Supplied models on volumes (issue 27): a 3-D CNN (Conv3d, BatchNorm3d, 3-D pooling) through the built-in ONNX
converter, checked against onnxruntime, and through TorchScript, fed N×1×D×H×W."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from model_files import save_onnx, save_torchscript
from torch import nn

from harness.errors import ModelError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, ModelContext, TensorSplit
from harness_plugins.models import architectures
from harness_plugins.models.onnx.graph import OnnxGraph
from harness_plugins.models.onnx.provider import OnnxProvider
from harness_plugins.models.providers import TorchScriptProvider

SIZE = 12


class Pools3D(nn.Module):
    """A 3-D CNN with every 3-D operator the converter covers: Conv3d, BatchNorm3d, max and average pooling,
    trilinear Resize, global average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(F.relu(self.conv(x)))  # BatchNorm after the ReLU: the exporter keeps it (no Conv fusion)
        y = F.avg_pool3d(F.max_pool3d(y, 2), 1)
        y = F.interpolate(y, size=(SIZE, SIZE, SIZE), mode="trilinear", align_corners=False)
        return self.head(F.adaptive_avg_pool3d(y, 1).flatten(1))


def volumes() -> DatasetBundle:
    rng = np.random.default_rng(3)
    images = torch.from_numpy(rng.random((6, 1, SIZE, SIZE, SIZE), dtype=np.float32))
    ids = [f"v{i}" for i in range(6)]
    return DatasetBundle("vol", ["a", "b"], {"test": TensorSplit(images, np.array([0, 1] * 3), ids, ids)},
                         {"content_sha256": "0" * 64})


def provide(provider: object, base: Path, **values: object):
    params = build_dataclass(provider.Params, values, "model")
    archs = {a.name: a for a in architectures.harness_register_architectures()}
    context = ModelContext(dataset=volumes(), device=torch.device("cpu"), seed=0, base_dir=base, cache_dir=base,
                           architectures=archs)
    return provider.provide(params, context)


@pytest.mark.parametrize("network", [Pools3D, lambda: architectures.SmallCNN3D().build(1, 2, (SIZE,) * 3)],
                         ids=["pools3d", "small_cnn_3d"])
def test_3d_networks_convert_exactly_with_input_gradients(network, tmp_path: Path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = network().eval()
    path = save_onnx(model, torch.rand(2, 1, SIZE, SIZE, SIZE), tmp_path / "v.onnx")
    converted = OnnxGraph(onnx.load(str(path))).eval()
    x = torch.rand(3, 1, SIZE, SIZE, SIZE, requires_grad=True)
    with torch.no_grad():
        assert float((converted(x) - model(x)).abs().max()) < 1e-5
    converted(x).sum().backward()
    assert float(x.grad.abs().sum()) > 0


def test_onnx_provider_checks_a_3d_model_against_onnxruntime(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_onnx(Pools3D().eval(), torch.rand(2, 1, SIZE, SIZE, SIZE), tmp_path / "v.onnx")
    bundle = provide(OnnxProvider(), tmp_path, path="v.onnx", backend="torch")
    check = bundle.provenance["onnx_check"]
    assert check["passed"] and check["max_abs_difference"] < 1e-4
    assert {"Conv", "BatchNormalization", "MaxPool", "AveragePool"} <= set(bundle.provenance["operators"])


def test_an_onnx_model_for_2d_images_is_refused_on_volumes(tmp_path: Path) -> None:
    flat = architectures.SmallCNN().build(1, 2, (SIZE, SIZE)).eval()
    save_onnx(flat, torch.rand(2, 1, SIZE, SIZE), tmp_path / "flat.onnx")
    with pytest.raises(ModelError, match=r"fed N×1×12×12×12"):
        provide(OnnxProvider(), tmp_path, path="flat.onnx", backend="torch")


def test_torchscript_volumes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Pools3D().eval()
    save_torchscript(model, torch.rand(2, 1, SIZE, SIZE, SIZE), tmp_path / "v.pt")
    bundle = provide(TorchScriptProvider(), tmp_path, path="v.pt", normalization="none")
    x = volumes().splits["test"].images
    with torch.no_grad():
        torch.testing.assert_close(bundle.module(x), model(x))


def test_state_dict_volumes_with_the_declared_normalisation(tmp_path: Path) -> None:
    from harness_plugins.models.providers import StateDictProvider

    torch.manual_seed(0)
    network = architectures.SmallCNN3D().build(1, 2, (SIZE,) * 3).eval()
    torch.save(network.state_dict(), tmp_path / "w.pt")
    bundle = provide(StateDictProvider(), tmp_path, architecture="small_cnn_3d", weights="w.pt",
                     normalization={"mean": 0.5, "std": 0.25})
    x = volumes().splits["test"].images
    with torch.no_grad():
        torch.testing.assert_close(bundle.module(x), network((x - 0.5) / 0.25))
    assert bundle.provenance["architecture_arguments"]["name"] == "small_cnn_3d"
