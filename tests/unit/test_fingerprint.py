"""The resume fingerprint: --resume is refused when anything deciding the numbers changed, the run directory is left
untouched, and attack checkpoints are reused only under the fingerprint they were computed under."""

from __future__ import annotations

import json

import fake_plugins
import numpy as np
import pytest
import torch
from fake_plugins import fake_registry
from test_plan import VALID

from harness.attacks.sweep import _AttackState
from harness.errors import AttackError
from harness.plan.schema import load_plan_text
from harness.registry.contracts import ModelBundle
from harness.results.manifest import Manifest
from harness.run.fingerprint import Fingerprint, ResumeRefused, previous_parts
from harness.run.runner import RunConfig, Runner


def runner(tmp_path, resume=None, overrides=()):
    registry = fake_registry()
    plan = load_plan_text(VALID, list(overrides), registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None),
                  resume_dir=resume)


def snapshot(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".run.lock"}


def test_a_changed_part_is_refused_naming_it():
    fingerprint = Fingerprint(previous={"torch_threads": 1, "weights.naive": "a" * 64}, run_dir="runs/x")
    fingerprint.add("torch_threads", 1)
    fingerprint.add("data_sha256", "d" * 64)  # not recorded before (the first attempt stopped earlier): accepted
    with pytest.raises(ResumeRefused, match=r"cannot resume runs/x: the naive model's weights \(sha256\) changed "
                                            r"since it was started \(aaaaaaaaaaaa… then, bbbbbbbbbbbb… now\); start a "
                                            r"fresh run \(the same command without --resume\)"):
        fingerprint.add("weights.naive", "b" * 64)
    assert previous_parts(Manifest.from_json({"plan": {"sha256": "p" * 64}})) == {"plan_sha256": "p" * 64}  # v1


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A toy run stopped by an error in its second attack: the first attack's checkpoint is on disk."""
    original = fake_plugins.Shift.run

    def fails_at_big_epsilons(self, model, images, labels, epsilons, params):
        if max(epsilons) > 0.1:
            raise AttackError("simulated failure")
        return original(self, model, images, labels, epsilons, params)

    with monkeypatch.context() as patch:
        patch.setattr(fake_plugins.Shift, "run", fails_at_big_epsilons)
        run = runner(tmp_path)
        with pytest.raises(AttackError):
            run.run()
    results = json.loads((run.run_dir / "results.json").read_text())
    assert results["status"] == "error" and results["stage"] == "naive:attack:shift_big"
    return run.run_dir


def test_resuming_an_error_run_with_the_same_fingerprint_completes_it(tmp_path, interrupted_run):
    checkpoint = interrupted_run / "checkpoints" / "attacks" / "naive__shift.npz"
    manifest = json.loads((interrupted_run / "manifest.json").read_text())
    with np.load(checkpoint) as saved:
        assert str(saved["fingerprint"]).endswith(f";run={_digest_for_naive(manifest)}")
    resumed = runner(tmp_path, resume=interrupted_run).run()
    fresh = runner(tmp_path / "fresh").run()
    assert resumed.status == "passed" and resumed.document.models == fresh.document.models
    assert (resumed.run_dir / "samples.csv").read_bytes() == (fresh.run_dir / "samples.csv").read_bytes()


def _digest_for_naive(manifest):
    parts = {k: v for k, v in manifest["fingerprint"]["parts"].items() if k != "weights.hardened"}
    return Fingerprint(parts=parts).digest()


def test_a_swapped_model_refuses_the_resume_and_leaves_the_directory_untouched(tmp_path, interrupted_run,
                                                                               monkeypatch):
    before = snapshot(interrupted_run)

    def other_model(self, params, context):
        return ModelBundle(torch.nn.Flatten(), {"source": "fake", "weights_sha256": "e" * 64})

    monkeypatch.setattr(fake_plugins.MeanModel, "provide", other_model)
    with pytest.raises(ResumeRefused, match=r"the naive model's weights \(sha256\) changed since it was started "
                                            r"\(ffffffffffff… then, eeeeeeeeeeee… now\)"):
        runner(tmp_path, resume=interrupted_run).run()
    assert snapshot(interrupted_run) == before


