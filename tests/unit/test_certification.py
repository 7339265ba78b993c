"""The certification section of a plan, its criteria, and a whole run with the fake plugins: the mean-threshold
model is linear, so every certified radius must stay below its exact distance to the decision boundary."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from fake_plugins import fake_registry
from test_plan import VALID

from harness.errors import PlanError
from harness.plan.schema import load_plan_text
from harness.results.certification import PLAIN, CertificationResult
from harness.results.model import ResultsDocument
from harness.run.fingerprint import ResumeRefused
from harness.run.runner import RunConfig, Runner
from harness.stats.smoothing import max_certifiable_radius

SECTION = """\
certification:
  sigma: [0.12, 0.25]
  n0: 20
  n: 200
  alpha: 0.01
  batch_size: 64
  radii: [0.0, 0.1, 0.3, 0.7]
"""
CRITERIA = """\
  - metric: certified_accuracy
    sigma: 0.25
    epsilon: 0.01
    min: 0.5
  - metric: certified_accuracy
    sigma: 0.12
    radius: 0.1
    bound: lower
    min: 0.2
  - metric: abstention_rate
    sigma: 0.25
    max: 0.5
"""


def load(text: str = VALID + CRITERIA + SECTION, overrides: list[str] | None = None):
    return load_plan_text(text, overrides, registry=fake_registry(), source="plan.yaml")


def error(overrides: list[str] | None = None, text: str = VALID + CRITERIA + SECTION) -> PlanError:
    with pytest.raises(PlanError) as caught:
        load(text, overrides)
    return caught.value


def test_the_section_is_parsed_with_defaults_and_criteria_name_sigma_and_epsilon_or_radius():
    plan = load()
    settings = plan.certification
    assert settings.sigmas == [0.12, 0.25] and (settings.n0, settings.n, settings.alpha) == (20, 200, 0.01)
    assert settings.n_images is None and settings.precision == "auto"
    ids = [c.id for c in plan.acceptance[-3:]]
    assert ids == ["smoothed[sigma=0.25,eps=0.01]::certified_accuracy>=0.50",
                   "smoothed[sigma=0.12,radius=0.1]::lower(certified_accuracy)>=0.20",
                   "smoothed[sigma=0.25]::abstention_rate<=0.50"]
    assert (plan.acceptance[-3].epsilon, plan.acceptance[-3].radius, plan.acceptance[-3].sigma) == (0.01, None, 0.25)
    defaults = load(VALID + "certification: {}\n").certification
    assert (defaults.sigmas, defaults.n0, defaults.n, defaults.alpha) == ([0.12, 0.25, 0.5], 100, 1000, 0.001)
    assert load(VALID + "certification: {sigma: 0.25}\n").certification.sigmas == [0.25]
    assert load(VALID).certification is None


@pytest.mark.parametrize(("override", "key", "words"), [
    ("certification.sigma=[0.25, 1.5]", "certification.sigma", "≤ 1"),
    ("certification.sigma=[0.25, 0.25]", "certification.sigma", "must not repeat"),
    ("certification.n=0", "certification.n", "≥ 1"),
    ("certification.alpha=0.5", "certification.alpha", "≤ 0.25"),
    ("certification.bogus=1", "certification.bogus", "unknown key"),
    ("acceptance.2.sigma=0.3", "acceptance.2.sigma", "one of the plan's noise levels (0.12, 0.25)"),
    ("acceptance.2.radius=0.2", "acceptance.2", "exactly one of 'epsilon'"),
    ("acceptance.4.radius=0.2", "acceptance.4.radius", "takes no radius"),
    ("acceptance.0.sigma=0.25", "acceptance.0.sigma", "takes no sigma"),
])
def test_bad_certification_input_names_the_key(override, key, words):
    found = error([override])
    assert found.key == key and words in found.detail


def test_a_certification_criterion_needs_the_section_and_a_sigma_when_there_are_several():
    assert "needs a 'certification' section" in error(text=VALID + CRITERIA).detail
    missing = error(["acceptance.2.sigma=null"])
    assert missing.key == "acceptance.2.sigma" and "needs 'sigma'" in missing.detail


def run_plan(tmp_path: Path, text: str = VALID + CRITERIA + SECTION, resume: Path | None = None, overrides=()):
    registry = fake_registry()
    plan = load_plan_text(text, list(overrides), registry=registry, base_dir=tmp_path, source="plan.yaml")
    lines: list[str] = []
    config = RunConfig(out_root=tmp_path / "runs", progress=False, echo=lines.append)
    return Runner(plan, registry, config, resume_dir=resume).run(), lines


def test_a_run_certifies_below_the_exact_radius_of_the_linear_model_and_records_every_image(tmp_path):
    run, lines = run_plan(tmp_path)
    result = run.model("naive").certification
    assert isinstance(result, CertificationResult) and result.model_kind == PLAIN
    assert result.dimension == 64 and result.n_images == result.n_test == 10
    assert any("ε 0.01 (L∞) is covered by the L2 radius ε·√d = 0.01·√64 = 0.08" in line for line in lines)
    assert sum(line.startswith("harness: naive: smoothed at σ=") and "at r=0.08 (ε 0.01)" in line
               for line in lines) == 2
    rows = list(csv.DictReader((run.run_dir / "certification_samples.csv").open()))
    assert len(rows) == 20 and {r["sigma"] for r in rows} == {"0.12", "0.25"}
    images = {r["sample_id"]: r for r in rows}
    assert len(images) == 10
    for found in result.sigmas:
        radii = [p.radius for p in found.points]
        assert radii == sorted(radii) and 0.08 in [round(r, 12) for r in radii]  # ε 0.01 · √64
        accuracies = [p.certified_accuracy for p in found.points]
        assert all(a >= b for a, b in zip(accuracies, accuracies[1:], strict=False))  # non-increasing
        assert found.forward_passes == 10 * 220
        assert found.max_radius == pytest.approx(max_certifiable_radius(found.sigma, 200, 0.01))
        assert max(p.certified_accuracy for p in found.points if p.radius > found.max_radius) == 0.0
        mine = [r for r in rows if r["sigma"] == f"{found.sigma:g}"]
        for point in found.points:  # every certified accuracy recounts from the rows
            hits = sum(r["certified_class"] == r["label"] and float(r["radius"]) >= point.radius for r in mine)
            assert point.n_certified == hits and point.certified_accuracy == hits / 10
            assert point.intervals["certified_accuracy"].successes == hits
        assert found.smoothed_accuracy == sum(r["smoothed_prediction"] == r["label"] for r in mine) / 10
    from fake_plugins import MeanModelParams

    threshold = MeanModelParams().threshold
    test = _toy_test()
    for index, row in enumerate(rows[:10]):
        exact = abs(float(test.images[index].mean()) - threshold) * math.sqrt(64)  # |w·x + b| / ‖w‖
        assert float(row["radius"]) <= exact
    cost = run.manifest["certification"]["cost"]["naive"]["0.25"]
    assert cost["precision"]["used"] == "float32, channels-last" == result.sigmas[1].precision  # it agreed exactly
    assert cost["forward_passes"] == 10 * 220 and cost["forward_passes_per_second"] > 0
    judged = {c.id: c for c in run.document.criteria}
    assert "ε 0.01 (L∞) → L2 radius ε·√d = 0.01·√64 = 0.08" in judged[
        "smoothed[sigma=0.25,eps=0.01]::certified_accuracy>=0.50"].note
    raw = json.loads((run.run_dir / "results.json").read_text())
    assert ResultsDocument.from_json(raw).models["naive"].certification == result
    assert json.loads(json.dumps(ResultsDocument.from_json(raw).to_json())) == raw


def _toy_test():
    from pathlib import Path as P

    from harness.registry.contracts import DatasetContext

    data = fake_registry().get("dataset", "toy")
    bundle = data.load(data.Params(n=30), DatasetContext(seed=3, base_dir=P("."), cache_dir=P(".")))
    return bundle.splits["test"]


def test_results_written_before_certification_stay_readable():
    raw = {"weights_sha256": None, "clean": {"accuracy": 1.0, "sensitivity": 1.0, "specificity": 1.0,
                                             "roc_auc": 1.0, "n": 2, "confusion_matrix": []}, "attacks": {}}
    from harness.results.model import ModelResult

    model = ModelResult.from_json(raw)
    assert model.certification is None and "certification" not in model.to_json()


def test_resume_continues_from_the_checkpoint_and_refuses_other_certification_settings(tmp_path):
    first, _ = run_plan(tmp_path)
    checkpoints = sorted(p.name for p in (first.run_dir / "checkpoints" / "certification").iterdir())
    assert checkpoints == ["naive__sigma0.12.npz", "naive__sigma0.25.npz"]
    again, _ = run_plan(tmp_path, resume=first.run_dir)
    assert again.model("naive").certification == first.model("naive").certification
    with pytest.raises(ResumeRefused):
        run_plan(tmp_path, resume=first.run_dir, overrides=["certification.n=300"])


def test_a_subset_of_images_is_evenly_spaced():
    from harness.certification.evaluate import image_indices

    assert image_indices(10, None).tolist() == list(range(10))
    assert image_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert np.array_equal(image_indices(5, 50), np.arange(5))


def test_the_report_section_shows_each_sigma_and_is_left_out_without_certification(tmp_path):
    from harness.report.inputs import ReportInput
    from harness.report.sections import certification

    run, _ = run_plan(tmp_path)
    section = certification.build(ReportInput(run=run))
    assert [(row["role"], row["sigma"]) for row in section["rows"]] == [("naive", "0.12"), ("naive", "0.25")]
    assert section["conversions"][0] == {"eps": "0.004", "native": "0.4 HU", "radius": "0.032"}
    assert section["models"][0]["kind"].startswith("plain")
    plain, _ = run_plan(tmp_path / "plain", text=VALID)
    assert certification.build(ReportInput(run=plain)) is None
