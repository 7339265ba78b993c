"""`harness run` on bad data stops with exit 2 and one line naming the file (de-identified) and manifest row, records
the error in the run directory, and leaves nothing in the weight cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_dicom_dataset import make_dicom, make_float_dicom, ramp, write_manifest

from harness.cli.main import main

PLAN = """\
harness: 1
name: bad_data
seed: 1
device: cpu
batch_size: 8
{extra}
dataset: {{plugin: dicom, path: {path}, class_names: [a, b], window: {{center: 0.5, width: 1.0}}}}
model: {{plugin: train, architecture: small_cnn, epochs: 1, batch_size: 4}}
epsilons: [0.004]
attacks:
  - attack: fgsm
"""


def float_files(folder, broken_pixel=None):
    """Four float-pixel DICOMs over two classes and splits; the last test file's pixel [2, 2] set to `broken_pixel`."""
    rows = []
    for i in range(4):
        pixels = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)[::1 if i % 2 else -1].copy()
        if broken_pixel is not None and i == 3:
            pixels[2, 2] = broken_pixel
        make_float_dicom(folder / f"scan{i}.dcm", pixels, f"p{i}")
        rows.append({"path": f"scan{i}.dcm", "label": "ab"[i % 2], "split": ("train", "train", "test", "test")[i]})
    return write_manifest(folder / "manifest.csv", rows)


def run(tmp_path, manifest, extra="", capsys=None):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(path=manifest, extra=extra))
    code = main(["run", str(plan), "--out", str(tmp_path / "runs"), "--no-report", "--cache-dir",
                 str(tmp_path / "cache")])
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    (run_dir,) = (tmp_path / "runs").iterdir()
    return code, error, json.loads((run_dir / "results.json").read_text())


def test_nan_dicom_pixels_stop_the_run_naming_the_file_with_no_cache_entry(tmp_path, capsys):
    code, error, results = run(tmp_path, float_files(tmp_path / "data", np.nan), capsys=capsys)
    assert code == 2
    assert error.startswith("harness: error: dicom: ") and "manifest.csv line 5, file " in error
    assert "the pixel data contain 1 NaN or Inf value" in error and "scan3" not in error
    assert (results["status"], results["stage"], results["exit_code"]) == ("error", "dataset", 2)
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


def test_an_roi_outside_the_image_stops_the_run(tmp_path, capsys):
    folder = tmp_path / "data"
    rows = []
    for i in range(4):
        make_dicom(folder / f"scan{i}.dcm", ramp(), patient_id=f"p{i}", window=(128, 256))
        rows.append({"path": f"scan{i}.dcm", "label": "ab"[i % 2], "split": ("train", "train", "test", "test")[i],
                     "roi_x": 5000 if i == 3 else 8, "roi_y": 8, "roi_size": 8})
    manifest = write_manifest(folder / "manifest.csv", rows, ("path", "label", "split", "roi_x", "roi_y", "roi_size"))
    code, error, _ = run(tmp_path, manifest, capsys=capsys)
    assert code == 2 and "manifest.csv line 5, file " in error
    assert "the ROI centre (roi_x=5000, roi_y=8) lies outside the image" in error


@pytest.mark.parametrize("sandbox", [True, False])
def test_a_symlink_leading_out_of_the_data_folder_stops_a_sandboxed_run(tmp_path, capsys, sandbox):
    folder = float_files(tmp_path / "study" / "data").parent  # the plan's folder is study/: the sandbox
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "scan3.dcm").rename(outside / "scan3.dcm")
    (folder / "scan3.dcm").symlink_to(outside / "scan3.dcm")
    plan = tmp_path / "study" / "plan.yaml"
    plan.write_text(PLAN.format(path="data/manifest.csv", extra=f"sandbox: {str(sandbox).lower()}"))
    code = main(["run", str(plan), "--out", str(tmp_path / "runs"), "--no-report", "--cache-dir",
                 str(tmp_path / "cache")])
    error = capsys.readouterr().err
    if sandbox:
        assert code == 2 and "resolves outside the sandbox" in error and "scan3" not in error
    else:
        assert code in (0, 1), error  # without the sandbox the link is followed