def test_another_thread_count_refuses_the_resume_before_loading_anything(tmp_path, interrupted_run, monkeypatch):
    before = snapshot(interrupted_run)
    monkeypatch.setattr(fake_plugins.ToyData, "load", lambda *a: pytest.fail("the data should not be loaded"))
    with pytest.raises(ResumeRefused, match=r"torch's CPU thread count \(--threads\) changed since it was "
                                            r"started \(1 then, 2 now\)"):
        runner(tmp_path, resume=interrupted_run, overrides=["threads=2"]).run()
    assert snapshot(interrupted_run) == before


def test_the_plan_not_the_machine_decides_the_thread_count(tmp_path):
    """The runner uses the plan's `threads` (default 1) whatever torch had, records it, and restores torch's count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = runner(tmp_path).run()
        assert run.manifest["fingerprint"]["parts"]["torch_threads"] == 1
        assert run.manifest["device"]["torch_threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_another_plan_refuses_the_resume(tmp_path, interrupted_run):
    with pytest.raises(ResumeRefused, match=r"the plan \(another plan or other --set overrides\) changed"):
        runner(tmp_path, resume=interrupted_run, overrides=["seed=99"]).run()


def test_an_attack_checkpoint_is_reused_only_under_its_fingerprint(tmp_path):
    path = tmp_path / "state.npz"
    state = _AttackState.load(path, 10, [0.1], False, 4, run_fingerprint="A")
    state.next_batch, state.success[0, :4] = 1, True
    state.save(path)
    assert _AttackState.load(path, 10, [0.1], False, 4, run_fingerprint="A").next_batch == 1
    fresh = _AttackState.load(path, 10, [0.1], False, 4, run_fingerprint="B")
    assert fresh.next_batch == 0 and not fresh.success.any()


@pytest.mark.parametrize("override, what", [
    ("engine.channels_last=true", "engine options"), ("attacks.shift.schedule=bisect", "schedule")])
def test_resuming_under_another_engine_or_schedule_is_refused_untouched(tmp_path, interrupted_run, override, what):
    before = snapshot(interrupted_run)
    with pytest.raises(ResumeRefused, match=r"the plan \(another plan or other --set overrides\) changed"):
        runner(tmp_path, resume=interrupted_run, overrides=[override]).run()
    assert snapshot(interrupted_run) == before, what


def test_the_engine_used_is_a_fingerprint_part_and_decides_checkpoint_reuse(tmp_path, interrupted_run):
    parts = json.loads((interrupted_run / "manifest.json").read_text())["fingerprint"]["parts"]
    assert parts["engine.naive"] == {"channels_last": False, "compile": False, "autocast": "none",
                                     "fold_batchnorm": False, "static_shapes": False, "deterministic": False}
    other = {k: v for k, v in parts.items() if k != "engine.naive"}
    other["engine.naive"] = {**parts["engine.naive"], "autocast": "bf16"}  # what auto might choose on CUDA
    digests = [Fingerprint(parts=p).digest() for p in (parts, other)]
    assert digests[0] != digests[1]
    path = tmp_path / "state.npz"
    state = _AttackState.load(path, 10, [0.1], False, 4, run_fingerprint=digests[0])
    state.next_batch = 1
    state.save(path)
    assert _AttackState.load(path, 10, [0.1], False, 4, run_fingerprint=digests[1]).next_batch == 0
    assert _AttackState.load(path, 10, [0.1], False, 4, schedule="bisect", run_fingerprint=digests[0]).next_batch == 0
    assert _AttackState.load(path, 10, [0.1], False, 4, run_fingerprint=digests[0]).next_batch == 1
