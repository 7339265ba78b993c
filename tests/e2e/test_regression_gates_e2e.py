"""Acceptance (issue 17, items 5-6): `harness compare` on two runs of the default plan with different seeds; a
regression gate that fails when the approved run's kept model, weights noised, is tested through `state_dict`, and
passes with no drop for the kept model itself; bad baselines end with exit 2 and one line naming them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from support import REPO

from harness.results.history import list_runs
from harness.results.view import RunResults

DEFAULT_PLAN = REPO / "specs" / "ct_nodule.yaml"
# The default plan, made cheaper for a CPU test; every run here (and its baselines) uses the same settings.
SWEEP = ["epsilons=[0.002, 0.004]", "indicators.enabled=false", "attacks.fmn_linf.steps=10",
         "attacks.pgd_linf.steps=5", "attacks.bim_linf.steps=5"]
TRAIN = ["model.epochs=6"]


ENV = {"OMP_NUM_THREADS": "1", "HARNESS_DEID_SALT": "test-salt"}  # + HARNESS_CACHE_DIR: the session's cache


def command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=900,
                          env={**os.environ, **ENV})


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return command("-m", "harness", *args, cwd=cwd)


def run_plan(plan: Path, out: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`harness run` with the sweep's speed settings; the process and its run directory."""
    before = set(out.iterdir()) if out.exists() else set()
    sets = [arg for item in [*SWEEP, *overrides] for arg in ("--set", item)]
    proc = harness("run", str(plan), "--out", str(out), "--threads", "1", "--no-report", "--quiet", *sets,
                   cwd=out.parent)
    (run_dir,) = [p for p in set(out.iterdir()) - before if p.is_dir()]
    return proc, run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, session_cache) -> dict[str, Path]:
    """Two runs of the default plan: seed 20221 (the plan's) and seed 20222."""
    ENV["HARNESS_CACHE_DIR"] = str(session_cache)
    base = tmp_path_factory.mktemp("gates")
    out = base / "runs"
    found = {"base": base, "out": out}
    for name, seed in (("a", "20221"), ("b", "20222")):
        proc, found[name] = run_plan(DEFAULT_PLAN, out, *TRAIN, f"seed={seed}")
        assert proc.returncode in (0, 1, 4) and "Traceback" not in proc.stderr, proc.stderr
    return found


