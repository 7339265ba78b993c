"""Intervals, bounds, Holm levels, subgroups, paired comparisons and sample-size warnings through the runner,
with in-test plugins (a toy data set with patients and metadata, a defence) and constructed results."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass, replace

import fake_plugins
import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import DataError, PlanError
from harness.plan.metrics import METRICS
from harness.plan.schema import load_plan_text
from harness.pytest_plugin.messages import failure_message
from harness.registry.contracts import DatasetBundle, ModelBundle, TensorSplit
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import Registry, make_plugin_manager
from harness.results.criteria import evaluate
from harness.results.model import ResultsDocument
from harness.results.paired import compare_samples
from harness.results.sample_size import decidable_from
from harness.results.samples import SampleOutcome
from harness.results.uncertainty import bound_at
from harness.results.view import RunResults
from harness.run.runner import RunConfig, Runner
from harness.stats.intervals import binomial_interval


@dataclass
class ClinicParams:
    n: int = 90
    site_column: str = "site"


class ClinicData:
    """Toy images (fake_plugins.ToyData) where each patient has three images and a site and sex."""

    name, description, Params = "clinic", "toy images with patients and metadata", ClinicParams
    identifiers = "synthetic"

    def load(self, params, context):
        rng = np.random.default_rng(context.seed)
        labels = (np.arange(params.n) // 3) % 2  # three images per patient, one label per patient
        images = rng.uniform(0.3, 0.5, (params.n, 1, 8, 8)) + 0.3 * labels[:, None, None, None]
        patients = [f"p{j // 3}" for j in range(params.n)]
        site = ["A" if (j // 3) % 4 < 2 else "B" for j in range(params.n)]
        sex = ["F" if (j // 6) % 2 else "M" for j in range(params.n)]
        splits = {}
        for i, name in enumerate(("train", "val", "test")):
            idx = [j for j in range(params.n) if (j // 3) % 3 == i]
            splits[name] = TensorSplit(torch.tensor(images[idx], dtype=torch.float32), labels[idx],
                                       [f"s{j}" for j in idx], [patients[j] for j in idx],
                                       {params.site_column: [site[j] for j in idx], "sex": [sex[j] for j in idx]})
        return DatasetBundle("clinic", ["dark", "bright"], splits, {"content_sha256": "1" * 64, "source": "toy"})


@dataclass
class LowerParams:
    threshold: float = 0.45


class LowerThreshold:
    """A 'defence' that moves the mean model's threshold: a different model on the same images."""

    name, description, Params = "lower_threshold", "moves the threshold", LowerParams

    def harden(self, model, params, context):
        class Net(nn.Module):
            def forward(self, x):
                m = x.flatten(1).mean(1, keepdim=True) - params.threshold
                return torch.cat([-50 * m, 50 * m], dim=1)
        return ModelBundle(Net(), {"weights_sha256": "e" * 64, "selected_round": 1, "training_log": []})


@hookimpl
def harness_register_datasets():
    return [ClinicData()]


@hookimpl
def harness_register_defences():
    return [LowerThreshold()]


def registry() -> Registry:
    return Registry(make_plugin_manager(load_entry_points=False, extra=[fake_plugins, sys.modules[__name__]]))


PLAN = textwrap.dedent("""\
    harness: 1
    name: clinic_plan
    seed: 5
    dataset: {plugin: clinic}
    model: {plugin: mean_threshold}
    defence: {plugin: lower_threshold}
    epsilons: [0.05, 0.1]
    attacks:
      - attack: shift
    subgroups: [site, sex]
    acceptance:
      - metric: clean_accuracy
        min: 0.9
        judge: estimate
      - metric: clean_accuracy
        min: 0.9
        bound: lower
      - metric: robust_accuracy
        attack: shift
        epsilon: 0.1
        model: hardened
        max: 0.9
        bound: upper
      - metric: clean_accuracy
        subgroup: {site: A}
        min: 0.5
      - metric: robust_accuracy
        attack: shift
        epsilon: 0.1
        model: hardened
        subgroup: worst
        min: 0.2
    """)


