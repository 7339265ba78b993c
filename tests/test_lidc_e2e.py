"""The whole pipeline on the real LIDC-derived CT nodule set: a naive model learns, and PGD at 0.004 hurts it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.plan import load_plan
from harness.plugin_manager import default_registry
from harness.runner import RunConfig, Runner

PLAN = Path(__file__).resolve().parent / "plans" / "lidc_reduced.yaml"


def test_lidc_naive_model_learns_and_pgd_at_0004_drops_it(tmp_path, shared_datasets, monkeypatch):
    monkeypatch.setenv("HARNESS_SHARED_DATASETS", str(shared_datasets))
    registry = default_registry()
    plan = load_plan(PLAN, registry=registry)
    result = Runner(plan, registry, RunConfig(out_root=tmp_path, progress=False, echo=lambda m: None)).run()
    results = json.loads((result.run_dir / "results.json").read_text())
    naive = results["models"]["naive"]
    clean = naive["clean"]
    confusion = np.array(clean["confusion_matrix"])
    majority_rate = confusion.sum(axis=1).max() / confusion.sum()
    # clearly above chance: better than always answering the majority class, with a real ranking ability
    assert clean["accuracy"] >= majority_rate + 0.1, (clean, majority_rate)
    assert clean["roc_auc"] >= 0.7
    pgd = naive["attacks"]["pgd_linf"]["points"][0]
    assert pgd["epsilon"] == 0.004
    assert pgd["robust_accuracy"] <= clean["accuracy"] - 0.1, (pgd, clean)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    provenance = manifest["dataset"]["provenance"]
    assert provenance["counts"]["test"] and len(provenance["content_sha256"]) == 64
    assert str(shared_datasets) not in (result.run_dir / "samples.csv").read_text()
