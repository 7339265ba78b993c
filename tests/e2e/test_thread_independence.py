"""The same plan gives the same numbers whatever the runner's core count: the plan's `threads`, not the machine's,
decides how torch splits its sums (training above all), so a process that starts with torch on 1 or 2 threads
trains the same weights and measures the same results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import PLANS

TINY = PLANS / "tiny_phantom.yaml"
pytestmark = pytest.mark.slow


def _run(tmp_path: Path, name: str, machine_threads: int, *extra: str) -> dict:
    """One run in a fresh process whose torch starts with `machine_threads` threads, with its own weight cache (so
    it trains its own model)."""
    out, cache = tmp_path / name, tmp_path / f"cache-{name}"
    env = {**os.environ, "OMP_NUM_THREADS": str(machine_threads), "MKL_NUM_THREADS": str(machine_threads),
           "HARNESS_CACHE_DIR": str(cache), "HARNESS_DEID_SALT": "test-salt"}
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(TINY), "--out", str(out), "--no-report",
                           "--no-progress", "--quiet", *extra], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode in (0, 1, 4), proc.stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["device"]["torch_threads"] == 1  # the plan's default, whatever the process started with
    return json.loads((run_dir / "results.json").read_text())


def test_one_and_two_machine_threads_give_identical_numbers(tmp_path):
    one, two = _run(tmp_path, "one", 1), _run(tmp_path, "two", 2)
    flag = _run(tmp_path, "flag", 2, "--threads", "1")
    for other in (two, flag):
        assert other["models"] == one["models"]  # weights, clean and robust numbers, indicators, worst case
        assert other["criteria"] == one["criteria"] and other["verdict"] == one["verdict"]
    assert one["models"]["naive"]["worst_case"]["points"]
