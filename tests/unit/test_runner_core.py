"""The runner with the built-in plugins removed: only in-test fake plugins, exact expected numbers."""

from __future__ import annotations

import csv
import json

import pytest
from fake_plugins import fake_registry
from test_plan import VALID

from harness.plan.schema import load_plan_text
from harness.run.runner import RunConfig, Runner


def run_toy(tmp_path, overrides=()):
    registry = fake_registry()
    plan = load_plan_text(VALID, list(overrides), registry=registry, base_dir=tmp_path)
    return Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False, echo=lambda m: None)).run()


def test_core_run_writes_complete_run_directory(tmp_path):
    result = run_toy(tmp_path)
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"results.json", "manifest.json", "samples.csv", "plan.resolved.yaml"} <= files
    assert result.run_dir.name.startswith("toy_plan-")
    results = json.loads((result.run_dir / "results.json").read_text())
    assert results["status"] == "passed" and results["schema_version"] == 2 and results["exit_code"] == 0
    naive = results["models"]["naive"]
    assert naive["clean"]["accuracy"] == 1.0 and naive["clean"]["roc_auc"] == 1.0
    shift = naive["attacks"]["shift"]["points"]
    assert [p["epsilon"] for p in shift] == [0.004, 0.01]
    assert shift[0]["epsilon_native"] == "0.4 HU"
    assert all(p["bound_violations"] == 0 for p in shift)
    # the shift attack moves the mean by at most 0.01, far from the threshold: nothing flips
    assert shift[0]["robust_accuracy"] == 1.0
    big = naive["attacks"]["shift_big"]["points"][0]
    assert big["epsilon"] == 0.2 and big["robust_accuracy"] == 0.0 and big["attack_success_rate"] == 1.0
    assert results["verdict"] == {"passed": True, "n_passed": 2, "n_criteria": 2}
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["plan"]["resolved"]["name"] == "toy_plan"
    assert manifest["versions"]["torch"] and manifest["versions"]["foolbox"]
    assert set(manifest["timings_seconds"]) >= {"dataset", "model", "naive:clean", "naive:attack:shift"}
    rows = list(csv.DictReader((result.run_dir / "samples.csv").open()))
    n_test = results["dataset"]["n_test"]
    assert len(rows) == 2 * n_test
    assert {"success@0.004", "success@0.01", "success@0.2", "min_epsilon"} <= set(rows[0])


def test_batch_size_auto_is_resolved_and_recorded(tmp_path):
    fixed = run_toy(tmp_path / "fixed")
    auto = run_toy(tmp_path / "auto", ["batch_size=auto"])
    fixed_record = json.loads((fixed.run_dir / "manifest.json").read_text())["batch_size"]
    assert {k: fixed_record[k] for k in ("requested", "used")} == {"requested": 64, "used": 64}
    assert fixed_record["input_mib_per_batch"] > 0  # the float32 inputs of one batch
    recorded = json.loads((auto.run_dir / "manifest.json").read_text())["batch_size"]
    # on CPU the choice follows the image size, capped at the power of two covering the test set
    n_test = auto.dataset.n_test
    assert recorded["requested"] == "auto" and recorded["used"] == 1 << (n_test - 1).bit_length()
    assert auto.document.models == fixed.document.models


def test_failed_criterion_gives_fail_verdict(tmp_path):
    # a threshold above 1 is refused (issue 25), so the gate moves to the attack that breaks every image
    result = run_toy(tmp_path, ["acceptance.1.attack=shift_big", "acceptance.1.epsilon=0.2"])
    assert not result.passed
    entry = result.criteria[1]
    assert entry.measured == 0.0 and entry.passed is False


def test_nan_or_inf_is_reported_not_averaged():
    import numpy as np
    import torch
    from torch import nn

    from harness.data.batches import predict_logits
    from harness.errors import ModelError
    from harness.registry.contracts import TensorSplit

    class NanModel(nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 2)
            out[0, 0] = float("nan")
            return out

    images = torch.rand(4, 1, 4, 4)
    split = TensorSplit(images, np.zeros(4, dtype=int), list("abcd"), list("abcd"))
    with pytest.raises(ModelError, match="NaN or Inf logits"):
        predict_logits(NanModel(), split, 2, torch.device("cpu"))
    images[2, 0, 1, 1] = float("inf")
    with pytest.raises(ModelError, match="NaN or Inf pixel"):
        predict_logits(nn.Flatten(), TensorSplit(images, np.zeros(4, dtype=int), list("abcd"), list("abcd")), 2,
                       torch.device("cpu"))