def run(tmp_path, text: str = PLAN, overrides=()) -> RunResults:
    reg = registry()
    plan = load_plan_text(text, list(overrides), registry=reg, base_dir=tmp_path)
    return Runner(plan, reg, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None)).run()


@pytest.fixture(scope="module")
def clinic_run(tmp_path_factory) -> RunResults:
    return run(tmp_path_factory.mktemp("clinic"))


def test_every_proportion_has_its_interval_and_the_clustered_one(clinic_run):
    raw = json.loads((clinic_run.run_dir / "results.json").read_text())
    assert raw["statistics"] == {"interval": "wilson", "confidence": 0.95, "multiple_comparisons": "holm",
                                 "auc": "delong", "subgroups": ["site", "sex"],
                                 "cluster_bootstrap": {"resamples": 2000, "seed": 5, "n_groups": 10}}
    manifest = json.loads((clinic_run.run_dir / "manifest.json").read_text())
    assert manifest["statistics"]["interval"] == "wilson" and manifest["statistics"]["bootstrap_resamples"] == 2000
    for role in ("naive", "hardened"):
        model = clinic_run.model(role)
        holders = [(model.clean, ("accuracy", "sensitivity", "specificity", "roc_auc"))]
        holders += [(p, ("robust_accuracy", "robust_sensitivity", "robust_specificity", "attack_success_rate"))
                    for p in model.attack("shift").points]
        for holder, fields in holders:
            for name in fields:
                interval = holder.intervals[name]
                value = getattr(holder, name)
                assert interval.low <= value <= interval.high, (role, name)
                if name != "roc_auc":
                    assert interval.clustered is not None and interval.clustered.n_groups <= 10
                    plain = binomial_interval(interval.successes, interval.n)
                    assert (interval.low, interval.high) == (plain.low, plain.high)
                    assert interval.successes / interval.n == value


def test_a_bound_flips_pass_to_fail_and_holm_adjusts_the_levels(clinic_run):
    point, lower, upper, named, worst = clinic_run.criteria
    assert point.passed and point.judged_on == "estimate" and point.bound_value is None
    assert point.id == "estimate(clean_accuracy)>=0.90" and "deviation" in point.deviation  # judge: estimate
    # 30 test images, all correct: the clustered lower bound (10 patients of three images) stays below 0.9
    assert point.measured == 1.0 and not lower.passed
    assert lower.judged_on == "lower" and lower.bound_value < 0.9 and "patient-clustered" in lower.interval
    assert lower.id == "lower(clean_accuracy)>=0.90" and lower.deviation is None
    # proportions are judged on their one-sided bound by default (the subgroup criteria name no bound)
    assert named.judged_on == "lower" and worst.judged_on == "lower"
    # four bound criteria, Holm: two pass at one-sided 1 - 0.05/4, the other two are then judged at 1 - 0.05/2
    assert upper.passed and upper.confidence == pytest.approx(0.9875) and named.confidence == pytest.approx(0.9875)
    assert lower.confidence == pytest.approx(0.975) and worst.confidence == pytest.approx(0.975)
    stored = clinic_run.model("naive").clean.intervals["accuracy"]
    # a one-sided 97.5 % bound is the end of the two-sided 95 % interval
    assert lower.bound_value == pytest.approx(bound_at(stored, 1.0, "lower", 0.95)) == stored.clustered.low
    message = failure_message(lower, "runs/x")
    assert message.startswith("lower(clean_accuracy)>=0.90: measured 1.000, one-sided lower 97.5% bound 0.")
    assert "patient-clustered" in message and message.endswith("< 0.90 (run directory: runs/x)")
    assert named.subgroup == {"site": "A"} and named.subgroup_rule is None and named.passed
    assert worst.subgroup_rule == "worst" and set(worst.subgroup) in ({"site"}, {"sex"})
    measured = [METRICS["robust_accuracy"].read(sub, "shift", 0.1) for values in
                clinic_run.model("hardened").subgroups.values() for sub in values.values()]
    assert worst.measured == min(measured) < clinic_run.criteria[2].measured < max(measured)
    assert not worst.passed and worst.bound_value < 0.2 <= worst.measured


