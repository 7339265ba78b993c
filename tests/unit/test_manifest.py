"""The typed manifest and plan record: one codec, v1 manifests still read, and the report showing the values the
run used (the plan model's defaults), never re-applying a default of its own."""

from __future__ import annotations

import textwrap
from pathlib import Path

from fake_plugins import fake_registry

from harness.plan.record import AttackRecord, PlanRecord
from harness.plan.schema import DEFAULT_BATCH_SIZE, DEFAULT_EPSILONS, ReportSettings, load_plan_text
from harness.report.inputs import ReportInput
from harness.report.sections import plan_summary
from harness.results.manifest import Manifest
from harness.results.model import PlanRef, ResultsDocument
from harness.results.view import RunResults

# A plan that leaves out seed, batch_size, epsilons, the report settings and the attack's id.
SPARSE = textwrap.dedent("""\
    harness: 1
    name: sparse
    dataset: {plugin: toy}
    model: {plugin: mean_threshold}
    attacks:
      - attack: shift
    acceptance:
      - metric: clean_accuracy
        min: 0.5
    """)

V1_MANIFEST = {
    "schema": "harness.manifest", "schema_version": 1, "harness_version": "0.1.0", "started_at": "2026-01-01T00:00:00Z",
    "resumed_at": ["2026-01-02T00:00:00Z"], "command": ["harness", "run", "p.yaml"],
    "plan": {"name": "sparse", "source": "/plans/p.yaml", "sha256": "ab" * 32, "copy": "plan.source.yaml",
             "overrides": [], "resolved": {"harness": 1, "name": "sparse", "attacks": [{"attack": "shift"}],
                                           "corruptions": [{"corruption": "darken"}]}},
    "dataset": {"plugin": "toy", "provenance": {"content_sha256": "cd" * 32}, "leakage": {"summary": None}},
    "models": {"naive": {"plugin": "mean_threshold", "cache_hit": False}},
    "timings_seconds": {}, "fingerprint": {"parts": {"plan_sha256": "ab" * 32}},
    "something_new": {"kept": True},
}


def test_a_v1_manifest_reads_with_the_plans_defaults_and_keeps_every_key():
    manifest = Manifest.from_json(V1_MANIFEST)
    plan = manifest.plan
    assert (plan.seed, plan.device, plan.batch_size) == (0, "auto", DEFAULT_BATCH_SIZE)
    assert plan.epsilons == DEFAULT_EPSILONS
    assert plan.attacks == (AttackRecord("shift", "shift", DEFAULT_EPSILONS),)  # the id defaults to the plugin
    assert plan.corruption_ids == ("darken",)
    assert (plan.susceptibility_cutoff, plan.n_examples) == (ReportSettings().susceptibility_cutoff,
                                                              ReportSettings().n_examples)
    assert manifest.resumed_at == ("2026-01-02T00:00:00Z",) and manifest.model("naive")["plugin"] == "mean_threshold"
    assert manifest.dataset_provenance["content_sha256"] == "cd" * 32
    written = manifest.to_json()
    assert {k: v for k, v in written.items() if k != "plan"} == {k: v for k, v in V1_MANIFEST.items() if k != "plan"}
    assert {k: v for k, v in written["plan"].items() if k != "effective"} == \
        {**dict.fromkeys(("file_sha256", "resolved_yaml_sha256")), "hashes": {}, **V1_MANIFEST["plan"]}
    assert Manifest.from_json(written) == manifest  # v1 read, written with `effective`, read again: the same


def test_the_record_of_a_sparse_plan_holds_the_values_the_run_used():
    plan = load_plan_text(SPARSE, registry=fake_registry())
    record = PlanRecord.of(plan, copy="plan.source.yaml", resolved_yaml_sha256="ef" * 32, hashes={})
    assert (record.seed, record.batch_size, record.epsilons) == (plan.seed, plan.batch_size, tuple(plan.epsilons))
    assert record.attacks == (AttackRecord("shift", "shift", tuple(plan.epsilons)),)
    assert PlanRecord.from_json(record.to_json()) == record
    assert "seed" not in record.resolved  # the plan as written stays as written


def test_the_report_shows_the_defaults_the_run_used_not_na(tmp_path: Path):
    plan = load_plan_text(SPARSE, registry=fake_registry())
    record = PlanRecord.of(plan, copy="plan.source.yaml", resolved_yaml_sha256="ef" * 32, hashes={})
    run = RunResults(tmp_path, ResultsDocument(plan=PlanRef(plan.name, plan.sha256)), {"plan": record.to_json()})
    report = ReportInput(run=run)
    general = dict(plan_summary.build(report)["general"])
    assert general["seed"] == str(plan.seed) and general["batch size"] == str(plan.batch_size)
    assert general["default ε grid"] == ", ".join(f"{e:g}" for e in plan.epsilons)
    assert general["examples per model"] == str(plan.report.n_examples)
    assert report.cutoff == plan.report.susceptibility_cutoff and report.attack_ids == ["shift"]
    (shift,) = plan_summary.attacks(report)
    assert shift["attack"] == "shift" and shift["default_grid"]
