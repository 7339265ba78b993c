"""K classes end to end with the fake plugins: per-class results with intervals, the confusion matrix, macro
sensitivity, criteria naming a class, and a class the data set lacks."""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass

import fake_plugins
import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import PlanError
from harness.plan.schema import load_plan_text
from harness.registry.contracts import DatasetBundle, ModelBundle, TensorSplit
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import Registry, make_plugin_manager
from harness.run.runner import RunConfig, Runner

LEVELS = (0.2, 0.5, 0.8)


class ThreeLevels:
    name, description, Params = "three_levels", "dark, grey and bright squares", fake_plugins.ToyDataParams
    identifiers = "synthetic"

    def load(self, params, context):
        rng = np.random.default_rng(context.seed)
        labels = (np.arange(params.n) // 3) % 3  # every split gets every class
        images = rng.uniform(-0.12, 0.12, (params.n, 1, 8, 8)) + np.array(LEVELS)[labels][:, None, None, None]
        splits = {}
        for i, name in enumerate(("train", "val", "test")):
            idx = np.arange(params.n)[i::3]
            splits[name] = TensorSplit(torch.tensor(images[idx], dtype=torch.float32), labels[idx],
                                       [f"s{j}" for j in idx], [f"p{j}" for j in idx])
        return DatasetBundle("three", ["glioma", "meningioma", "pituitary"], splits, {"content_sha256": "1" * 64})


class Nearest(nn.Module):
    def forward(self, x):
        mean = x.flatten(1).mean(1, keepdim=True)
        return -50 * (mean - torch.tensor(LEVELS)).abs()


class NearestLevel:
    name, description, needs_training_data = "nearest_level", "the nearest brightness level", False

    @dataclass
    class Params:
        pass

    def provide(self, params, context):
        return ModelBundle(Nearest(), {"source": "fake", "weights_sha256": "3" * 64})


class Plugins:
    @hookimpl
    def harness_register_datasets(self):
        return [ThreeLevels()]

    @hookimpl
    def harness_register_models(self):
        return [NearestLevel()]


PLAN = textwrap.dedent("""\
    harness: 1
    name: three
    dataset: {plugin: three_levels, n: 90}
    model: {plugin: nearest_level}
    epsilons: [0.05, 0.1]
    attacks:
      - attack: shift
    acceptance:
      - {metric: clean_sensitivity, class: pituitary, min: 0.7}
      - {metric: robust_sensitivity, class: glioma, attack: shift, epsilon: 0.1, min: 0.5}
      - {metric: clean_macro_sensitivity, min: 0.9}
    """)


def run(tmp_path, overrides=(), text=PLAN):
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[sys.modules[fake_plugins.__name__],
                                                                            Plugins()]))
    plan = load_plan_text(text, list(overrides), registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None)).run()


def test_three_classes_give_per_class_results_and_macro_metrics(tmp_path):
    result = run(tmp_path)
    naive = result.raw["models"]["naive"]
    assert [list(row) for row in naive["clean"]["confusion_matrix"]] == [[10, 0, 0], [0, 10, 0], [0, 0, 10]]
    assert naive["clean"]["macro_sensitivity"] == 1.0
    assert set(naive["classes"]) == {"glioma", "meningioma", "pituitary"}
    glioma = naive["classes"]["glioma"]
    assert glioma["clean"]["sensitivity"] == 1.0 and glioma["clean"]["intervals"]["sensitivity"]["low"] < 1.0
    points = glioma["attacks"]["shift"]["points"]
    # the shift darkens glioma (label 0) by ε: still nearest 0.2, never fooled, while brighter classes move
    assert [p["robust_sensitivity"] for p in points] == [1.0, 1.0]
    assert "robust_macro_sensitivity" in naive["attacks"]["shift"]["points"][0]
    # each class has its own worst case over attacks, one-vs-rest like its attacks
    for name in ("glioma", "meningioma", "pituitary"):
        worst = naive["classes"][name]["worst_case"]["points"]
        assert [p["robust_sensitivity"] for p in worst] == [
            p["robust_sensitivity"] for p in naive["classes"][name]["attacks"]["shift"]["points"]]
    assert naive["classes"]["glioma"]["worst_case"]["points"][-1]["robust_sensitivity"] == 1.0
    ids = [c["id"] for c in result.raw["criteria"]]
    assert ids[0] == "class[pituitary]::clean_sensitivity>=0.70"
    clean, robust, macro = result.raw["criteria"]
    assert clean["passed"] and macro["passed"]
    # the toy shift cannot move glioma images, and the unbounded-budget indicator says so: inconclusive, not PASS
    assert not robust["passed"] and robust["inconclusive"].startswith("inconclusive: unbounded_budget")


def test_a_class_the_data_set_lacks_stops_with_one_line(tmp_path):
    text = PLAN.replace("class: pituitary", "class: astrocytoma")
    with pytest.raises(PlanError, match=r"key 'acceptance.0.class': class 'astrocytoma' is not a class of the data"):
        run(tmp_path, text=text)


def test_a_threshold_on_more_than_two_classes_is_refused(tmp_path):
    with pytest.raises(PlanError, match="a threshold applies to a binary model; this data set has 3 classes"):
        run(tmp_path, ["model.decision={threshold: 0.3}"])


def test_the_report_shows_the_per_class_table(tmp_path):
    from harness.report.context import build_context
    from harness.report.load import load_report
    from harness.report.render import render_html

    result = run(tmp_path)
    text = " ".join(re.sub(r"<[^>]+>", " ", render_html(build_context(load_report(result.run_dir)))).split())
    assert "Per class (one-vs-rest)" in text and "macro sensitivity (balanced accuracy)" in text
    assert "glioma 10 100.0%" in text and "Operating point" not in text
    assert "sens. under the worst case at ε ≈ 0.004" in text
    row = text[text.index("glioma 10 100.0%"):text.index("meningioma 10")]
    assert " – " not in f" {row} "  # the worst case has a value per class, not a bare dash


def test_a_class_criterion_counts_that_class_when_it_checks_the_sample_size():
    from harness.plan.criteria import Criterion
    from harness.results.sample_size import undecidable_warnings

    labels = np.array([0] * 50 + [1] * 50 + [2] * 3)
    criterion = Criterion(id="c", metric="clean_sensitivity", op=">=", threshold=0.9, bound="lower",
                          class_name="pituitary")
    [line] = undecidable_warnings([criterion], "wilson", 0.95, labels, 1, {}, ["glioma", "meningioma", "pituitary"])
    assert "with 3 positive test images" in line  # the pituitary images, not the data set's positive class
