"""Identifier-safe metadata (issue 29, item 1): a subgroup column whose values look like identifiers is refused with
one line naming the column and the fix; `identifier: false` declares a column safe and the report lists it; the
DOE^JANE fixture's name and MRN reach no output (console, results, report, manifest, history, checkpoints)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli.main import main
from harness.data.metadata import identifier_reason, split_metadata
from harness.errors import DataError, PlanError
from harness.plan.schema import load_plan_text
from harness.registry.contracts import TensorSplit

SECRETS = ("DOE^JANE", "DOE", "JANE", "MRN12345", "19750301")

PLAN = """\
harness: 1
name: doe
seed: 1
device: cpu
batch_size: 8
dataset: {{plugin: image_folder, path: images, image_size: 16, metadata_columns: [patient_id, site, visit]}}
model: {{plugin: train, architecture: small_cnn, epochs: 1, batch_size: 8, cache: false}}
epsilons: [0.004]
attacks:
  - attack: fgsm
indicators: {{enabled: false}}
subgroups: {subgroups}
acceptance:
  - metric: clean_accuracy
    min: 0.0
"""


def doe_jane_folder(root: Path) -> None:
    """16 patients, 2 images each; patient 7 is DOE^JANE_MRN12345; a category 'site' and a date 'visit'."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(3)
    rows = []
    for label, mean in (("normal", 60), ("tumour", 170)):
        for p in range(8):
            patient = "DOE^JANE_MRN12345" if (label, p) == ("tumour", 7) else f"{label}{p}"
            for k in range(2):
                rel = f"{label}_{p}_{k}.png"
                Image.fromarray(np.clip(rng.normal(mean, 25, (16, 16)), 0, 255).astype(np.uint8)).save(root / rel)
                rows.append({"path": rel, "label": label, "split": "train" if p < 4 else "val" if p == 4 else "test",
                             "patient_id": patient, "site": "north" if p % 2 else "south",
                             "visit": "19750301" if p == 7 else "2001-02-03"})
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run(tmp_path: Path, subgroups: str, capsys, report: bool = False) -> tuple[int, str]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(subgroups=subgroups))
    code = main(["run", str(plan), "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]
                + ([] if report else ["--no-report"]))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def outputs(tmp_path: Path) -> dict[str, str]:
    """Every file under the output and cache folders (run directories, history.sqlite, checkpoints, weights), and
    the PDF's text."""
    found = {str(p.relative_to(tmp_path)): p.read_bytes().decode("utf-8", errors="replace")
             for folder in ("runs", "cache") for p in (tmp_path / folder).rglob("*") if p.is_file()}
    for pdf in (tmp_path / "runs").rglob("report.pdf"):
        found[f"{pdf} (text)"] = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                                check=True).stdout
    return found


@pytest.mark.parametrize(("attribute", "values", "reason"), [
    ("owner", ["DOE^JANE", "a", "b"], "person-name syntax"),
    ("ref", ["MRN12345", "x", "y"], "record number"),
    ("ref", ["A1234567", "x", "y"], "record number"),
    ("when", ["2001-02-03", "x", "y"], "date"),
    ("when", ["19750301", "x", "y"], "date"),
    ("patient_id", ["a", "b", "c"], "patient identifier column"),
    ("PatientName", ["a", "b", "c"], "patient identifier column"),
])
def test_identifier_like_values_are_named_by_their_reason(attribute, values, reason):
    assert reason in identifier_reason(attribute, values)


@pytest.mark.parametrize("values", [["GE", "Siemens"], ["60-69", "90+"], ["<=1 mm", "1-2.5 mm", "2.5-5 mm"],
                                    ["F", "M", "unknown"], ["1.5T", "3T"]])
def test_categories_are_not_identifiers(values):
    assert identifier_reason("category", values) is None


def test_close_to_one_value_per_patient_is_refused_and_a_declaration_allows_it():
    import torch

    n = 24
    values = [f"v{i // 2}" if i < 22 else "v0" for i in range(n)]  # 11 values for 12 patients
    split = TensorSplit(torch.zeros(n, 1, 4, 4), np.zeros(n, dtype=np.int64), [str(i) for i in range(n)],
                        [f"p{i // 2}" for i in range(n)], {"scanner": values})
    with pytest.raises(DataError) as caught:
        split_metadata(split, ["scanner"], "data set 'x', test split")
    message = str(caught.value)
    assert "metadata 'scanner' looks like an identifier (it has 11 distinct values for 12 patients" in message
    assert "hash it or map it to a category" in message and "identifier: false" in message
    assert "v1" not in message
    assert split_metadata(split, ["scanner"], "x", declared_safe=["scanner"])["scanner"] == values


def test_a_copy_of_the_patient_column_under_another_name_is_refused():
    groups = [f"p{i // 2}" for i in range(12)]
    reason = identifier_reason("subject", [f"S-{g}" for g in groups], groups)
    assert reason == "its values follow the patient grouping one to one (the data set's patient-id column)"
    assert identifier_reason("site", ["a", "b"] * 6, groups) is None


def test_a_declared_subgroup_needs_an_explicit_identifier_false(tmp_path):
    text = PLAN.format(subgroups="[{name: site, identifier: false}, visit]")
    plan = load_plan_text(text, base_dir=tmp_path)
    assert plan.subgroups == ["site", "visit"] and plan.identifier_declarations == ["site"]
    with pytest.raises(PlanError, match="only an explicit 'identifier: false'"):
        load_plan_text(PLAN.format(subgroups="[{name: site, identifier: true}]"), base_dir=tmp_path)


@pytest.mark.parametrize(("subgroups", "column"), [("[patient_id]", "patient_id"), ("[visit]", "visit")])
def test_doe_jane_subgroups_are_refused_naming_the_column(tmp_path, capsys, subgroups, column):
    doe_jane_folder(tmp_path / "images")
    code, console = run(tmp_path, subgroups, capsys)
    assert code == 2
    error = [line for line in console.splitlines() if line.startswith("harness: error:")]
    assert len(error) == 1 and f"metadata '{column}' looks like an identifier" in error[0]
    assert "hash it or map it to a category" in error[0]
    texts = {**outputs(tmp_path), "console": console}
    for name, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} found in {name}"


def test_doe_jane_declared_category_runs_and_nothing_leaks(tmp_path, capsys):
    doe_jane_folder(tmp_path / "images")
    code, console = run(tmp_path, "[{name: site, identifier: false}]", capsys, report=True)
    assert code in (0, 1), console
    texts = {**outputs(tmp_path), "console": console}
    (results,) = [json.loads(t) for n, t in texts.items() if n.endswith("results.json")]
    assert sorted(results["models"]["naive"]["subgroups"]["site"]) == ["north", "south"]
    (manifest,) = [json.loads(t) for n, t in texts.items() if n.endswith("manifest.json")]
    assert manifest["statistics"]["declared_not_identifiers"] == ["site"]
    (pdf,) = [t for n, t in texts.items() if n.endswith("(text)")]
    assert "declared not an identifier" in " ".join(pdf.split())
    assert any(n.endswith("history.sqlite") for n in texts)
    for name, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} found in {name}"
