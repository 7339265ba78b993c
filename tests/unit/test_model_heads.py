"""The runner with the model's output contract and operating point: checks, one-line errors, the decision."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from dataclasses import dataclass

import fake_plugins
import numpy as np
import pytest
import torch
from test_runner_supplied import NoopDefence, TestOnlyData
from torch import nn

from harness.attacks.operating_point import choose_point
from harness.errors import DataError, ModelError, PlanError
from harness.plan.schema import load_plan_text
from harness.registry.contracts import ModelBundle
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import Registry, make_plugin_manager
from harness.run.runner import RunConfig, Runner


class Head(nn.Module):
    """The mean-brightness model returning one of the heads hospitals ship (or a noisy or multi-label one)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 50 * (x.flatten(1).mean(1, keepdim=True) - 0.55)
        if self.kind == "noisy":
            z = z + 0.1 * torch.randn_like(z)
        logits = torch.cat([-z, z], dim=1)
        return {"logits": logits, "noisy": logits, "sigmoid_logit": 2 * z, "probabilities": logits.softmax(1),
                "sigmoid_probability": torch.sigmoid(2 * z), "multi_label": torch.cat([z, z, z], 1)}[self.kind]


class Exported:
    name, description, needs_training_data = "exported", "the mean model exported with one head", False

    @dataclass
    class Params:
        kind: str = "logits"

    def provide(self, params, context):
        return ModelBundle(Head(params.kind), {"source": "fake", "weights_sha256": "e" * 64})


class Plugins:
    @hookimpl
    def harness_register_models(self):
        return [Exported()]

    @hookimpl
    def harness_register_datasets(self):
        return [TestOnlyData()]

    @hookimpl
    def harness_register_defences(self):
        return [NoopDefence()]


PLAN = textwrap.dedent("""\
    harness: 1
    name: heads
    dataset: {plugin: toy, n: 60}
    model: {plugin: exported}
    epsilons: [0.05, 0.1]
    attacks:
      - attack: shift
    acceptance:
      - {metric: clean_accuracy, min: 0.5}
    """)


def run(tmp_path, overrides=(), text=PLAN):
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[sys.modules[fake_plugins.__name__],
                                                                            Plugins()]))
    plan = load_plan_text(text, list(overrides), registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None)).run()


def _decisions(result):
    rows = (result.run_dir / "samples.csv").read_text().splitlines()
    return rows[1:]


@pytest.mark.parametrize("kind", ["sigmoid_logit", "probabilities", "sigmoid_probability"])
def test_every_head_gives_the_logits_models_results(tmp_path, kind):
    reference = run(tmp_path / "a", ["model.kind=logits"])
    other = run(tmp_path / "b", [f"model.kind={kind}", f"model.output={kind}"])
    assert other.raw["models"]["naive"]["clean"] == reference.raw["models"]["naive"]["clean"]
    assert other.raw["models"]["naive"]["attacks"] == reference.raw["models"]["naive"]["attacks"]
    assert _decisions(other) == _decisions(reference)
    assert not any("look like" in w for w in other.raw["warnings"])
    manifest = json.loads((other.run_dir / "manifest.json").read_text())
    assert manifest["models"]["naive"]["head"] == {"output": kind, "operating_point": None}


def test_a_probability_export_without_output_is_warned(tmp_path):
    result = run(tmp_path, ["model.kind=probabilities"])
    [line] = [w for w in result.raw["warnings"] if "sums to 1" in w]
    assert "plan says output: logits" in line and "declare output: probabilities" in line


def test_wrong_or_unsupported_outputs_stop_with_one_line(tmp_path):
    with pytest.raises(ModelError, match=r"got \(N, 1\); a single-logit sigmoid head needs output: sigmoid_logit"):
        run(tmp_path, ["model.kind=sigmoid_logit"])
    with pytest.raises(ModelError, match="says output: probabilities but the rows"):
        run(tmp_path, ["model.kind=logits", "model.output=probabilities"])
    with pytest.raises(ModelError, match="multi-label models are not supported yet"):
        run(tmp_path, ["model.kind=multi_label", "model.output=sigmoid_logit"])
    with pytest.raises(PlanError, match="output must be one of"):
        run(tmp_path, ["model.output=softmax"])


def test_a_stochastic_model_is_warned_and_refused_a_defence(tmp_path):
    result = run(tmp_path, ["model.kind=noisy"])
    assert any("two forward passes on the same images differ" in w and "EOT" in w for w in result.raw["warnings"])
    with pytest.raises(ModelError, match="two forward passes .* defence 'noop' cannot be judged"):
        run(tmp_path, ["model.kind=noisy"], text=PLAN + "defence: {plugin: noop}\n")


