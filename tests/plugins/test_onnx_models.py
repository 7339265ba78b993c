"""The onnx model plugin: our own architectures exported with torch.onnx (never downloaded), converted to torch
and checked against onnxruntime; unsupported operators named, or run by onnxruntime without gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from model_files import save_onnx, toy_images
from torch import nn

from harness.cli.main import main
from harness.errors import ModelError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, ModelContext, TensorSplit
from harness_plugins.models import architectures
from harness_plugins.models.onnx.graph import OnnxGraph
from harness_plugins.models.onnx.provider import OnnxProvider

SIZE = 32


class EveryOp(nn.Module):
    """Uses the converter's operator list beyond plain CNNs: Pad (reflect), LeakyRelu, Clip, AveragePool, Resize
    (nearest and bilinear), Sigmoid, Mul, Concat/Slice, MatMul, Softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 16 * 16, 2)
        self.mix = nn.Parameter(torch.randn(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv(F.pad(x, (1, 2, 1, 2), mode="reflect")), 0.1).clamp(-1, 2)
        y = F.interpolate(F.avg_pool2d(y, 2), scale_factor=2, mode="nearest")
        y = F.interpolate(y, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        y = F.max_pool2d(torch.sigmoid(y) * y + y, 2)
        y = torch.cat([y, y], 1)[:, :4]
        z = self.head(y.flatten(1))
        return torch.softmax(z, 1) @ self.mix + z


class Unsupported(nn.Module):
    """A small CNN with an operator outside the converter's subset (CumSum)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = architectures.SmallCNN().build(1, 2, (SIZE, SIZE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).cumsum(1)


def dataset() -> DatasetBundle:
    images, labels = toy_images(8, SIZE, seed=5)
    ids = [f"s{i}" for i in range(8)]
    return DatasetBundle("toy", ["dark", "bright"], {"test": TensorSplit(torch.from_numpy(images), labels, ids, ids)},
                         {"content_sha256": "0" * 64})


def provide(base: Path, **values: object):
    params = build_dataclass(OnnxProvider.Params, values, "model")
    archs = {a.name: a for a in architectures.harness_register_architectures()}
    context = ModelContext(dataset=dataset(), device=torch.device("cpu"), seed=0, base_dir=base, cache_dir=base,
                           architectures=archs)
    return OnnxProvider().provide(params, context)


def _logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


@pytest.mark.parametrize("name", ["small_cnn", "vgg_style", "resnet18", "densenet121"])
def test_our_architectures_convert_exactly(name: str, tmp_path: Path) -> None:
    arch = {a.name: a for a in architectures.harness_register_architectures()}[name]
    torch.manual_seed(0)
    network = arch.build(1, 2, (SIZE, SIZE)).eval()
    path = save_onnx(network, torch.rand(2, 1, SIZE, SIZE), tmp_path / f"{name}.onnx")
    converted = OnnxGraph(onnx.load(str(path))).eval()
    x = torch.rand(5, 1, SIZE, SIZE)
    assert float((_logits(converted, x) - _logits(network, x)).abs().max()) < 1e-5
    x.requires_grad_(True)
    converted(x).sum().backward()
    assert float(x.grad.abs().sum()) > 0  # attacks get input gradients


def test_provider_converts_checks_against_onnxruntime_and_records_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = EveryOp().eval()
    save_onnx(model, torch.rand(2, 1, SIZE, SIZE), tmp_path / "ops.onnx", dynamic_batch=False)
    bundle = provide(tmp_path, path="ops.onnx", backend="torch")
    prov = bundle.provenance
    assert bundle.differentiable and prov["differentiable"] is True
    assert prov["backend"].startswith("torch") and prov["fixed_batch_size"] == 2
    assert {"Pad", "Resize", "Clip", "LeakyRelu", "AveragePool", "Softmax", "MatMul", "Slice"} <= set(prov["operators"])
    check = prov["onnx_check"]
    assert check["passed"] and check["n_images"] == 8 and check["max_abs_difference"] < 1e-4
    assert "onnxruntime" in check["compared_with"]
    x = dataset().splits["test"].images[:5]  # 5 rows through a batch-2 export: chunks and a padded last one
    assert float((_logits(bundle.module, x) - _logits(model, x)).abs().max()) < 1e-5
    assert len(prov["weights_sha256"]) == 64 and prov["opset"] >= 11


def test_unsupported_operator_is_named_or_run_by_onnxruntime(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Unsupported().eval()
    save_onnx(model, torch.rand(2, 1, SIZE, SIZE), tmp_path / "cumsum.onnx")
    with pytest.raises(ModelError, match=r"cumsum\.onnx: the ONNX→torch converter does not support operator CumSum; "
                                         r"use backend: onnxruntime") as info:
        provide(tmp_path, path="cumsum.onnx", backend="torch")
    assert "\n" not in info.value.one_line()
    bundle = provide(tmp_path, path="cumsum.onnx")  # auto: falls back to onnxruntime
    assert not bundle.differentiable and bundle.provenance["differentiable"] is False
    assert "CumSum" in bundle.provenance["not_converted"] and "onnx_check" not in bundle.provenance
    x = dataset().splits["test"].images
    assert float((_logits(bundle.module, x) - _logits(model, x)).abs().max()) < 1e-5


def test_input_shape_and_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    network = architectures.SmallCNN().build(3, 2, (64, 64)).eval()
    save_onnx(network, torch.rand(2, 3, 64, 64), tmp_path / "rgb64.onnx")
    with pytest.raises(ModelError, match=r"takes input \?×3×64×64 but is fed N×1×32×32; declare model\.input"):
        provide(tmp_path, path="rgb64.onnx")
    bundle = provide(tmp_path, path="rgb64.onnx", input={"size": [64, 64], "channels": 3})
    assert bundle.provenance["input"]["model_shape"] == [3, 64, 64] and bundle.provenance["onnx_check"]["passed"]
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"junk\.onnx: not a valid ONNX model"):
        provide(tmp_path, path="junk.onnx")
    with pytest.raises(ModelError, match="ONNX file not found"):
        provide(tmp_path, path="missing.onnx")


def test_converter_mismatch_with_onnxruntime_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    network = architectures.SmallCNN().build(1, 2, (SIZE, SIZE)).eval()
    save_onnx(network, torch.rand(2, 1, SIZE, SIZE), tmp_path / "small.onnx")
    from harness_plugins.models.onnx import ops

    monkeypatch.setitem(ops.OPS, "Relu", lambda attrs, opset, x: [F.leaky_relu(x, 0.5)])  # a converter bug
    with pytest.raises(ModelError, match=r"differs from onnxruntime by .* on sample images; run it with backend: "
                                         r"onnxruntime"):
        provide(tmp_path, path="small.onnx")


def test_export_reference_from_an_onnx_file(tmp_path: Path) -> None:
    network = architectures.SmallCNN().build(1, 2, (SIZE, SIZE)).eval()
    save_onnx(network, torch.rand(2, 1, SIZE, SIZE), tmp_path / "vendor.onnx")
    assert main(["export-reference", str(tmp_path / "vendor.onnx"), "--shape", "1", str(SIZE), str(SIZE),
                 "--n", "3", "--out", str(tmp_path / "ref")]) == 0
    images = torch.from_numpy(np.load(tmp_path / "ref" / "reference_inputs.npy"))
    np.testing.assert_allclose(np.load(tmp_path / "ref" / "reference_logits.npy"), _logits(network, images).numpy(),
                               atol=1e-5)
