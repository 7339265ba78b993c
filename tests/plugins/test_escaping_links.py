"""Issue 29, item 5: a data file that is a symlink leading out of the data folder is recorded in the manifest and
warned about even when `sandbox` is off (it is still read); with `sandbox: true` it is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from fake_plugins import Brightness
from model_files import save_torchscript
from PIL import Image

from harness.cli.main import main

PLAN = """\
harness: 1
name: links
seed: 0
device: cpu
batch_size: 8
dataset: {plugin: image_folder, path: data, split: all_test, image_size: 16}
model: {plugin: torchscript, path: model.ts, normalization: none}
epsilons: [0.004]
attacks:
  - attack: fgsm
indicators: {enabled: false}
acceptance:
  - metric: clean_accuracy
    min: 0.0
"""


def test_an_escaping_symlink_is_recorded_and_warned_about_without_the_sandbox(tmp_path: Path, capsys) -> None:
    outside = tmp_path / "elsewhere" / "JANE_DOE_scan.png"  # outside the plan's folder (the sandbox) too
    tmp_path = tmp_path / "study"
    rng = np.random.default_rng(0)
    outside.parent.mkdir()
    for label, mean in (("a", 60), ("b", 190)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.clip(rng.normal(mean, 20, (16, 16)), 0, 255).astype(np.uint8)).save(
                outside if (label, i) == ("b", 3) else tmp_path / "data" / label / f"{i}.png")
    (tmp_path / "data" / "b" / "3.png").symlink_to(outside)
    save_torchscript(Brightness(), torch.rand(2, 1, 16, 16), tmp_path / "model.ts")
    (tmp_path / "plan.yaml").write_text(PLAN)
    code = main(["run", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "runs"), "--no-report",
                 "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    console = captured.out + captured.err
    assert code in (0, 1), console
    (run_dir,) = (tmp_path / "runs").glob("links*")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (link,) = manifest["dataset"]["provenance"]["escaping_links"]
    assert link.startswith("file ") and "JANE" not in link
    (warning,) = [w for w in json.loads((run_dir / "results.json").read_text())["warnings"] if "outside it" in w]
    assert warning.startswith(f"data: 1 file of the data folder leads outside it (a symlink or '..'): {link}")
    assert "sandbox is off" in warning and "outside it" in console and "JANE" not in console
    (tmp_path / "plan.yaml").write_text("sandbox: true\n" + PLAN)
    assert main(["run", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "runs2"), "--no-report",
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "resolves outside the sandbox" in capsys.readouterr().err
