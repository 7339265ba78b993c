"""A run seals its directory with SHA256SUMS last: after a finished run, after an interruption, and after the resume
that completes it (issue 25)."""

from __future__ import annotations

import fake_plugins
import pytest
from fake_plugins import fake_registry
from test_plan import VALID

from harness.plan.schema import load_plan_text
from harness.run.runner import RunConfig, Runner
from harness.run.verify import verify_run
from harness.storage.checksums import check_sums, read_sums


def runner(tmp_path, resume_dir=None):
    registry = fake_registry()
    plan = load_plan_text(VALID, [], registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None),
                  resume_dir=resume_dir)


def test_a_finished_run_is_sealed_and_verifies(tmp_path):
    run_dir = runner(tmp_path).run().run_dir
    sums = read_sums(run_dir)
    assert {"results.json", "manifest.json", "samples.csv", "plan.source.yaml"} <= set(sums)
    assert check_sums(run_dir) == []
    found = verify_run(run_dir, check_data=False)
    assert found.ok, found.mismatches


def test_an_interrupted_run_is_sealed_and_its_resume_reseals_it(tmp_path, monkeypatch):
    original = fake_plugins.Shift.run

    def interrupted(self, model, images, labels, epsilons, params):
        raise KeyboardInterrupt

    monkeypatch.setattr(fake_plugins.Shift, "run", interrupted)
    first = runner(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    run_dir = first.run_dir
    assert check_sums(run_dir) == []  # the stopped directory is sealed as it stands
    monkeypatch.setattr(fake_plugins.Shift, "run", original)
    runner(tmp_path, resume_dir=run_dir).run()
    assert check_sums(run_dir) == []  # rewritten when the resumed run finished
    assert verify_run(run_dir, check_data=False).ok
