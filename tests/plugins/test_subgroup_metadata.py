"""Subgroup metadata from the readers (DICOM headers bucketed, manifest columns, npz keys) and subgroup runs on a
DICOM folder with two manufacturers and an image folder with a metadata column; no PHI value in any output."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from test_dicom_dataset import PHI, make_dicom

from harness.errors import DataError, PlanError
from harness.plan.params import build_dataclass
from harness.plan.schema import load_plan_text
from harness.registry.contracts import DatasetContext
from harness.registry.manager import default_registry
from harness.report import render_report
from harness.run.runner import RunConfig, Runner
from harness_plugins.datasets.readers.dicom_metadata import age_band, manufacturer, sex, thickness_band
from harness_plugins.datasets.readers.image_folder import ImageFolderDataset
from harness_plugins.datasets.readers.npz import NpzDataset


@pytest.mark.parametrize(("bucket", "raw", "expected"), [
    (manufacturer, "GE MEDICAL SYSTEMS", "GE"), (manufacturer, "SIEMENS", "Siemens"),
    (manufacturer, "Philips Healthcare", "Philips"), (manufacturer, "TOSHIBA", "Canon"),
    (manufacturer, "Acme Imaging", "Acme Imaging"), (manufacturer, None, "unknown"), (manufacturer, "  ", "unknown"),
    (sex, "F", "F"), (sex, "m", "M"), (sex, "", "unknown"), (sex, "X", "unknown"),
    (age_band, "067Y", "60-69"), (age_band, "089Y", "80-89"), (age_band, "093Y", "90+"), (age_band, "006M", "0-9"),
    (age_band, "abc", "unknown"), (age_band, None, "unknown"),
    (thickness_band, "0.625", "<=1 mm"), (thickness_band, 1.25, "1-2.5 mm"), (thickness_band, "5", "2.5-5 mm"),
    (thickness_band, "7.5", ">5 mm"), (thickness_band, "", "unknown"), (thickness_band, "-1", "unknown"),
])
def test_dicom_attributes_are_bucketed(bucket, raw, expected):
    assert bucket(raw) == expected


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def split_of(patient: int) -> str:
    return "train" if patient < 4 else "val" if patient == 4 else "test"


def write_two_vendor_dicoms(root: Path) -> list[str]:
    """8 patients per class, 2 files each, GE and Siemens alternating by patient, with PHI; the secrets."""
    secrets = list(PHI.values()) + ["Zyxwvuts", "Qponmlk", "067Y", "093Y"]
    rng = np.random.default_rng(0)
    rows = []
    for label, mean in (("benign", 60), ("malignant", 160)):
        for p in range(8):
            patient_id = f"MRN-{label[:3].upper()}-77{p:03d}"
            secrets.append(patient_id)
            for k in range(2):
                pixels = np.clip(rng.normal(mean, 20, (16, 16)), 0, 255).astype(np.uint8)
                rel = f"{label}/case{p}_{k}.dcm"
                path = make_dicom(root / rel, pixels, patient_id=patient_id, window=(127.5, 255),
                                  Manufacturer="GE MEDICAL SYSTEMS" if p % 2 else "SIEMENS",
                                  PatientSex="F" if p % 4 < 2 else "M", PatientAge="067Y" if p < 6 else "093Y",
                                  SliceThickness="1.25", **PHI)
                secrets.append(str(pydicom.dcmread(path).SOPInstanceUID))
                rows.append({"path": rel, "label": label, "split": split_of(p), "patient_id": patient_id})
    write_manifest(root / "manifest.csv", rows)
    return secrets


SUBGROUP_PLAN = """
harness: 1
name: {name}
seed: 1
device: cpu
batch_size: 8
dataset: {dataset}
model: {{plugin: train, architecture: small_cnn, epochs: 1, batch_size: 8, cache: false}}
epsilons: [0.004]
attacks:
  - attack: fgsm
indicators: {{enabled: false}}
subgroups: {subgroups}
acceptance:
  - metric: clean_accuracy
    min: 0.0
    subgroup: {named}
  - metric: robust_accuracy
    attack: fgsm
    epsilon: 0.004
    min: 0.0
    bound: lower
    subgroup: worst
