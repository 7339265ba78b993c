"""Supplied models load exactly as their authors built them, or not at all (issue 21), behind a declared input
contract (issue 17): library defaults, declared normalisation, the reference check and export-reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_files import fit_outside, save_torchscript, toy_images
from monai.networks.nets import resnet18

from harness.cli.main import main
from harness.data.reference_pair import INPUTS_NAME, LOGITS_NAME, save_array
from harness.errors import ModelError, PlanError
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetBundle, ModelContext, TensorSplit
from harness_plugins.models import architectures, providers
from harness_plugins.models.model_input import InputParams, NormalizedClassifier

SIZE = 16
MEAN, STD = 0.42, 0.21  # the user's own normalisation, not the harness's


def dataset(n_test: int = 12, channels: int = 1) -> DatasetBundle:
    images, labels = toy_images(n_test, SIZE, seed=3, channels=channels)
    ids = [f"t{i}" for i in range(n_test)]
    empty = TensorSplit(torch.zeros(0, channels, SIZE, SIZE), np.zeros(0, dtype=np.int64), [], [])
    return DatasetBundle("toy", ["dark", "bright"], {"train": empty, "val": empty,
                                                     "test": TensorSplit(torch.from_numpy(images), labels, ids, ids)},
                         {"content_sha256": "0" * 64})


def context(base: Path, data: DatasetBundle | None = None) -> ModelContext:
    archs = {a.name: a for a in architectures.harness_register_architectures()}
    return ModelContext(dataset=data or dataset(), device=torch.device("cpu"), seed=0, base_dir=base,
                        cache_dir=base, architectures=archs)


def provide(provider: object, base: Path, data: DatasetBundle | None = None, **values: object):
    params = build_dataclass(provider.Params, values, "model")
    return provider.provide(params, context(base, data))


@pytest.fixture(scope="module")
def user_resnet(tmp_path_factory: pytest.TempPathFactory):
    """MONAI resnet18 (MONAI's defaults: stride-1 stem) trained outside the harness, its state dict and a
    reference pair written by the user's own code."""
    folder = tmp_path_factory.mktemp("user")
    images, labels = toy_images(24, SIZE, seed=1)
    model = fit_outside(resnet18(spatial_dims=2, n_input_channels=1, num_classes=2), images, labels, MEAN, STD)
    torch.save(model.network.state_dict(), folder / "resnet18.pt")
    with torch.no_grad():
        logits = model(torch.from_numpy(images[:8])).numpy()
    save_array(folder / INPUTS_NAME, images[:8])
    save_array(folder / LOGITS_NAME, logits)
    return folder, model


def test_monai_resnet18_trained_outside_reproduces_its_own_logits(user_resnet) -> None:
    folder, user_model = user_resnet
    bundle = provide(providers.StateDictProvider(), folder, architecture="resnet18", weights="resnet18.pt",
                     normalization={"mean": MEAN, "std": STD},
                     reference={"inputs": INPUTS_NAME, "logits": LOGITS_NAME, "tolerance": 1e-5})
    check = bundle.provenance["reference_check"]
    assert check["passed"] and check["max_abs_difference"] <= 1e-5 and check["n_inputs"] == 8
    test = dataset().splits["test"].images
    with torch.no_grad():
        assert float((bundle.module(test) - user_model(test)).abs().max()) <= 1e-5
    arguments = bundle.provenance["architecture_arguments"]
    assert arguments["constructor"] == "monai.networks.nets.resnet18"
    assert arguments["arguments"]["conv1_t_stride"] == 1 and arguments["from_plan"] == []
    assert bundle.provenance["normalization"] == {"mean": [pytest.approx(MEAN)], "std": [pytest.approx(STD)],
                                                  "source": "plan"}


def test_the_stride_2_variant_is_explicit_and_checked(tmp_path: Path) -> None:
    images, labels = toy_images(24, SIZE, seed=1)
    variant = fit_outside(resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=2),
                          images, labels, MEAN, STD)
    torch.save(variant.network.state_dict(), tmp_path / "stride2.pt")
    with torch.no_grad():
        save_array(tmp_path / "logits.npy", variant(torch.from_numpy(images[:8])).numpy())
    save_array(tmp_path / "inputs.npy", images[:8])
    common = {"weights": "stride2.pt", "normalization": {"mean": MEAN, "std": STD},
              "reference": {"inputs": "inputs.npy", "logits": "logits.npy"}}
    # every weight has the same shape, so only the reference check can tell the two networks apart
    with pytest.raises(ModelError, match=r"does not reproduce logits\.npy: max \|logit difference\| \S+ > "
                                         r"tolerance 0\.0001 over 8 inputs"):
        provide(providers.StateDictProvider(), tmp_path, architecture="resnet18", **common)
    bundle = provide(providers.StateDictProvider(), tmp_path,
                     architecture={"name": "resnet18", "conv1_t_stride": 2}, **common)
    assert bundle.provenance["architecture_arguments"]["from_plan"] == ["conv1_t_stride"]
    assert bundle.provenance["reference_check"]["passed"]


