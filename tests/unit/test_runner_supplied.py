"""The runner with supplied models: test-only data, models without gradients, and the tested model kept."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass

import fake_plugins
import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import DataError, ModelError
from harness.plan.schema import load_plan_text
from harness.registry.contracts import AttackOutput, DatasetBundle, ModelBundle, TensorSplit
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import Registry, make_plugin_manager
from harness.run.runner import RunConfig, Runner
from harness.storage.hashing import file_sha256


@dataclass
class Empty:
    pass


class TestOnlyData:
    """The toy data with every row in the test split (a locked external set)."""

    name, description, Params = "toy_test_only", "toy data, test split only", fake_plugins.ToyDataParams
    identifiers = "synthetic"

    def load(self, params, context):
        bundle = fake_plugins.ToyData().load(params, context)
        test = bundle.splits["test"]
        empty = TensorSplit(torch.zeros(0, *test.images.shape[1:]), np.zeros(0, dtype=np.int64), [], [])
        return DatasetBundle(bundle.name, bundle.class_names, {"train": empty, "val": empty, "test": test},
                             bundle.provenance, bundle.native_units)


class Supplied:
    """The mean-threshold model, declared as supplied; `differentiable: false` answers like onnxruntime does."""

    name, description, needs_training_data = "supplied_mean", "a supplied model", False

    @dataclass
    class Params:
        differentiable: bool = True

    def provide(self, params, context):
        bundle = fake_plugins.MeanModel().provide(fake_plugins.MeanModelParams(), context)
        module = bundle.module if params.differentiable else NoGradients(bundle.module)
        return ModelBundle(module, {"source": "fake", "weights_sha256": "f" * 64}, params.differentiable)


class NoGradients(nn.Module):
    """Forward only (like a model run by onnxruntime)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x)


class GradientFreeShift(fake_plugins.Shift):
    """The shift attack under another name, declared gradient-free (like the Square attack)."""

    name, requires_gradients = "shift_free", False

    def run(self, model, images, labels, epsilons, params):
        return AttackOutput(super().run(model, images, labels, epsilons, params).adversarials)


class GradientShift(fake_plugins.Shift):
    """The shift attack under another name, declared as following gradients (like PGD)."""

    name, requires_gradients = "shift_grad", True


class NoopDefence:
    """Returns the model unchanged."""

    name, description, Params = "noop", "no defence at all", Empty

    def harden(self, model, params, context):
        return model


class Plugins:
    @hookimpl
    def harness_register_datasets(self):
        return [TestOnlyData()]

    @hookimpl
    def harness_register_models(self):
        return [Supplied()]

    @hookimpl
    def harness_register_attacks(self):
        return [GradientFreeShift(), GradientShift()]

    @hookimpl
    def harness_register_defences(self):
        return [NoopDefence()]


PLAN = textwrap.dedent("""\
    harness: 1
    name: supplied_plan
    dataset: {plugin: toy_test_only, n: 30}
    model: {plugin: supplied_mean}
    epsilons: [0.2]
    attacks:
      - attack: shift_grad
      - attack: shift_free
    acceptance:
      - {metric: robust_accuracy, attack: shift_grad, epsilon: 0.2, min: 0.0}
    """)


def run(tmp_path, overrides=(), text=PLAN):
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[sys.modules[fake_plugins.__name__],
                                                                            Plugins()]))
    plan = load_plan_text(text, list(overrides), registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None)).run()


def test_a_supplied_model_runs_on_test_only_data_and_is_kept(tmp_path):
    result = run(tmp_path)
    assert set(result.raw["models"]["naive"]["attacks"]) == {"shift_grad", "shift_free"}
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    kept = manifest["models"]["naive"]["stored_copy"]
    assert kept["path"] == "model/naive.state_dict.pt" and kept["how"].startswith("state dict saved")
    assert file_sha256(result.run_dir / kept["path"]) == kept["sha256"]
    assert manifest["models"]["naive"]["attacks_not_possible"] == []


def test_a_training_model_plugin_on_test_only_data_is_refused(tmp_path):
    with pytest.raises(DataError, match="empty train split, but model plugin 'mean_threshold' trains on it"):
        run(tmp_path, ["model.plugin=mean_threshold"])  # a plugin that does not declare: assumed to train


def test_without_gradients_only_gradient_free_attacks_run(tmp_path):
    result = run(tmp_path, ["model.differentiable=false"])
    naive = result.raw["models"]["naive"]
    assert list(naive["attacks"]) == ["shift_free"] and "indicators" not in naive
    warnings = result.raw["warnings"]
    assert any("attack 'shift_grad' was not run: it needs input gradients" in w for w in warnings)
    assert any("indicators were not computed" in w for w in warnings)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["models"]["naive"]["attacks_possible"] == ["shift_free"]
    assert manifest["models"]["naive"]["attacks_not_possible"] == ["shift_grad"]
    entry = result.raw["criteria"][0]
    assert entry["measured"] is None and not result.passed  # a criterion on an attack that could not run fails


def test_a_defence_needs_gradients_and_training_data(tmp_path):
    text = PLAN + "defence: {plugin: noop}\n"
    with pytest.raises(DataError, match="empty train split, but defence 'noop' trains on it"):
        run(tmp_path, text=text)
    with pytest.raises(ModelError, match="defence 'noop' fine-tunes the model with gradients"):
        run(tmp_path, ["dataset.plugin=toy", "model.differentiable=false"], text=text)
