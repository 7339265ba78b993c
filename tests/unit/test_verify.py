"""SHA256SUMS in every run directory and `harness verify RUN_DIR` (issue 25)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from synthetic_run import write_synthetic_run

from harness.cli.main import main
from harness.run.verify import verify_run
from harness.storage.checksums import SUMS_FILE, check_sums, read_sums, update_sums, write_sums
from harness.storage.hashing import PLAN_ID_COMMAND, canonical_json_sha256


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A sealed synthetic run directory with a consistent plan id and a real model copy."""
    run = write_synthetic_run(tmp_path_factory.mktemp("verify") / "run", seal=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["plan"]["sha256"] = canonical_json_sha256(manifest["plan"]["resolved"])
    (run / "model").mkdir()
    (run / "model" / "naive.pt").write_bytes(b"weights")
    import hashlib
    manifest["models"]["naive"]["stored_copy"]["sha256"] = hashlib.sha256(b"weights").hexdigest()
    manifest["models"]["hardened"]["stored_copy"] = None
    (run / "manifest.json").write_text(json.dumps(manifest))
    results = json.loads((run / "results.json").read_text())
    results["plan"]["sha256"] = manifest["plan"]["sha256"]
    (run / "results.json").write_text(json.dumps(results))
    (run / ".run.lock").write_text("")
    write_sums(run)
    return run


@pytest.fixture
def copy(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / "run")


def test_sums_cover_every_file_but_the_lock_and_check_with_coreutils(run_dir):
    sums = read_sums(run_dir)
    assert {"results.json", "samples.csv", "manifest.json", "model/naive.pt", "plan.source.yaml"} <= set(sums)
    assert ".run.lock" not in sums and SUMS_FILE not in sums
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "--quiet", SUMS_FILE], cwd=run_dir, check=True)


def test_verify_passes_on_an_untouched_run(run_dir, capsys):
    found = verify_run(run_dir, check_data=False)
    assert found.ok, found.mismatches
    assert main(["verify", str(run_dir), "--no-data"]) == 0
    assert "verified" in capsys.readouterr().out


def test_one_changed_byte_of_results_fails_naming_the_file(copy, capsys):
    data = bytearray((copy / "results.json").read_bytes())
    digit = next(i for i, byte in enumerate(data) if chr(byte) in "123456789")
    data[digit] = ord("1" if data[digit] != ord("1") else "2")  # one byte; still valid JSON
    (copy / "results.json").write_bytes(bytes(data))
    assert main(["verify", str(copy), "--no-data"]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("MISMATCH")]
    assert lines == ["MISMATCH results.json: content changed since SHA256SUMS was written (sha256 differs)"]


def test_a_changed_model_copy_fails_twice_over(copy):
    (copy / "model" / "naive.pt").write_bytes(b"other weights")
    mismatches = verify_run(copy, check_data=False).mismatches
    assert any(m.startswith("model/naive.pt: content changed") for m in mismatches)
    assert any(m.startswith("model/naive.pt: sha256 differs from the manifest's naive model copy") for m in mismatches)


def test_an_added_or_removed_file_is_named(copy):
    (copy / "extra.txt").write_text("x")
    (copy / "samples.csv").unlink()
    problems = {(p.path, p.problem) for p in check_sums(copy)}
    assert problems == {("extra.txt", "not listed"), ("samples.csv", "missing")}


def test_a_plan_id_that_does_not_match_the_resolved_plan_is_found(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["plan"]["resolved"]["seed"] = 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    update_sums(copy, ["manifest.json"])  # SHA256SUMS alone would not catch an edit made before sealing
    assert verify_run(copy, check_data=False).mismatches == [
        "manifest.json: the plan id differs from the canonical JSON of plan.resolved"]


def test_the_documented_plan_id_command_reproduces_the_plan_id(run_dir):
    out = subprocess.run(["python3", "-c", PLAN_ID_COMMAND.split(" -c ", 1)[1].strip("'")], cwd=run_dir,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == json.loads((run_dir / "manifest.json").read_text())["plan"]["sha256"]


def test_a_missing_sums_file_fails_and_a_non_run_is_a_one_line_error(copy, tmp_path, capsys):
    (copy / SUMS_FILE).unlink()
    assert verify_run(copy, check_data=False).mismatches[0].startswith("SHA256SUMS: missing")
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_rerendering_the_report_updates_only_its_lines(copy):
    from harness.report import render_report

    before = read_sums(copy)
    render_report(copy)
    after = read_sums(copy)
    assert after["report.pdf"] != before.get("report.pdf")
    assert {k: v for k, v in after.items() if not k.startswith("report.")} == \
        {k: v for k, v in before.items() if not k.startswith("report.")}
    assert verify_run(copy, check_data=False).ok
