"""File names that carry patient data never reach any output: every file of the run directory (the PDF's text
included), the console and the error lines; with show_paths: true the folder-relative path is shown."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PATIENTS = ["Smith_Jane_19610412_MRN004417", "Okafor_Emeka_19720930_MRN118203", "Lindqvist_Maja_19880117_MRN220954",
            "Nakamura_Ren_19550603_MRN330781"]
SKIPPED = "Doe_John_19500101_MRN001234"  # unreadable: listed as skipped
SECRETS = ["Smith_Jane", "Okafor", "Lindqvist", "Nakamura", "Doe_John", "MRN", "19610412", "19500101"]
PLAN = """\
harness: 1
name: phi_names
seed: 3
device: cpu
batch_size: 16
{extra}
dataset: {{plugin: image_folder, path: data, image_size: 16, on_error: skip, split_fractions: [0.5, 0.2, 0.3]}}
model: {{plugin: train, architecture: small_cnn, epochs: 1, batch_size: 8, cache: false}}
epsilons: [0.004]
attacks:
  - attack: fgsm
acceptance:
  - metric: clean_accuracy
    min: 0.0
"""


def write_data(root: Path) -> None:
    """Two classes of small PNGs, each named after a (made-up) patient, and one unreadable file."""
    rng = np.random.default_rng(0)
    for label, mean in (("benign", 70), ("malignant", 170)):
        (root / label).mkdir(parents=True)
        for k in range(10):
            pixels = np.clip(rng.normal(mean, 20, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{PATIENTS[k % 4]}_{label}_{k}.png")
    (root / "malignant" / f"{SKIPPED}.png").write_bytes(b"not a png")


def texts(run_dir: Path) -> dict[str, str]:
    """Every file's bytes as text, the arrays inside .npz files, and the PDF's text (pdftotext)."""
    out = {}
    for path in run_dir.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        text = data.decode("utf-8", errors="replace")
        if path.suffix == ".html":  # embedded images: base64 text is random letters ('MRN' can occur by chance)
            text = re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "data:image", text)
        out[str(path)] = text
        if path.suffix == ".npz":
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                out[f"{path}:arrays"] = " ".join(str(arrays[k].tolist()) for k in arrays.files)
            with zipfile.ZipFile(path) as archive:
                out[f"{path}:names"] = " ".join(archive.namelist())
    pdf = subprocess.run(["pdftotext", str(run_dir / "report.pdf"), "-"], capture_output=True, text=True, check=True)
    out["report.pdf (text)"] = pdf.stdout
    return out


def run(tmp_path: Path, cache: Path, extra: str = "") -> tuple[subprocess.CompletedProcess, Path]:
    write_data(tmp_path / "data")
    (tmp_path / "plan.yaml").write_text(PLAN.format(extra=extra))
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "plan.yaml", "--out", "runs"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HARNESS_CACHE_DIR": str(cache), "HARNESS_DEID_SALT": "test-salt"})
    assert proc.returncode in (0, 1, 4), proc.stderr
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]  # beside it: history.sqlite
    return proc, run_dir


def test_no_file_name_reaches_any_output_file_the_pdf_or_the_console(tmp_path, session_cache):
    proc, run_dir = run(tmp_path, session_cache)
    found = texts(run_dir)
    assert "report.pdf (text)" in found and any(name.endswith("manifest.json") for name in found)
    for where, text in {**found, "stdout": proc.stdout, "stderr": proc.stderr}.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} found in {where}"
    # the skipped file is there, named by its keyed hash, in the console, the results and the report
    assert "1 file was skipped as unusable" in proc.stdout
    assert "data: 1 file was skipped" in found[str(run_dir / "results.json")]
    assert "1 file was skipped" in found["report.pdf (text)"].replace("\n", " ")


def test_show_paths_names_files_by_their_folder_relative_path(tmp_path, session_cache):
    proc, run_dir = run(tmp_path, session_cache, extra="show_paths: true")
    assert f"(malignant/{SKIPPED}.png)" in (run_dir / "manifest.json").read_text()
    assert f"malignant/{SKIPPED}.png" in proc.stdout
    assert str(tmp_path) not in (run_dir / "results.json").read_text()  # relative to the data folder only


@pytest.fixture(autouse=True)
def _pdftotext() -> None:
    if subprocess.run(["which", "pdftotext"], capture_output=True).returncode:
        pytest.fail("pdftotext (poppler-utils, installed by install.sh) is needed to read the report's text")
