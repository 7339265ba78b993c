"""The `harness` command end to end on a tiny phantom plan, plan errors through the CLI, and `harness plugins`."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import PLANS, REPO

from harness.cli.main import main

TINY = PLANS / "tiny_phantom.yaml"
HARNESS = [sys.executable, "-m", "harness"]


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd or REPO, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, session_cache) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("runs")
    proc = subprocess.run(["sh", "-c", f"umask 022 && exec {' '.join(HARNESS)} run {TINY} --out {out}"],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "HARNESS_CACHE_DIR": str(session_cache), "HARNESS_DEID_SALT": "test-salt"})
    run_dirs = [p for p in out.iterdir() if p.is_dir()]  # beside them: history.sqlite
    assert len(run_dirs) == 1, proc.stderr
    return proc, run_dirs[0]


@pytest.mark.slow
def test_tiny_plan_end_to_end(tiny_run):
    proc, run_dir = tiny_run
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    assert {"manifest.json", "results.json", "samples.csv", "plan.resolved.yaml"} <= {p.name for p in run_dir.iterdir()}
    assert run_dir.name.startswith("tiny_phantom-")
    results = json.loads((run_dir / "results.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert results["status"] in ("passed", "failed")
    assert proc.returncode == (0 if results["verdict"]["passed"] else 1)
    naive = results["models"]["naive"]
    assert set(naive["attacks"]) == {"fgsm", "pgd_linf", "fmn_linf"}
    clean = naive["clean"]
    assert clean["accuracy"] > 0.6 and 0 <= clean["sensitivity"] <= 1 and 0 <= clean["roc_auc"] <= 1
    pgd = {p["epsilon"]: p["robust_accuracy"] for p in naive["attacks"]["pgd_linf"]["points"]}
    assert pgd[0.03] <= pgd[0.004] <= clean["accuracy"]
    assert naive["attacks"]["fmn_linf"]["min_epsilon"]["median"] is not None
    # manifest: everything that decided a number
    assert manifest["plan"]["resolved"]["name"] == "tiny_phantom"
    for library in ("python", "torch", "foolbox", "numpy", "pydicom", "harness"):
        assert manifest["versions"][library], library
    assert manifest["device"]["type"] == "cpu"
    assert len(manifest["models"]["naive"]["weights_sha256"]) == 64
    assert len(manifest["dataset"]["provenance"]["content_sha256"]) == 64
    assert manifest["timings_seconds"]["model"] > 0
    # samples.csv: one row per test image and attack
    rows = list(csv.DictReader((run_dir / "samples.csv").open()))
    assert len(rows) == 3 * results["dataset"]["n_test"]
    fmn_rows = [r for r in rows if r["attack"] == "fmn_linf"]
    assert all(r["min_epsilon"] for r in fmn_rows)
    # the verdict table is printed
    assert "Acceptance criteria" in proc.stdout and "harness: verdict " in proc.stdout
    # attack-failure indicators are computed and shown in the report
    indicators = naive["indicators"]
    assert {c["id"] for c in indicators["checks"]} >= {"unbounded_budget", "gradients", "noise_vs_attack"}
    text = subprocess.run(["pdftotext", str(run_dir / "report.pdf"), "-"], capture_output=True, text=True).stdout
    assert "Attack-failure indicators" in text and "Acceptance criteria" in text
    # the closing lines: verdict, failed criteria, where the evidence is
    lines = proc.stdout.strip().splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("harness: verdict "))
    assert lines[-2:] == [f"harness: report.pdf: {run_dir / 'report.pdf'}",
                          f"harness: results.json: {run_dir / 'results.json'}"]
    failed = [c["id"] for c in results["criteria"] if not c["passed"]]
    assert [line.removeprefix("harness: failed ").rsplit(": ", 1)[0] for line in lines[verdict + 1:-2]] == failed
    # stderr is not a terminal: a line per stage (start and end), no bars
    assert "harness: naive:attack:pgd_linf ..." in proc.stderr
    assert "harness: naive:indicators finished in" in proc.stderr and "harness: report finished in" in proc.stderr
    # hashes a reviewer can verify, and the plan as written
    assert (run_dir / "plan.source.yaml").read_bytes() == TINY.read_bytes()
    plan = manifest["plan"]
    assert plan["file_sha256"] == hashlib.sha256(TINY.read_bytes()).hexdigest()
    assert plan["resolved_yaml_sha256"] == hashlib.sha256((run_dir / "plan.resolved.yaml").read_bytes()).hexdigest()
    assert run_dir.name.endswith(plan["sha256"][:8]) and set(plan["hashes"]) == {"file_sha256", "resolved_yaml_sha256",
                                                                                 "sha256"}
    assert manifest["harness_revision"] is None or len(manifest["harness_revision"].split("-")[0]) == 40
    # outputs are readable by the reviewer's tools: 0666 less the umask, not the 0600 of a temporary file
    for name in ("results.json", "manifest.json", "samples.csv", "report.pdf", "report.html"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o644, name


@pytest.mark.slow
def test_second_run_reuses_cached_weights(tiny_run, tmp_path, session_cache):
    _, first_dir = tiny_run
    proc = run_cli("run", str(TINY), "--out", str(tmp_path), env={"HARNESS_CACHE_DIR": str(session_cache)})
    assert proc.returncode in (0, 1), proc.stderr
    second = json.loads(next(p for p in tmp_path.iterdir() if p.is_dir()).joinpath("manifest.json").read_text())
    first = json.loads(first_dir.joinpath("manifest.json").read_text())
    assert second["models"]["naive"]["cache_hit"] is True
    assert second["models"]["naive"]["weights_sha256"] == first["models"]["naive"]["weights_sha256"]


BAD_PLANS = {
    "unknown top-level key": ("seed: 7", "seed: 7\ncolour: blue", "bad.yaml:5, key 'colour'"),
    "wrong type": ("  n_patients: 80", "  n_patients: eighty", "key 'dataset.n_patients': expected an integer"),
    "unknown dataset plugin": ("  plugin: phantom_ct", "  plugin: mri_magic", "unknown dataset plugin 'mri_magic'"),
    "unknown attack": ("  - attack: fgsm", "  - attack: fgsm_plus", "unknown attack 'fgsm_plus'"),
    "epsilon above 1": ("epsilons: [0.004, 0.03]", "epsilons: [0.004, 3]", "epsilon 3 is outside (0, 1]"),
    "negative epsilon": ("epsilons: [0.004, 0.03]", "epsilons: [-0.004]", "epsilon -0.004 is outside (0, 1]"),
    "unknown attack parameter": ("    steps: 5", "    steps: 5\n    stepz: 3", "key 'attacks.1.stepz': unknown key"),
    "bad architecture": ("  architecture: small_cnn", "  architecture: vgg99", "vgg99"),
    "bad model parameter": ("  epochs: 4", "  epochs: 0", "key 'model.epochs'"),
    "criterion on missing attack": ("    attack: pgd_linf\n    epsilon: 0.03",
                                    "    attack: bim_linf\n    epsilon: 0.03", "key 'acceptance.1.attack'"),
    "not YAML": ("name: tiny_phantom", "name: [tiny", "invalid YAML"),
    "not a plan": ("harness: 1\n", "", "not a harness plan"),
    "unknown model output": ("  epochs: 4", "  epochs: 4\n  output: softmax", "key 'model.output': output must be"),
    "threshold outside (0, 1)": ("  epochs: 4", "  epochs: 4\n  decision: {threshold: 1.5}",
                                 "key 'model.decision.threshold': threshold must be a number strictly between"),
    "sensitivity on test": ("  epochs: 4", "  epochs: 4\n  decision: {sensitivity: 0.9, on: test}",
                            "key 'model.decision.on'"),
}


@pytest.mark.parametrize("case", list(BAD_PLANS), ids=list(BAD_PLANS))
def test_bad_plan_is_one_line_and_exit_2(case, tmp_path, capsys):
    old, new, fragment = BAD_PLANS[case]
    text = TINY.read_text()
    assert old in text
    plan = tmp_path / "bad.yaml"
    plan.write_text(text.replace(old, new, 1))
    code = main(["validate", str(plan)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), err
    assert fragment in lines[0] and "bad.yaml" in lines[0], lines[0]


def test_missing_plan_file_and_bad_override_exit_2(tmp_path):
    proc = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "plan file not found" in proc.stderr
    proc = run_cli("validate", str(TINY), "--set", "dataset.n_patients=-5")
    assert proc.returncode == 2 and "key 'dataset.n_patients'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_threads_option_sets_and_records_the_thread_count(tmp_path, session_cache):
    out = tmp_path / "runs"
    proc = run_cli("run", str(TINY), "--out", str(out), "--threads", "1", "--no-report", "--no-progress",
                   "--set", "model.epochs=1", env={"HARNESS_CACHE_DIR": str(session_cache)})
    assert proc.returncode in (0, 1), proc.stderr
    manifest = json.loads(next(p for p in out.iterdir() if p.is_dir()).joinpath("manifest.json").read_text())
    assert manifest["device"]["torch_threads"] == 1
    proc = run_cli("run", str(TINY), "--out", str(out), "--threads", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "harness: error: --threads must be a positive integer, got 0"


def test_validate_accepts_the_shipped_specs(capsys):
    for spec in sorted((REPO / "specs").glob("*.yaml")):
        assert main(["validate", str(spec)]) == 0, capsys.readouterr().err


def test_plugins_lists_every_builtin_with_provider_and_version():
    proc = run_cli("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = {(e["kind"], e["name"]): e for e in json.loads(proc.stdout)}
    expected = {("dataset", "phantom_ct"), ("dataset", "npz"), ("model", "train"), ("model", "state_dict"),
                ("model", "torchscript"), ("model", "onnx"), ("architecture", "small_cnn"),
                ("architecture", "vgg_style"), ("architecture", "resnet18"), ("architecture", "densenet121"),
                ("attack", "fgsm"),
                ("attack", "pgd_linf"), ("attack", "bim_linf"), ("attack", "pgd_l2"), ("attack", "cw_l2"),
                ("attack", "deepfool_linf"), ("attack", "deepfool_l2"), ("attack", "fmn_linf"), ("attack", "fmn_l2")}
    assert expected <= set(entries)
    assert all(entries[key]["provider"] == "harness" and entries[key]["version"] for key in expected)


def test_harness_validate_blames_the_override(capsys):
    assert main(["validate", str(PLANS / "tiny_phantom.yaml"), "--set", "model.epochs=abc"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("harness: error: --set model.epochs=abc, key 'model.epochs': expected an integer"), error
    assert "tiny_phantom.yaml" not in error