def gate_plan(runs: dict[str, Path], weights: Path, name: str, extra: list[dict] | None = None) -> Path:
    """The default plan testing a supplied state dict, gated against run A (and `extra` criteria)."""
    plan = yaml.safe_load(DEFAULT_PLAN.read_text())
    plan["model"] = {"plugin": "state_dict", "architecture": "small_cnn", "weights": str(weights)}
    plan["acceptance"] = [
        {"metric": "clean_accuracy", "baseline": str(runs["a"]), "max_drop": 0.02},
        {"metric": "robust_accuracy", "attack": "pgd_linf", "epsilon": 0.004, "baseline": str(runs["a"]),
         "max_drop": 0.02}, *(extra or [])]
    path = runs["base"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def kept_model(run_dir: Path) -> Path:
    """The model file run A kept in its model/ folder."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return run_dir / manifest["models"]["naive"]["stored_copy"]["path"]


def test_compare_two_runs_of_the_default_plan_with_different_seeds(runs):
    proc = harness("compare", str(runs["a"]), str(runs["b"]), cwd=runs["base"])
    assert proc.returncode == 0, proc.stderr
    assert "naive model" in proc.stdout and "robust_accuracy" in proc.stdout and proc.stderr == ""
    comparison = json.loads((runs["b"] / "comparisons" / f"{runs['a'].name}.json").read_text())
    a, b = RunResults.load(runs["a"]), RunResults.load(runs["b"])
    assert comparison["n_images"] == a.dataset.n_test == b.dataset.n_test
    assert comparison["a"]["weights_sha256"]["naive"] != comparison["b"]["weights_sha256"]["naive"]
    assert comparison["a"]["data_sha256"] == comparison["b"]["data_sha256"] and comparison["notes"] == []
    rows = {(r["metric"], r["attack"], r["epsilon"]): r for r in comparison["metrics"]}
    pgd = rows[("robust_accuracy", "pgd_linf", 0.004)]
    assert (pgd["a"], pgd["b"]) == (a.robust_accuracy("pgd_linf", 0.004), b.robust_accuracy("pgd_linf", 0.004))
    for row in comparison["metrics"]:
        if row["paired"] and row["metric"].endswith("accuracy"):  # accuracy counts every image
            n = row["paired"]["n_pairs"]
            assert n == comparison["n_images"]
            assert row["difference"] == pytest.approx(row["paired"]["difference"])
    assert rows[("median_min_epsilon", "fmn_linf", None)]["paired"] is None
    assert (runs["b"] / "comparisons" / f"{runs['a'].name}.md").read_text().startswith(f"# {runs['b'].name}")


def test_a_gate_fails_for_the_approved_model_with_noised_weights(runs):
    state = torch.load(kept_model(runs["a"]), weights_only=True)
    generator = torch.Generator().manual_seed(0)
    noised = {key: value + 0.5 * value.std() * torch.randn(value.shape, generator=generator)
              if key.endswith(".weight") and value.ndim >= 2 else value for key, value in state.items()}
    torch.save(noised, runs["base"] / "noised.pt")
    plan = gate_plan(runs, runs["base"] / "noised.pt", "weakened")
    sets = [arg for item in SWEEP for arg in ("--harness-set", item)]
    proc = command("-m", "pytest", str(plan), "-p", "no:cacheprovider", "--harness-out", str(runs["out"]), *sets,
                   cwd=runs["base"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    a = RunResults.load(runs["a"])
    gate = f"clean_accuracy>={runs['a'].name}-0.02"
    line = next(line for line in proc.stdout.splitlines() if line.startswith(f"{gate}: measured "))
    assert f", approved {a.clean_metrics().accuracy:.3f} (runs/{runs['a'].name}), drop " in line
    assert "> 0.020; paired on " in line and "exact McNemar p = " in line
    weakened = list_runs(runs["out"])[0]
    assert not weakened.passed and weakened.model_sha256 != a.document.models["naive"].weights_sha256


def test_the_kept_model_itself_passes_with_no_drop_and_latest_pass_is_the_newest_passing_run(runs):
    newest_pass = next(entry.path for entry in list_runs(runs["out"]) if entry.passed)
    plan = gate_plan(runs, kept_model(runs["a"]), "reproduced",
                     [{"metric": "clean_accuracy", "baseline": "latest-pass", "max_drop": 1.0}])
    proc, run_dir = run_plan(plan, runs["out"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    clean, pgd, latest = RunResults.load(run_dir).criteria
    for gate in (clean, pgd):  # same weights, data, seed and attacks: the approved numbers, image by image
        assert gate.passed and gate.baseline.drop == 0.0
        assert (gate.baseline.paired.only_a, gate.baseline.paired.only_b) == (0, 0)
    # outputs name a run directory under the plan's folder as the plan would write it: relative to that folder
    recorded = newest_pass.resolve().relative_to(plan.parent.resolve()).as_posix()
    assert latest.baseline.run.run_dir == recorded
    manifest = json.loads((run_dir / "manifest.json").read_text())
    approved = runs["a"].resolve().relative_to(plan.parent.resolve()).as_posix()
    assert [b["run"]["run_dir"] for b in manifest["baselines"]] == [approved] * 2 + [recorded]


def test_bad_baselines_end_with_exit_2_and_one_line_naming_them(runs):
    missing = runs["base"] / "no-such-run"
    plan = gate_plan({**runs, "a": missing}, kept_model(runs["a"]), "missing")
    proc = harness("validate", str(plan), cwd=runs["base"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"key 'acceptance.0.baseline': baseline run directory {missing} does not exist" in proc.stderr
    plan = gate_plan(runs, kept_model(runs["a"]), "other_data")
    proc, _ = run_plan(plan, runs["out"], "dataset.n_patients=200")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    written = runs["a"].resolve().relative_to(plan.parent.resolve()).as_posix()  # as the plan's folder sees it
    assert f"baseline {written} was measured on another data set" in proc.stderr
