"""An interrupted run (kill -9 mid-sweep) resumes to the same results as an uninterrupted one; runs are repeatable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import PLANS

TINY = PLANS / "tiny_phantom.yaml"
OVERRIDES = ["--set", "batch_size=8", "--set", "attacks.fmn_linf.steps=60"]


def harness(*args: str, cache: Path) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def env(cache: Path) -> dict[str, str]:
    return {**os.environ, "HARNESS_CACHE_DIR": str(cache), "HARNESS_DEID_SALT": "test-salt"}


def run_plan(out: Path, cache: Path) -> Path:
    proc = subprocess.run(harness("run", str(TINY), "--out", str(out), "--no-report", *OVERRIDES, cache=cache),
                          capture_output=True, text=True, env=env(cache), timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
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


def test_kill_9_mid_sweep_then_resume_equals_uninterrupted(reference_run, tmp_path, session_cache):
    out = tmp_path / "runs"
    process = subprocess.Popen(harness("run", str(TINY), "--out", str(out), "--no-report", *OVERRIDES,
                                       cache=session_cache), env=env(session_cache),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    checkpoint = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list(out.glob("*/checkpoints/attacks/naive__pgd_linf.npz"))
        if found:
            checkpoint = found[0]
            break
        time.sleep(0.02)
    assert checkpoint is not None and process.poll() is None, "the run ended before it could be interrupted"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    run_dir = checkpoint.parents[2]
    interrupted = json.loads((run_dir / "results.json").read_text())
    assert interrupted["status"] == "running"
    assert "fmn_linf" not in interrupted["models"].get("naive", {}).get("attacks", {})

    resumed = subprocess.run(harness("run", str(TINY), "--resume", str(run_dir), "--no-report", *OVERRIDES,
                                     cache=session_cache), capture_output=True, text=True, env=env(session_cache),
                             timeout=600)
    assert resumed.returncode in (0, 1), resumed.stderr
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
