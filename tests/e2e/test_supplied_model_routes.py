"""Acceptance: one trained model through every route (state_dict, TorchScript, ONNX) on a test-only DICOM set gives
the same clean and robust accuracy, and the run directory keeps the file that was tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_files import dicom_test_set, fit_outside, save_onnx, save_torchscript, toy_images
from monai.networks.nets import resnet18

from harness.plan.schema import load_plan_text
from harness.registry.manager import default_registry
from harness.run.runner import RunConfig, Runner
from harness.storage.hashing import file_sha256
from harness_plugins.models.architectures import SmallCNN
from harness_plugins.models.model_input import NormalizedClassifier
from harness_plugins.models.training import channel_stats

SIZE = 32
N_TEST = 24


def run_plan(folder: Path, name: str, dataset: dict, model: dict) -> tuple[dict, dict, Path]:
    """Run a plan (FGSM and PGD at two ε) and return its results, manifest and run directory."""
    plan = {"harness": 1, "name": name, "seed": 3, "device": "cpu", "batch_size": 32, "dataset": dataset,
            "model": model, "epsilons": [0.01, 0.03],
            "attacks": [{"attack": "fgsm"}, {"attack": "pgd_linf", "steps": 5, "rel_stepsize": 0.25}],
            "indicators": {"enabled": False}, "report": {"n_examples": 1}}
    registry = default_registry()
    loaded = load_plan_text(json.dumps(plan), registry=registry, base_dir=folder)
    result = Runner(loaded, registry, RunConfig(out_root=folder / "runs", progress=False, echo=lambda m: None)).run()
    return result.raw, result.manifest, result.run_dir


def accuracies(results: dict) -> dict[str, float]:
    """Clean accuracy and every robust accuracy of the naive model."""
    naive = results["models"]["naive"]
    out = {"clean": naive["clean"]["accuracy"]}
    for attack_id, summary in naive["attacks"].items():
        for point in summary["points"]:
            out[f"{attack_id}@{point['epsilon']:g}"] = point["robust_accuracy"]
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A small CNN trained by the harness's own training code, exported three ways, and a DICOM test set."""
    from harness.registry.contracts import TensorSplit
    from harness_plugins.models.training import TrainParams, fit

    folder = tmp_path_factory.mktemp("routes")
    images, labels = toy_images(96, SIZE, seed=11)
    ids = [f"s{i}" for i in range(len(images))]
    train = TensorSplit(torch.from_numpy(images), labels, ids, ids)
    torch.manual_seed(0)
    model = NormalizedClassifier(SmallCNN().build(1, 2, (SIZE, SIZE)), 1)
    model.set_normalization(*channel_stats(train))
    fit(model, train, None, TrainParams(epochs=3, batch_size=32, learning_rate=0.01), 0, 2, torch.device("cpu"),
        _Quiet(), lambda message: None)
    model.eval()
    torch.save(model.state_dict(), folder / "model.pt")
    example = torch.from_numpy(images[:2])
    save_torchscript(model, example, folder / "model.ts")
    save_onnx(model, example, folder / "model.onnx")
    test_images, test_labels = toy_images(N_TEST, SIZE, seed=12)
    manifest = dicom_test_set(folder / "dicom", test_images, test_labels, n_patients=3)
    return folder, manifest


class _Quiet:
    def advance(self, n: int = 1) -> None:
        pass


def test_state_dict_torchscript_and_onnx_agree_on_a_test_only_dicom_set(trained) -> None:
    folder, manifest = trained
    dataset = {"plugin": "dicom", "path": str(manifest), "class_names": ["dark", "bright"]}
    runs = {
        "state_dict": run_plan(folder, "route_state_dict", dataset,
                               {"plugin": "state_dict", "architecture": "small_cnn", "weights": "model.pt"}),
        "torchscript": run_plan(folder, "route_torchscript", dataset, {"plugin": "torchscript", "path": "model.ts"}),
        "onnx": run_plan(folder, "route_onnx", dataset, {"plugin": "onnx", "path": "model.onnx", "backend": "torch"}),
    }
    reference = accuracies(runs["state_dict"][0])
    assert reference["clean"] > 0.6 and reference["pgd_linf@0.03"] < reference["clean"]
    for route, (results, manifest_doc, run_dir) in runs.items():
        assert results["dataset"]["n_test"] == N_TEST
        measured = accuracies(results)
        for key, value in reference.items():
            assert abs(measured[key] - value) <= 0.01, (route, key, measured[key], value)
        kept = manifest_doc["models"]["naive"]["stored_copy"]
        source = {"state_dict": "model.pt", "torchscript": "model.ts", "onnx": "model.onnx"}[route]
        assert kept["how"] == "copy" and kept["sha256"] == file_sha256(folder / source)
        assert file_sha256(run_dir / kept["path"]) == manifest_doc["models"]["naive"]["weights_sha256"]
    assert runs["onnx"][1]["models"]["naive"]["onnx_check"]["passed"]


def test_the_same_monai_model_via_torchscript_and_state_dict(trained) -> None:
    """Issue 21: a MONAI resnet18 trained outside the harness gives the same clean and robust accuracy through
    its bare state dict (normalisation declared) and through the user's TorchScript export."""
    folder, _ = trained
    images, labels = toy_images(32, 16, seed=21)
    user = fit_outside(resnet18(spatial_dims=2, n_input_channels=1, num_classes=2), images, labels, 0.45, 0.2)
    torch.save(user.network.state_dict(), folder / "resnet18.pt")
    save_torchscript(user, torch.from_numpy(images[:2]), folder / "resnet18.ts")
    import numpy as np

    test_images, test_labels = toy_images(16, 16, seed=22)
    np.savez(folder / "locked.npz", images=test_images, labels=test_labels)
    dataset = {"plugin": "npz", "path": "locked.npz", "split": "all_test"}
    by_state_dict = run_plan(folder, "resnet_state_dict", dataset, {
        "plugin": "state_dict", "architecture": "resnet18", "weights": "resnet18.pt",
        "normalization": {"mean": 0.45, "std": 0.2}, "keep_model": False})
    by_torchscript = run_plan(folder, "resnet_torchscript", dataset, {"plugin": "torchscript", "path": "resnet18.ts"})
    assert accuracies(by_state_dict[0]) == accuracies(by_torchscript[0])
    assert by_state_dict[1]["models"]["naive"]["stored_copy"] == {"path": None, "how": "not kept (keep_model: false)"}
    assert not (by_state_dict[2] / "model").exists()