def test_subgroups_hold_every_metric_on_their_images(clinic_run):
    naive = clinic_run.model("naive")
    assert set(naive.subgroups) == {"site", "sex"} and set(naive.subgroups["site"]) == {"A", "B"}
    site_a, site_b = naive.subgroup("site", "A"), naive.subgroup("site", "B")
    assert site_a.clean.n + site_b.clean.n == naive.clean.n
    point = site_a.attack("shift").point(0.05)
    assert point.bound_violations is None and point.intervals["robust_accuracy"].n == site_a.clean.n
    with pytest.raises(KeyError, match="no subgroup site=C"):
        naive.subgroup("site", "C")
    assert ResultsDocument.from_json(clinic_run.document.to_json()) == clinic_run.document


def test_paired_comparisons_of_naive_and_hardened(clinic_run):
    comparisons = clinic_run.document.comparisons
    assert [(c.attack, c.epsilon) for c in comparisons] == [(None, None), ("shift", 0.05), ("shift", 0.1)]
    naive, hardened = clinic_run.samples_for("shift", "naive"), clinic_run.samples_for("shift", "hardened")
    for c in comparisons:
        assert c.both + c.only_a + c.only_b + c.neither == c.n_pairs == 30
        assert c.test.startswith("exact McNemar")
        if c.attack:
            a = [s.clean_correct and not s.fooled_at(c.epsilon) for s in naive]
            b = [s.clean_correct and not s.fooled_at(c.epsilon) for s in hardened]
            assert c.only_a == sum(x and not y for x, y in zip(a, b, strict=True))
            assert c.only_b == sum(y and not x for x, y in zip(a, b, strict=True))
    assert any(c.only_a + c.only_b for c in comparisons)  # the models do disagree somewhere


def test_missing_or_identifying_metadata_is_refused(tmp_path):
    with pytest.raises(DataError, match="no metadata 'vendor' for the plan's subgroups \\(it has: sex, site\\)"):
        run(tmp_path, PLAN.replace("subgroups: [site, sex]", "subgroups: [vendor]")
            .split("acceptance:")[0])
    ids = PLAN.replace("subgroups: [site, sex]", "subgroups: [site]").split("acceptance:")[0]
    original = ClinicData.load

    def with_ids(self, params, context):
        bundle = original(self, params, context)
        test = bundle.splits["test"]
        test.metadata["site"] = list(test.sample_ids)
        return bundle

    ClinicData.load = with_ids
    try:
        with pytest.raises(DataError, match="'site' has 30 distinct values in 30 samples"):
            run(tmp_path, ids)
    finally:
        ClinicData.load = original


def test_undecidable_criteria_are_warned_with_the_n_they_need(tmp_path):
    text = PLAN.split("acceptance:")[0] + textwrap.dedent("""\
        acceptance:
          - metric: clean_accuracy
            min: 0.95
            bound: lower
          - metric: clean_sensitivity
            subgroup: {site: A}
            min: 0.9
            judge: estimate
        """)
    result = run(tmp_path, text)
    warnings = [w for w in result.warnings if w.startswith("criterion ")]
    assert warnings[0] == ("criterion lower(clean_accuracy)>=0.95: with 30 test images, even a perfect score has a "
                           "one-sided 95% Wilson score lower bound on the wrong side of 0.95, so it cannot pass; at "
                           "least 52 test images are needed")
    assert warnings[1].startswith("criterion subgroup[site=A]::estimate(clean_sensitivity)>=0.90: with 9 positive test "
                                  "images "
                                  "in subgroup site=A, even a perfect score")
    assert "a PASS on the point estimate would not be supported" in warnings[1]
    plan = load_plan_text(text, registry=registry())
    assert decidable_from(plan.acceptance, "wilson", 0.95) == [
        "lower(clean_accuracy)>=0.95: decidable from 52 test images",
        "subgroup[site=A]::estimate(clean_sensitivity)>=0.90: decidable from 25 positive test images in the "
        "subgroup"]