def test_stride_mismatch_is_exit_2_with_the_max_difference(user_resnet, tmp_path: Path, capsys) -> None:
    folder, _ = user_resnet
    stride2 = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2, conv1_t_stride=2)
    stride2.load_state_dict(torch.load(folder / "resnet18.pt", weights_only=True))
    images = np.load(folder / INPUTS_NAME)
    with torch.no_grad():  # the reference of a stride-2 model; the plan declares MONAI's resnet18 (stride 1)
        save_array(tmp_path / "logits.npy", stride2((torch.from_numpy(images) - MEAN) / STD).numpy())
    save_array(tmp_path / "inputs.npy", images)
    plan = write_plan(tmp_path, {"plugin": "state_dict", "architecture": "resnet18",
                                 "weights": str(folder / "resnet18.pt"), "normalization": {"mean": MEAN, "std": STD},
                                 "reference": {"inputs": "inputs.npy", "logits": "logits.npy"}})
    assert main(["run", str(plan), "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "max |logit difference|" in err[0] and "tolerance" in err[0], err


def test_bare_state_dict_without_normalization_is_refused_naming_the_key(user_resnet, tmp_path, capsys) -> None:
    folder, _ = user_resnet
    plan = write_plan(tmp_path, {"plugin": "state_dict", "architecture": "resnet18",
                                 "weights": str(folder / "resnet18.pt")})
    assert main(["run", str(plan), "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "model.normalization" in err[0] and "bare network" in err[0], err


def error_lines(stderr: str) -> list[str]:
    """The error lines of the CLI's stderr (progress lines aside); there must be exactly one."""
    return [line for line in stderr.splitlines() if line.startswith("harness: error")]


def write_plan(folder: Path, model: dict) -> Path:
    """A plan over a tiny test-only npz set (16×16, 12 images) with one cheap attack."""
    images, labels = toy_images(12, SIZE, seed=3)
    np.savez(folder / "test.npz", images=images, labels=labels, split=np.array(["test"] * 12))
    plan = {"harness": 1, "name": "supplied", "device": "cpu", "dataset": {"plugin": "npz", "path": "test.npz"},
            "model": model, "epsilons": [0.01], "attacks": [{"attack": "fgsm"}], "indicators": {"enabled": False}}
    path = folder / "plan.yaml"
    path.write_text(json.dumps(plan))  # JSON is YAML
    return path


def test_file_normalisation_and_a_plan_declaration_do_not_mix(tmp_path: Path) -> None:
    model = NormalizedClassifier(architectures.SmallCNN().build(1, 2, (SIZE, SIZE)), 1, mean=0.3, std=0.2)
    torch.save(model.state_dict(), tmp_path / "wrapped.pt")
    bundle = provide(providers.StateDictProvider(), tmp_path, architecture="small_cnn", weights="wrapped.pt")
    assert bundle.provenance["normalization"]["source"].startswith("file")
    assert bundle.provenance["reference_check"]["kind"] == "none"
    with pytest.raises(PlanError, match="model.normalization.*carries its own normalisation"):
        provide(providers.StateDictProvider(), tmp_path, architecture="small_cnn", weights="wrapped.pt",
                normalization={"mean": 0.5, "std": 0.25})


def test_expected_accuracy_reference(tmp_path: Path) -> None:
    model = NormalizedClassifier(architectures.SmallCNN().build(1, 2, (SIZE, SIZE)), 1)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    with torch.no_grad():
        test = dataset().splits["test"]
        accuracy = float((model.eval()(test.images).argmax(1).numpy() == test.labels).mean())
    ok = provide(providers.StateDictProvider(), tmp_path, architecture="small_cnn", weights="w.pt",
                 reference={"expected_accuracy": accuracy})
    assert ok.provenance["reference_check"]["measured_accuracy"] == pytest.approx(accuracy)
    wrong = min(1.0, accuracy + 0.25) if accuracy < 0.75 else accuracy - 0.25
    with pytest.raises(ModelError, match=r"expected test accuracy.*difference 0\.2500 > tolerance 0\.01"):
        provide(providers.StateDictProvider(), tmp_path, architecture="small_cnn", weights="w.pt",
                reference={"expected_accuracy": wrong})
    with pytest.raises(PlanError, match="model.reference"):
        build_dataclass(providers.StateDictParams, {"architecture": "small_cnn", "weights": "w.pt",
                                                    "reference": {"inputs": "x.npy"}}, "model")


# --------------------------------------------------------------------------- the declared input contract


def test_input_contract_resizes_replicates_scales_and_normalises_inside_the_model(tmp_path: Path) -> None:
    """A 3×32×32 model on [0,255] inputs with ImageNet-style constants, fed 1×16×16 [0,1] images."""
    mean, std = [123.7, 116.3, 103.5], [58.4, 57.1, 57.4]
    network = architectures.SmallCNN().build(3, 2, (32, 32)).eval()
    ts = save_torchscript(network, torch.rand(2, 3, 32, 32), tmp_path / "net.ts")
    bundle = provide(providers.TorchScriptProvider(), tmp_path, path="net.ts",
                     input={"size": [32, 32], "channels": 3, "scale": [0, 255]},
                     normalization={"mean": mean, "std": std})
    assert ts.is_file()
    x = dataset().splits["test"].images
    expected_input = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    expected_input = (expected_input.expand(-1, 3, -1, -1) * 255 - torch.tensor(mean).view(1, 3, 1, 1)) / \
        torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(bundle.module(x), network(expected_input), atol=1e-5)
    record = bundle.provenance["input"]
    assert record["data_shape"] == [1, SIZE, SIZE] and record["model_shape"] == [3, 32, 32]
    assert record["channels_replicated"] and record["scale"] == [0.0, 255.0]
    assert "ε × 255" in record["epsilon_units"]
    # ε stays on the data's [0,1] image: the input gradient has the data's shape
    x = x[:2].clone().requires_grad_(True)
    bundle.module(x).sum().backward()
    assert x.grad.shape == (2, 1, SIZE, SIZE) and float(x.grad.abs().sum()) > 0


def test_input_contract_is_one_home_for_normalisation() -> None:
    with pytest.raises(PlanError, match=r"model\.input\.mean.*model\.normalization"):
        build_dataclass(InputParams, {"mean": [0.5], "std": [0.2]}, "model.input")
    with pytest.raises(PlanError, match=r"model\.input\.scale"):
        build_dataclass(InputParams, {"scale": [255, 0]}, "model.input")


def test_input_contract_size_and_channels_reach_the_architecture(tmp_path: Path) -> None:
    network = architectures.VGGStyle().build(3, 2, (32, 32))
    torch.save(network.state_dict(), tmp_path / "vgg.pt")
    bundle = provide(providers.StateDictProvider(), tmp_path, architecture="vgg_style", weights="vgg.pt",
                     normalization="none", input={"size": [32, 32], "channels": 3})
    assert bundle.provenance["architecture_arguments"]["arguments"]["image_size"] == [32, 32]
    assert bundle.provenance["normalization"]["source"] == "none (plan: normalization: none)"
    with pytest.raises(PlanError, match="model.input.channels"):
        provide(providers.StateDictProvider(), tmp_path, dataset(channels=3), architecture="vgg_style",
                weights="vgg.pt", normalization="none", input={"size": [32, 32], "channels": 1})


def test_torchscript_without_declarations_is_used_as_it_is(tmp_path: Path) -> None:
    network = architectures.SmallCNN().build(1, 2, (SIZE, SIZE)).eval()
    save_torchscript(network, torch.rand(2, 1, SIZE, SIZE), tmp_path / "net.ts")
    bundle = provide(providers.TorchScriptProvider(), tmp_path, path="net.ts")
    assert not isinstance(bundle.module, NormalizedClassifier)
    assert bundle.provenance["normalization"] == {"source": "none declared: the file is taken to include its own "
                                                            "preprocessing"}


# --------------------------------------------------------------------------- export-reference


def test_export_reference_from_python_code_then_check(user_resnet, tmp_path: Path, capsys) -> None:
    folder, _ = user_resnet
    code = tmp_path / "trusted.py"
    code.write_text(
        "import torch\nfrom monai.networks.nets import resnet18\n"
        "class Model(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.net = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2)\n"
        f"        self.net.load_state_dict(torch.load({str(folder / 'resnet18.pt')!r}, weights_only=True))\n"
        f"    def forward(self, x):\n        return self.net((x - {MEAN}) / {STD})\n"
        "def build():\n    return Model()\n")
    assert main(["export-reference", f"{code}:build", "--shape", "1", str(SIZE), str(SIZE), "--n", "6",
                 "--out", str(tmp_path / "ref")]) == 0
    out = capsys.readouterr().out
    assert "reference: {inputs:" in out and (tmp_path / "ref" / LOGITS_NAME).is_file()
    bundle = provide(providers.StateDictProvider(), tmp_path, architecture="resnet18",
                     weights=str(folder / "resnet18.pt"), normalization={"mean": MEAN, "std": STD},
                     reference={"inputs": "ref/" + INPUTS_NAME, "logits": "ref/" + LOGITS_NAME})
    assert bundle.provenance["reference_check"]["n_inputs"] == 6


def test_export_reference_from_torchscript_and_bad_inputs(tmp_path: Path, capsys) -> None:
    network = architectures.SmallCNN().build(1, 2, (SIZE, SIZE)).eval()
    save_torchscript(network, torch.rand(2, 1, SIZE, SIZE), tmp_path / "net.ts")
    images, _ = toy_images(5, SIZE)
    save_array(tmp_path / "mine.npy", images)
    assert main(["export-reference", str(tmp_path / "net.ts"), "--inputs", str(tmp_path / "mine.npy"),
                 "--out", str(tmp_path / "ref")]) == 0
    with torch.no_grad():
        expected = network(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "ref" / LOGITS_NAME), expected, atol=1e-6)
    save_array(tmp_path / "hu.npy", images * 1000)
    capsys.readouterr()
    assert main(["export-reference", str(tmp_path / "net.ts"), "--inputs", str(tmp_path / "hu.npy"),
                 "--out", str(tmp_path / "ref2")]) == 2
    assert "must be [0,1] images" in capsys.readouterr().err
    assert main(["export-reference", f"{tmp_path / 'none.py'}:build", "--shape", "1", "4", "4",
                 "--out", str(tmp_path / "ref3")]) == 2


# --------------------------------------------------------------------------- plan validation


def test_plan_validation_names_architecture_options_and_sandboxes_reference_files(tmp_path: Path) -> None:
    from harness.plan.schema import load_plan_text
    from harness.registry.manager import default_registry

    def plan(model: str, extra: str = "") -> str:
        return (f"harness: 1\nname: p\n{extra}dataset: {{plugin: npz, path: d.npz}}\nmodel: {model}\n"
                "attacks: [{attack: fgsm}]\n")

    registry = default_registry()
    with pytest.raises(PlanError, match=r"plan\.yaml:4, key 'model\.architecture\.stride'.*has no option 'stride'"):
        load_plan_text(plan("{plugin: state_dict, weights: w.pt, architecture: {name: resnet18, stride: 2}}"),
                       registry=registry, source="plan.yaml")
    with pytest.raises(PlanError, match=r"key 'model\.architecture\.name'.*unknown architecture 'resnet19'"):
        load_plan_text(plan("{plugin: state_dict, weights: w.pt, architecture: {name: resnet19}}"),
                       registry=registry, source="plan.yaml")
    ok = load_plan_text(plan("{plugin: train, architecture: {name: resnet18, conv1_t_stride: 2}}"),
                        registry=registry, source="plan.yaml")
    assert ok.model.params.architecture == {"name": "resnet18", "conv1_t_stride": 2}
    with pytest.raises(PlanError, match=r"model\.reference\.logits"):
        load_plan_text(plan("{plugin: torchscript, path: m.ts, reference: {inputs: x.npy, logits: /etc/l.npy}}",
                            "sandbox: true\n"), registry=registry, base_dir=tmp_path, source="plan.yaml")
