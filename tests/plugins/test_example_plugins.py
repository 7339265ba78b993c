"""The example third-party package (examples/harness-example-plugins): an attack, a data set and a corruption,
installed as a distribution and used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import PLANS, REPO

EXAMPLE = REPO / "examples" / "harness-example-plugins"
DIST = "harness_example_plugins-0.1.0.dist-info"


def install_example(root: Path) -> str:
    """Lay out the package as pip would (its source + a dist-info with its entry point); the PYTHONPATH to use."""
    site = root / "site"
    info = site / DIST
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-example-plugins\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[harness]\nexample_plugins = harness_example_plugins\n")
    (info / "RECORD").write_text("")
    return os.pathsep.join([str(site), str(EXAMPLE / "src")])


def write_npy_folder(root: Path, n_patients: int = 30) -> Path:
    """Two images per patient, 16×16: class 1 is brighter; patient ids look like names (they must never leak)."""
    rng = np.random.default_rng(0)
    folder = root / "data"
    folder.mkdir()
    lines = ["file,label,patient_id"]
    for p in range(n_patients):
        label = p % 2
        for k in range(2):
            name = f"Patient_Smith{p:02d}_{k}.npy"
            np.save(folder / name, rng.uniform(0.2, 0.5, (16, 16)) + 0.3 * label)
            lines.append(f"{name},{label},Smith^John{p:02d}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def harness(args: list[str], pythonpath: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath, "HARNESS_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_the_example_package_is_listed_with_its_provider(tmp_path, session_cache):
    listing = harness(["plugins", "--json"], install_example(tmp_path), session_cache)
    assert listing.returncode == 0, listing.stderr
    entries = {(e["kind"], e["name"]): e for e in json.loads(listing.stdout)}
    for key in (("attack", "brightness_shift_linf"), ("dataset", "npy_folder"), ("corruption", "contrast_loss")):
        assert entries[key]["provider"] == "harness-example-plugins" and entries[key]["version"] == "0.1.0"


def test_the_example_corruption_meets_the_contract_and_is_deterministic():
    sys.path.insert(0, str(EXAMPLE / "src"))
    try:
        from harness_example_plugins.contrast import ContrastLoss
    finally:
        sys.path.remove(str(EXAMPLE / "src"))
    import torch

    import harness
    from harness.registry.validation import severity_problems

    plugin = ContrastLoss()
    assert harness.contract_problems(plugin, harness.CorruptionPlugin) == [] and severity_problems(plugin) == []
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    before = images.clone()
    context = harness.CorruptionContext(seed=1)
    slight, severe = (plugin.apply(images, range(4), plugin.params_for(level), context) for level in (1, 5))
    assert torch.equal(images, before) and slight.dtype == torch.float32 and 0 <= severe.min() <= severe.max() <= 1
    assert severe.std() < slight.std() < images.std()  # more severe: less contrast
    assert torch.equal(plugin.apply(images[2:3], [2], plugin.params_for(5), context), severe[2:3])  # batch-free
    with pytest.raises(harness.PlanError, match="severity must be one of"):
        plugin.params_for(6)


@pytest.mark.slow
def test_a_plan_runs_on_the_example_dataset_and_attack_without_leaking_ids(tmp_path, session_cache):
    folder = write_npy_folder(tmp_path)
    plan = (PLANS / "tiny_phantom.yaml").read_text()
    plan = plan.replace("  plugin: phantom_ct\n  n_patients: 80\n", f"  plugin: npy_folder\n  path: {folder}\n")
    plan = plan.replace("  - attack: fgsm\n", "  - attack: brightness_shift_linf\n    directions: both\n")
    corruptions = "corruptions:\n  - corruption: contrast_loss\n    severities: [1, 5]\n"
    plan = plan.replace("acceptance:\n", f"{corruptions}acceptance:\n")
    plan_path = tmp_path / "example.yaml"
    plan_path.write_text(plan)
    proc = harness(["run", str(plan_path), "--out", str(tmp_path / "runs"), "--no-report", "--threads", "1"],
                   install_example(tmp_path), session_cache)
    assert proc.returncode in (0, 1, 4), proc.stderr
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    results = json.loads((run_dir / "results.json").read_text())
    assert "brightness_shift_linf" in results["models"]["naive"]["attacks"]
    assert "contrast_loss" in results["models"]["naive"]["corruptions"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"kind": "dataset", "name": "npy_folder", "provider": "harness-example-plugins", "version": "0.1.0"} \
        in manifest["plugins"]
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".yaml"):
            text = path.read_text(encoding="utf-8")
            assert "Smith" not in text, f"a source id reached {path.name}"


def test_a_bad_attack_parameter_is_a_one_line_plan_error(tmp_path, session_cache):
    plan = (PLANS / "tiny_phantom.yaml").read_text()
    plan = plan.replace("  - attack: fgsm\n", "  - attack: brightness_shift_linf\n    directions: sideways\n")
    plan_path = tmp_path / "bad.yaml"
    plan_path.write_text(plan)
    proc = harness(["validate", str(plan_path)], install_example(tmp_path), session_cache)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "attacks.0.directions" in proc.stderr and "sideways" in proc.stderr
