"""Geometry declared (issue 29, item 4): a non-square image is letterboxed by default (never silently stretched),
`dataset.resize: {mode, method}` chooses pad, crop or stretch and bilinear or area, and the manifest and the report
state the source and model sizes and what was done."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli.main import main
from harness.data.loading import load_dataset
from harness.plan.params import build_dataclass
from harness.registry.contracts import DatasetContext
from harness_plugins.datasets.readers.geometry import ResizeParams, resize
from harness_plugins.datasets.readers.image_folder import ImageFolderDataset

WIDE = np.ones((1, 20, 30), dtype=np.float32)  # 3:2, width 30 × height 20


def test_a_3_to_2_image_is_padded_by_default_keeping_its_aspect_ratio():
    out = resize(WIDE, 15)
    assert out.shape == (1, 15, 15)
    rows = out[0].mean(axis=1)
    assert rows[0] == 0 and rows[-1] == 0 and np.allclose(rows[3:12], 1)  # 10 image rows between black bars
    assert np.count_nonzero(rows > 0.5) == 10


def test_nearly_square_images_are_stretched_and_modes_can_be_chosen():
    nearly = np.ones((1, 100, 101), dtype=np.float32)  # aspect within 2 %: stretched (no bars)
    assert resize(nearly, 16).min() == pytest.approx(1.0)
    assert resize(WIDE, 15, ResizeParams(mode="stretch")).min() == pytest.approx(1.0)
    ramp = np.tile(np.linspace(0, 1, 30, dtype=np.float32), (20, 1))[None]
    cropped = resize(ramp, 20, ResizeParams(mode="crop"))
    assert cropped[0, 0, 0] == pytest.approx(ramp[0, 0, 5]) and cropped[0, 0, -1] == pytest.approx(ramp[0, 0, 24])
    area = resize(ramp, 10, ResizeParams(mode="crop", method="area"))
    assert area[0, 0, 0] == pytest.approx(ramp[0, 0, 5:7].mean())


def write_wide_folder(root: Path, n: int = 8) -> None:
    rng = np.random.default_rng(0)
    for label, mean in (("a", 60), ("b", 180)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = np.clip(rng.normal(mean, 20, (20, 30)), 0, 255).astype(np.uint8)  # height 20, width 30
            Image.fromarray(pixels).save(root / label / f"{i}.png")


def test_the_manifest_states_source_and_model_sizes_and_what_was_done(tmp_path):
    write_wide_folder(tmp_path / "wide")
    plugin = ImageFolderDataset()
    params = build_dataclass(plugin.Params, {"path": "wide", "image_size": 16}, "dataset")
    bundle = load_dataset(plugin, params, DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path), "s")
    geometry = bundle.provenance["geometry"]
    assert geometry["model_size"] == [16, 16] and geometry["source_sizes"] == [[20, 30]]
    assert geometry["done"] == {"pad": 16}
    assert "source 30×20 (width×height) → model 16×16: 16 padded" in geometry["summary"]
    image = bundle.splits["test"][0][0].numpy()
    assert image[0, 0].max() == 0 and image[0, -1].max() == 0  # black bars top and bottom
    params = build_dataclass(plugin.Params, {"path": "wide", "image_size": 16, "resize": {"mode": "stretch"}},
                             "dataset")
    bundle = load_dataset(plugin, params, DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path), "s")
    assert bundle.provenance["geometry"]["done"] == {"stretch": 16}
    assert "stretched (aspect ratio changed)" in bundle.provenance["geometry"]["summary"]


PLAN = """\
harness: 1
name: wide
seed: 1
device: cpu
batch_size: 8
dataset: {plugin: image_folder, path: wide, image_size: 16}
model: {plugin: train, architecture: small_cnn, epochs: 1, batch_size: 8, cache: false}
epsilons: [0.004]
attacks:
  - attack: fgsm
indicators: {enabled: false}
acceptance:
  - metric: clean_accuracy
    min: 0.0
"""


def test_a_3_to_2_run_through_a_square_model_is_padded_and_the_report_says_so(tmp_path, capsys):
    write_wide_folder(tmp_path / "wide", n=10)
    (tmp_path / "plan.yaml").write_text(PLAN)
    code = main(["run", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "runs"), "--cache-dir",
                 str(tmp_path / "cache")])
    assert code in (0, 1), capsys.readouterr().err
    (run_dir,) = (tmp_path / "runs").glob("wide*")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["dataset"]["provenance"]["geometry"]["done"] == {"pad": 20}
    html = (run_dir / "report.html").read_text()
    assert "source 30×20 (width×height) → model 16×16: 20 padded (letterboxed with black bars" in html
    pdf = " ".join(subprocess.run(["pdftotext", str(run_dir / "report.pdf"), "-"], capture_output=True, text=True,
                                  check=True).stdout.split())
    assert "image geometry" in pdf and "20 padded (letterboxed with black bars, aspect ratio kept)" in pdf


def test_a_model_input_contract_that_stretches_says_so():
    from harness_plugins.models.model_input import InputParams, describe_input

    stretched = describe_input([1, 20, 30], InputParams(size=[16, 16]))["resize"]
    assert "stretched: the aspect ratio changes from 30×20 to 16×16" in stretched
    assert "stretched" not in describe_input([1, 32, 32], InputParams(size=[16, 16]))["resize"]
