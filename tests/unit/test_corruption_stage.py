"""The corruption stage with the built-in plugins removed: exact numbers from the fake Darken corruption and the
mean-threshold model, the fit check, batch-size independence, resume, corruption_samples.csv and criteria."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_plugins import DARKEN_GATES_SECTION, Darken, DarkenParams, MeanModel, MeanModelParams, fake_registry
from test_plan import VALID

from harness.errors import PlanError
from harness.plan.schema import load_plan_text
from harness.registry.contracts import CorruptionContext, DatasetContext, Severity
from harness.results.model import ResultsDocument
from harness.run.runner import RunConfig, Runner

SECTION = DARKEN_GATES_SECTION
SEED = 3  # VALID's seed


def run_plan(tmp_path: Path, overrides=(), text: str = VALID + SECTION, resume: Path | None = None):
    registry = fake_registry()
    plan = load_plan_text(text, list(overrides), registry=registry, base_dir=tmp_path, source="plan.yaml")
    config = RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None)
    return Runner(plan, registry, config, resume_dir=resume).run()


def expected_accuracy(amount: float, jitter: float, n: int = 30) -> float:
    """What the mean-threshold model gets right on the toy test split darkened by `amount` (+ jitter)."""
    registry = fake_registry()
    data = registry.get("dataset", "toy")
    bundle = data.load(data.Params(n=n), DatasetContext(seed=SEED, base_dir=Path("."), cache_dir=Path(".")))
    test = bundle.splits["test"]
    plugin = Darken()
    corrupted = plugin.apply(test.images, list(range(len(test))), plugin.Params(amount=amount, jitter=jitter),
                             CorruptionContext(seed=SEED))
    predictions = (corrupted.flatten(1).mean(1) > 0.55).long().numpy()
    return float(np.mean(predictions == test.labels))


def test_corruption_results_are_exact_and_recorded(tmp_path):
    run = run_plan(tmp_path)
    darken = run.corruption("darken")
    assert darken.severities == (1, 2, 3, 4, 5) and darken.parameter == "amount" and darken.modality == "any"
    assert dict(darken.params) == {"jitter": 0.02}  # the severity parameter is given per point, not here
    for point, amount in zip(darken.points, (0.05, 0.1, 0.15, 0.2, 0.3), strict=True):
        assert point.value == amount and point.n == 10
        assert point.accuracy == expected_accuracy(amount, 0.02)
        assert point.relative_drop == pytest.approx(1.0 - point.accuracy)  # clean accuracy is 1.0
    assert [p.accuracy for p in darken.points][0] == 1.0 and darken.points[-1].accuracy == 0.5  # all bright fooled
    steady = run.corruption("darken_steady")
    assert [p.severity for p in steady.points] == [1, 4] and dict(steady.params) == {"jitter": 0.0}
    assert steady.corruption_error is None  # clean error 0: the ratio is undefined, not infinite
    assert run.model("naive").mean_corruption_error is None
    raw = json.loads((run.run_dir / "results.json").read_text())
    assert raw["models"]["naive"]["corruptions"]["darken"]["points"][2]["name"] == "moderate"
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["corruptions"]["severity_values"]["darken_steady"] == {"1": 0.05, "4": 0.2}
    assert manifest["corruptions"]["context"] == {"seed": SEED, "modality": None,
                                                  "native_units": {"per_unit": 100.0, "unit": "HU"},
                                                  "native_offset": None, "pixel_spacing_mm": None}
    assert {"kind": "corruption", "name": "darken"} in [{k: p[k] for k in ("kind", "name")}
                                                         for p in manifest["plugins"]]
    assert {"naive:corruption:darken", "naive:corruption:darken_steady"} <= set(manifest["timings_seconds"])


def test_corruption_samples_recount_every_accuracy(tmp_path):
    run = run_plan(tmp_path)
    rows = list(csv.DictReader((run.run_dir / "corruption_samples.csv").open()))
    assert len(rows) == 2 * 10 and {r["corruption"] for r in rows} == {"darken", "darken_steady"}
    steady = [r for r in rows if r["corruption"] == "darken_steady"]
    assert all(r["prediction@2"] == "" for r in steady)  # severity 2 did not run
    for point in run.corruption("darken").points:
        chosen = [r for r in rows if r["corruption"] == "darken"]
        recount = np.mean([r[f"prediction@{point.severity}"] == r["label"] for r in chosen])
        assert recount == point.accuracy


def test_results_do_not_depend_on_the_batch_size(tmp_path):
    small = run_plan(tmp_path / "small", ["batch_size=3"])
    large = run_plan(tmp_path / "large", ["batch_size=64"])
    assert small.model("naive").corruptions == large.model("naive").corruptions
    read = [(p / "corruption_samples.csv").read_text() for p in (small.run_dir, large.run_dir)]
    assert read[0] == read[1]


def test_an_interrupted_corruption_resumes_from_its_last_batch(tmp_path, monkeypatch):
    fresh = run_plan(tmp_path / "fresh", ["batch_size=3"])
    monkeypatch.setattr(Darken, "calls", 0)
    monkeypatch.setattr(Darken, "crash_after", 2 + 5)  # the fit check (1 per corruption), darken's first batch
    with pytest.raises(KeyboardInterrupt):
        run_plan(tmp_path / "resumed", ["batch_size=3"])
    (run_dir,) = (tmp_path / "resumed" / "runs").iterdir()
    assert (run_dir / "checkpoints" / "corruptions" / "naive__darken.npz").exists()
    monkeypatch.setattr(Darken, "calls", 0)
    monkeypatch.setattr(Darken, "crash_after", None)
    resumed = run_plan(tmp_path / "resumed", ["batch_size=3"], resume=run_dir)
    # the fit check (2), darken's 3 remaining batches × 5 severities, darken_steady 4 × 2, the strip (5 + 2)
    assert Darken.calls == 2 + 3 * 5 + 4 * 2 + 7
    assert resumed.document.models == fresh.document.models
    assert (resumed.run_dir / "corruption_samples.csv").read_text() == \
        (fresh.run_dir / "corruption_samples.csv").read_text()


def test_criteria_on_corruptions_measure_the_named_point_or_the_worst(tmp_path):
    run = run_plan(tmp_path)
    accuracy, drop, mce = run.criteria[2:]
    assert accuracy.measured == run.corruption_point("darken", 3).accuracy
    assert (accuracy.corruption, accuracy.severity) == ("darken", 3)
    worst = max(run.corruption_point(cid, 4).relative_drop for cid in ("darken", "darken_steady"))
    assert drop.measured == worst and drop.passed is (worst <= 0.05)
    assert drop.note.startswith("worst of 2 corruptions: ")
    assert mce.measured is None and not mce.passed and mce.note.startswith("not measured")
    document = ResultsDocument.from_json(json.loads((run.run_dir / "results.json").read_text()))
    assert document.criteria == run.criteria


def test_example_strip_holds_every_severity_run(tmp_path):
    run = run_plan(tmp_path)
    with np.load(run.run_dir / "corruption_examples_naive.npz") as saved:
        assert list(saved["ids"]) == ["darken", "darken_steady"]
        assert saved["ran"].tolist() == [[True] * 5, [True, False, False, True, False]]
        assert saved["images"].shape == (2, 5, 1, 8, 8) and int(saved["label"]) == 1
        index = 1  # the first bright (positive) test image: the same pixels the evaluation judged
        jitter = np.random.default_rng([SEED, index]).uniform(0, 0.02)
        expected = np.clip(saved["clean"] - np.float32(0.3 + jitter), 0, 1)
        assert np.allclose(saved["images"][0, 4], expected, atol=1e-6)
        means = saved["images"].reshape(2, 5, -1).mean(axis=2)
        assert (saved["preds"] == np.where(saved["ran"], means > 0.55, -1)).all()  # the model's own decision


@pytest.mark.parametrize(("corruption", "modality", "message"), [
    ("toy_ct", None, "corruption 'toy_ct' is for CT images, but the data set 'toy' does not state its modality; "
                     "set dataset.modality: CT if it is"),
    ("toy_ct", "MRI", "corruption 'toy_ct' is for CT images, but the data set 'toy' is MRI"),
    ("needs_spacing", None, "corruption 'needs_spacing' needs the pixel spacing; the data set does not give it"),
])
def test_a_corruption_the_data_cannot_take_stops_the_run_before_the_model(tmp_path, corruption, modality, message):
    overrides = [f"corruptions.1.corruption={corruption}"] + ([f"dataset.modality={modality}"] if modality else [])
    with pytest.raises(PlanError) as caught:
        run_plan(tmp_path, overrides)
    exc = caught.value
    assert exc.detail == message and exc.key == "corruptions.1.corruption" and exc.source == "plan.yaml"
    lines = (VALID + SECTION).splitlines()
    assert lines[exc.line - 1] == "  - corruption: darken" and lines[exc.line].strip() == "id: darken_steady"
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert "naive" not in json.loads((run_dir / "results.json").read_text())["models"]


def test_a_fitting_modality_runs(tmp_path):
    run = run_plan(tmp_path, ["corruptions.1.corruption=toy_ct", "dataset.modality=CT"])
    assert run.corruption("darken_steady").modality == "CT" and run.corruption("darken_steady").corruption == "toy_ct"


def test_closing_lines_name_the_worst_corruption(tmp_path):
    from harness.cli.closing import closing_lines

    run = run_plan(tmp_path)
    drop = run.criteria[3]
    assert not drop.passed
    assert drop.note == "worst of 2 corruptions: darken"
    assert (f"harness: failed {drop.id}: measured {drop.measured:.3f} (worst of 2 corruptions: darken), "
            "required <= 0.05" in closing_lines(run))


def test_a_resume_under_other_corruption_inputs_is_refused_and_reuses_no_batch(tmp_path, monkeypatch):
    from harness.run.fingerprint import ResumeRefused

    monkeypatch.setattr(Darken, "calls", 0)
    monkeypatch.setattr(Darken, "crash_after", 2 + 5)  # interrupted after darken's first batch
    with pytest.raises(KeyboardInterrupt):
        run_plan(tmp_path, ["batch_size=3"])
    (run_dir,) = (tmp_path / "runs").iterdir()
    parts = json.loads((run_dir / "manifest.json").read_text())["fingerprint"]["parts"]
    assert parts["corruptions"]["corruptions"][1] == {
        "id": "darken_steady", "corruption": "darken", "severities": [1, 4],
        "params": [{"amount": 0.05, "jitter": 0.0}, {"amount": 0.2, "jitter": 0.0}]}
    monkeypatch.setattr(Darken, "crash_after", None)
    # the same plan, but the plugin's severity 5 now darkens more (e.g. a new plugin version)
    monkeypatch.setattr(Darken, "severities", Darken.severities[:4] + (Severity(5, "severe", 0.35),))
    checkpoint = run_dir / "checkpoints" / "corruptions" / "naive__darken.npz"
    before = checkpoint.read_bytes()
    with pytest.raises(ResumeRefused, match="the corruptions .* changed since it was started"):
        run_plan(tmp_path, ["batch_size=3"], resume=run_dir)
    assert checkpoint.read_bytes() == before


def test_a_corruption_checkpoint_of_another_run_fingerprint_is_not_reused(tmp_path):
    from harness.corruptions.evaluate import corrupted_predictions
    from harness.plan.corruptions import CorruptionSpec

    registry = fake_registry()
    data = registry.get("dataset", "toy")
    test = data.load(data.Params(n=30), DatasetContext(seed=SEED, base_dir=Path("."), cache_dir=Path("."))) \
        .splits["test"]
    spec = CorruptionSpec(id="darken", corruption="darken", severities=[1, 5], params=DarkenParams(), key="c.0")
    checkpoint = tmp_path / "darken.npz"
    module = MeanModel().provide(MeanModelParams(), None).module
    args = (module, test, Darken(), spec, CorruptionContext(seed=SEED), 3, torch.device("cpu"), checkpoint)
    first = corrupted_predictions(*args, run_fingerprint="weights A")
    Darken.calls = 0
    again = corrupted_predictions(*args, run_fingerprint="weights A")
    assert Darken.calls == 0 and (again == first).all()  # every batch reused
    corrupted_predictions(*args, run_fingerprint="weights B")
    assert Darken.calls == 4 * 2  # recomputed: 4 batches × 2 severities


def test_corruption_points_carry_intervals_and_bound_criteria_use_them(tmp_path):
    bounded = SECTION.replace("    severity: 3\n    min: 0.5\n", "    severity: 3\n    min: 0.5\n    bound: lower\n")
    run = run_plan(tmp_path, text=VALID + bounded)
    point = run.corruption_point("darken", 3)
    interval = point.intervals["accuracy"]
    assert interval.low < point.accuracy <= interval.high and point.n == 10
    accuracy = run.criteria[2]
    assert accuracy.id == "darken[severity=3]::lower(accuracy)>=0.50" and accuracy.judged_on == "lower"
    assert accuracy.bound_value == pytest.approx(interval.low) and accuracy.passed is (interval.low >= 0.5)