def test_the_operating_point_moves_sensitivity_and_specificity(tmp_path):
    head = ["model.kind=sigmoid_logit", "model.output=sigmoid_logit"]  # toy logits ±15: thresholds past them
    low = run(tmp_path / "low", [*head, "model.decision={threshold: 0.00000001}"]).raw["models"]["naive"]
    high = run(tmp_path / "high", [*head, "model.decision={threshold: 0.99999999}"]).raw["models"]["naive"]
    base = run(tmp_path / "base", head)
    middle = base.raw["models"]["naive"]
    assert low["clean"]["sensitivity"] >= middle["clean"]["sensitivity"] >= high["clean"]["sensitivity"]
    assert low["clean"]["specificity"] <= middle["clean"]["specificity"] <= high["clean"]["specificity"]
    assert (low["clean"]["sensitivity"], low["clean"]["specificity"]) != (high["clean"]["sensitivity"],
                                                                          high["clean"]["specificity"])
    assert low["clean"]["roc_auc"] == high["clean"]["roc_auc"] == middle["clean"]["roc_auc"]  # threshold-free
    assert (low["clean"]["sensitivity"], low["clean"]["specificity"]) == (1.0, 0.0)
    assert (high["clean"]["sensitivity"], high["clean"]["specificity"]) == (0.0, 1.0)
    assert high["operating_point"]["threshold"] == pytest.approx(0.99999999)
    assert high["operating_point"]["method"] == "declared" and "operating_point" not in middle


def test_a_threshold_chosen_on_val_reaches_the_sensitivity(tmp_path):
    from rich.console import Console

    from harness.cli.tables import print_summary

    result = run(tmp_path, ["model.decision={sensitivity: 0.9, on: val}"])
    console = Console(record=True, width=200)
    print_summary(console, result)
    assert "naive model, test n=20 (decided at P(positive) ≥ " in console.export_text()
    point = result.raw["models"]["naive"]["operating_point"]
    assert point["method"] == "sensitivity" and point["split"] == "val" and point["split_sensitivity"] >= 0.9
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["models"]["naive"]["head"]["operating_point"]["threshold"] == point["threshold"]


def test_operating_point_bad_input_is_one_line(tmp_path):
    with pytest.raises(PlanError, match=r"key 'model.decision.threshold'.*strictly between 0 and 1, got 1.5"):
        run(tmp_path, ["model.decision={threshold: 1.5}"])
    with pytest.raises(DataError, match="chooses the threshold on the val split, but .* has no val images"):
        run(tmp_path, ["dataset.plugin=toy_test_only", "model.decision={sensitivity: 0.9}"])
    with pytest.raises(PlanError, match="exactly one of threshold or sensitivity"):
        run(tmp_path, ["model.decision={threshold: 0.5, sensitivity: 0.9}"])


def test_choose_point_takes_the_highest_threshold_meeting_the_target():
    scores = np.array([[0, s] for s in [-3.0, -1.0, 0.5, 1.0, 2.0, 3.0, 4.0]])
    labels = np.array([0, 1, 0, 1, 1, 1, 0])
    point = choose_point(scores, labels, 1, 0.75, "val")  # 3 of the 4 positives: the third highest is 1.0
    assert point.threshold_logit == pytest.approx(0.75) and point.split_sensitivity == 0.75
    assert point.split_specificity == pytest.approx(2 / 3)


def test_the_report_states_the_operating_point(tmp_path):
    from harness.report.context import build_context
    from harness.report.load import load_report
    from harness.report.render import render_html

    result = run(tmp_path, ["model.decision={sensitivity: 0.9, on: val}"])
    text = " ".join(re.sub(r"<[^>]+>", " ", render_html(build_context(load_report(result.run_dir)))).split())
    assert "Operating point: naive model: threshold" in text and "chosen on the val split" in text
    assert "Per class" not in text


def test_a_hardened_model_gets_its_own_operating_point_on_the_same_view(tmp_path):
    result = run(tmp_path, ["model.kind=sigmoid_logit", "model.output=sigmoid_logit",
                            "model.decision={sensitivity: 0.9, on: val}"], text=PLAN + "defence: {plugin: noop}\n")
    naive, hardened = (result.raw["models"][role] for role in ("naive", "hardened"))
    assert hardened["operating_point"]["method"] == "sensitivity"
    assert hardened["operating_point"]["threshold_logit"] == naive["operating_point"]["threshold_logit"]
    assert hardened["clean"] == naive["clean"] and hardened["attacks"] == naive["attacks"]
