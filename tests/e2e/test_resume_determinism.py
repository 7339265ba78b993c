"""An interrupted run (kill -9 mid-sweep) reads interrupted and resumes to the same results as an uninterrupted one;
runs are repeatable; a resume whose model, threads or plan changed is refused and leaves the run directory as it
was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import PLANS

from harness.results.view import RunResults

TINY = PLANS / "tiny_phantom.yaml"
OVERRIDES = ["--set", "batch_size=8", "--set", "attacks.fmn_linf.steps=60"]


def harness(*args: str, cache: Path) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def env(cache: Path) -> dict[str, str]:
    return {**os.environ, "HARNESS_CACHE_DIR": str(cache), "HARNESS_DEID_SALT": "test-salt"}


def run_plan(out: Path, cache: Path) -> Path:
    proc = subprocess.run(harness("run", str(TINY), "--out", str(out), "--no-report", *OVERRIDES, cache=cache),
                          capture_output=True, text=True, env=env(cache), timeout=600)
    assert proc.returncode in (0, 1, 4), proc.stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]  # beside it: history.sqlite
    return run_dir


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, session_cache) -> Path:
    return run_plan(tmp_path_factory.mktemp("reference"), session_cache)


def test_two_runs_with_the_same_seed_are_byte_identical(reference_run, tmp_path, session_cache):
    again = run_plan(tmp_path, session_cache)
    for name in ("results.json", "samples.csv"):
        assert (again / name).read_bytes() == (reference_run / name).read_bytes(), name
    manifest = json.loads((again / "manifest.json").read_text())
    assert manifest["determinism"]["torch_deterministic_algorithms"] in (True, False)


def kill_mid_sweep(plan: Path, out: Path, cache: Path, *overrides: str) -> Path:
    """Start a run, SIGKILL it once PGD has checkpointed a batch (checking it reads running while alive)."""
    process = subprocess.Popen(harness("run", str(plan), "--out", str(out), "--no-report", *overrides, cache=cache),
                               env=env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    checkpoint = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list(out.glob("*/checkpoints/attacks/naive__pgd_linf.npz"))
        if found:
            checkpoint = found[0]
            break
        time.sleep(0.02)
    assert checkpoint is not None and process.poll() is None, "the run ended before it could be interrupted"
    assert RunResults.load(checkpoint.parents[2]).status == "running"  # the live process holds the run's lock
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return checkpoint.parents[2]


def test_kill_9_mid_sweep_then_resume_equals_uninterrupted(reference_run, tmp_path, session_cache):
    run_dir = kill_mid_sweep(TINY, tmp_path / "runs", session_cache, *OVERRIDES)
    interrupted = json.loads((run_dir / "results.json").read_text())
    assert interrupted["status"] == "running" and interrupted["stage"].startswith("naive:attack:")
    assert RunResults.load(run_dir).status == "interrupted"  # nothing holds the run directory any more
    assert "fmn_linf" not in interrupted["models"].get("naive", {}).get("attacks", {})

    resumed = subprocess.run(harness("run", str(TINY), "--resume", str(run_dir), "--no-report", *OVERRIDES,
                                     cache=session_cache), capture_output=True, text=True, env=env(session_cache),
                             timeout=600)
    assert resumed.returncode in (0, 1, 4), resumed.stderr
    for name in ("results.json", "samples.csv"):
        assert (run_dir / name).read_bytes() == (reference_run / name).read_bytes(), name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["resumed_at"]) == 1


def test_resume_refuses_a_run_directory_of_another_plan(reference_run, session_cache):
    proc = subprocess.run(harness("run", str(TINY), "--resume", str(reference_run), "--set", "seed=99",
                                  cache=session_cache), capture_output=True, text=True, env=env(session_cache),
                          timeout=300)
    assert proc.returncode == 2
    assert "cannot resume" in proc.stderr and "another plan" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_with_another_thread_count_is_refused(reference_run, session_cache):
    recorded = json.loads((reference_run / "manifest.json").read_text())["fingerprint"]["parts"]["torch_threads"]
    before = (reference_run / "results.json").read_bytes()
    other = 2 if recorded != 2 else 1
    proc = subprocess.run(harness("run", str(TINY), "--resume", str(reference_run), "--no-report", "--threads",
                                  str(other), *OVERRIDES, cache=session_cache), capture_output=True, text=True,
                          env=env(session_cache), timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"harness: error: cannot resume {reference_run}: torch's CPU thread count (--threads) changed since it was "
        f"started ({recorded} then, {other} now); start a fresh run (the same command without --resume)")
    assert (reference_run / "results.json").read_bytes() == before


SUPPLIED = """harness: 1
name: tiny_supplied
seed: 7
device: cpu
batch_size: 8
dataset: {plugin: phantom_ct, n_patients: 80}
model: {plugin: state_dict, architecture: small_cnn, weights: weights.pt}
epsilons: [0.004, 0.03]
attacks:
  - attack: fgsm
  - attack: pgd_linf
    steps: 5
    rel_stepsize: 0.25
  - attack: fmn_linf
    steps: 60
"""


def test_a_model_swapped_between_kill_and_resume_is_refused(reference_run, tmp_path, session_cache):
    trained = torch.load(reference_run / "model" / "naive.pt", weights_only=True)  # the tiny plan's trained model
    other = {name: t + 0.05 * torch.randn_like(t) if t.is_floating_point() and name.startswith("backbone.") else t
             for name, t in trained.items()}
    (tmp_path / "plan.yaml").write_text(SUPPLIED)
    torch.save(trained, tmp_path / "weights.pt")
    run_dir = kill_mid_sweep(tmp_path / "plan.yaml", tmp_path / "runs", session_cache)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    torch.save(other, tmp_path / "weights.pt")  # the file changes between the kill and the resume
    proc = subprocess.run(harness("run", str(tmp_path / "plan.yaml"), "--resume", str(run_dir), "--no-report",
                                  cache=session_cache), capture_output=True, text=True, env=env(session_cache),
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    shown = run_dir.relative_to(tmp_path).as_posix()  # error lines name paths as the plan's folder sees them
    assert line.startswith(f"harness: error: cannot resume {shown}: the naive model's weights (sha256) changed "
                           "since it was started (") and line.endswith("; start a fresh run (the same command "
                                                                    "without --resume)")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # untouched
    assert RunResults.load(run_dir).status == "interrupted"