"""


def run_plan(tmp_path: Path, report: bool = False, **fields: str):
    plan = load_plan_text(SUBGROUP_PLAN.format(**fields), registry=default_registry(), base_dir=tmp_path)
    return Runner(plan, default_registry(), RunConfig(out_root=tmp_path / "runs", progress=False,
                                                      report=render_report if report else None,
                                                      echo=lambda message: None)).run()


def test_dicom_subgroups_by_manufacturer_and_sex_without_phi(tmp_path):
    root = tmp_path / "data"
    secrets = write_two_vendor_dicoms(root)
    result = run_plan(tmp_path, report=True, name="vendors", subgroups="[manufacturer, sex]",
                      named="{manufacturer: GE}",
                      dataset=f'{{plugin: dicom, path: "{root / "manifest.csv"}", image_size: 16}}')
    naive = result.model("naive")
    assert {a: sorted(v) for a, v in naive.subgroups.items()} == {"manufacturer": ["GE", "Siemens"],
                                                                  "sex": ["F", "M"]}
    assert sum(sub.clean.n for sub in naive.subgroups["manufacturer"].values()) == naive.clean.n == 12
    ge = naive.subgroup("manufacturer", "GE")
    assert ge.clean.n == 8 and ge.clean.intervals["accuracy"].n == 8  # test patients 5 and 7 of each class
    named, worst = result.criteria
    assert named.subgroup == {"manufacturer": "GE"} and named.measured == ge.clean.accuracy
    assert worst.subgroup_rule == "worst" and worst.bound_value is not None and worst.passed
    html = (result.run_dir / "report.html").read_text()
    assert "manufacturer = GE" in html and "How to read the intervals" in html
    pdf_text = subprocess.run(["pdftotext", str(result.run_dir / "report.pdf"), "-"], capture_output=True,
                              text=True, check=True).stdout
    assert "Subgroups" in pdf_text and "manufacturer = Siemens" in pdf_text
    outputs = {path.name: path.read_bytes().decode("utf-8", errors="replace")
               for path in result.run_dir.rglob("*") if path.is_file()}
    outputs["report.pdf (text)"] = pdf_text
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{secret} found in {name}"


def write_image_folder(root: Path, column: str = "site") -> None:
    rng = np.random.default_rng(1)
    rows = []
    for label, mean in (("normal", 60), ("tumour", 170)):
        for p in range(8):
            for k in range(2):
                rel = f"{label}_{p}_{k}.png"
                pixels = np.clip(rng.normal(mean, 25, (16, 16)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / rel)
                rows.append({"path": rel, "label": label, "split": split_of(p), "patient_id": f"{label}{p}",
                             column: "north" if p % 2 else "south"})
    write_manifest(root / "labels.csv", rows)


def test_image_folder_subgroups_from_a_metadata_column(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    write_image_folder(root)
    result = run_plan(tmp_path, name="sites", subgroups="[site]", named="{site: north}",
                      dataset=f'{{plugin: image_folder, path: "{root}", image_size: 16, metadata_columns: [site]}}')
    raw = json.loads((result.run_dir / "results.json").read_text())
    sites = raw["models"]["naive"]["subgroups"]["site"]
    assert sorted(sites) == ["north", "south"] and sites["north"]["clean"]["n"] == 8
    assert "intervals" in sites["north"]["attacks"]["fgsm"]["points"][0]
    assert raw["criteria"][0]["subgroup"] == {"site": "north"}


def load_image_folder(root: Path, **params: object):
    plugin = ImageFolderDataset()
    built = build_dataclass(plugin.Params, {"path": str(root), **params}, "dataset")
    return plugin.load(built, DatasetContext(seed=0, base_dir=root, cache_dir=root))


def test_metadata_columns_must_exist_and_need_a_manifest(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    write_image_folder(root)
    bundle = load_image_folder(root, metadata_columns=["site"])
    assert set(bundle.splits["test"].metadata) == {"site"}
    assert load_image_folder(root).splits["test"].metadata == {}  # only declared columns become metadata
    with pytest.raises(DataError, match="no 'scanner' column for metadata_columns"):
        load_image_folder(root, metadata_columns=["scanner"])
    folders = tmp_path / "folders"
    (folders / "a").mkdir(parents=True)
    (folders / "b").mkdir()
    with pytest.raises(PlanError, match="name columns of a manifest CSV"):
        load_image_folder(folders, metadata_columns=["site"])


def test_npz_meta_keys_become_metadata(tmp_path):
    path = tmp_path / "data.npz"
    n = 30
    np.savez(path, images=np.zeros((n, 8, 8), dtype=np.uint8), labels=np.arange(n) % 2,
             split=np.array(["train", "val", "test"] * 10), meta_site=np.array(["a", "b"] * 15))
    plugin = NpzDataset()
    params = build_dataclass(plugin.Params, {"path": str(path)}, "dataset")
    bundle = plugin.load(params, DatasetContext(seed=0, base_dir=tmp_path, cache_dir=tmp_path))
    assert bundle.splits["test"].metadata == {"site": ["a", "b"] * 5}