@pytest.mark.parametrize(("criterion", "message"), [
    ("{metric: clean_accuracy, max: 0.9, bound: lower}", "bound: lower goes with 'min', not 'max'"),
    ("{metric: clean_accuracy, min: 0.9, bound: both}", "bound must be lower or upper"),
    ("{metric: attack_credible, min: 1, bound: lower}", "attack_credible has no confidence interval"),
    ("{metric: clean_accuracy, model: change, min: 0.0, bound: lower}", "not to 'change'"),
    ("{metric: clean_accuracy, min: 0.9, subgroup: {vendor: GE}}", "'vendor' is not one of the plan's subgroups"),
    ("{metric: clean_accuracy, min: 0.9, subgroup: best}", "expected 'worst' or one attribute and its value"),
])
def test_bad_bound_and_subgroup_keys_name_the_key(criterion, message):
    text = PLAN.split("acceptance:")[0]
    with pytest.raises(PlanError, match=message):
        load_plan_text(text + f"acceptance:\n  - {criterion}\n", registry=registry())


def test_subgroup_criteria_need_the_plan_subgroups():
    text = PLAN.replace("subgroups: [site, sex]\n", "").split("acceptance:")[0]
    with pytest.raises(PlanError, match="needs the plan's 'subgroups' list"):
        load_plan_text(text + "acceptance:\n  - {metric: clean_accuracy, min: 0.5, subgroup: worst}\n",
                       registry=registry())


def test_criteria_without_intervals_fail_a_bound_with_a_note(clinic_run):
    plan = load_plan_text(PLAN, registry=registry())
    bare = clinic_run.document.with_model("naive", replace(
        clinic_run.model("naive"), clean=replace(clinic_run.model("naive").clean, intervals={})))
    lower = evaluate(plan.acceptance, bare)[1]
    assert not lower.passed and lower.note == "no confidence interval was computed for this value"


def sample(sample_id: str, clean: bool, fooled: bool, model: str) -> SampleOutcome:
    return SampleOutcome(model=model, attack="pgd", sample_id=sample_id, label=1, clean_prediction=int(clean),
                         clean_correct=clean, success={0.01: fooled or not clean}, min_epsilon=None)


def test_compare_samples_pairs_by_sample_id_and_refuses_other_images():
    a = [sample("x", True, False, "r1"), sample("y", True, True, "r1"), sample("z", False, False, "r1")]
    b = [sample("z", True, False, "r2"), sample("y", True, False, "r2"), sample("x", True, False, "r2")]
    clean, attacked = compare_samples(a, b, "run1", "run2")
    assert (clean.both, clean.only_a, clean.only_b, clean.neither) == (2, 0, 1, 0)
    assert (attacked.both, attacked.only_a, attacked.only_b, attacked.neither) == (1, 0, 2, 0)
    assert attacked.p_value == 0.5 and attacked.difference == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="different images"):
        compare_samples(a, b[:2], "run1", "run2")


def test_run_results_expose_statistics_and_comparisons(clinic_run):
    loaded = RunResults.load(clinic_run.run_dir)
    assert loaded.statistics == clinic_run.document.statistics and loaded.statistics.clustered
    assert loaded.comparisons == clinic_run.document.comparisons and len(loaded.comparisons) == 3


def test_the_worst_case_over_attacks_is_measured_per_subgroup(tmp_path):
    """`attack: any` with `subgroup:` is judged on each subgroup's own worst case, which the report's table shows."""
    from harness.report.load import load_report
    from harness.report.sections.subgroups import build

    text = PLAN.split("acceptance:")[0] + textwrap.dedent("""\
        acceptance:
          - metric: robust_accuracy
            attack: any
            epsilon: 0.1
            model: hardened
            subgroup: worst
            min: 0.2
        """)
    result = run(tmp_path, text)
    (criterion,) = result.criteria
    hardened = result.model("hardened")
    worst = []
    for values in hardened.subgroups.values():
        for sub in values.values():
            assert sub.worst_case is not None
            point = sub.worst_case.find(0.1)
            assert point.n == sub.clean.n and point.robust_accuracy <= sub.attack("shift").point(0.1).robust_accuracy
            worst.append(point.robust_accuracy)
    assert criterion.subgroup_rule == "worst" and criterion.measured == min(worst)
    section = build(load_report(result.run_dir))
    for block in section["blocks"]:
        assert block["robust_label"].startswith("accuracy under worst case of 1 attack")
        assert all(row["robust"] is not None for row in block["rows"])  # not a dash for every subgroup
