"""The whole pipeline on the real LIDC-derived CT nodule set: a naive model learns, and PGD hurts it."""

from __future__ import annotations

import json

import numpy as np
from support import PLANS

from harness.plan.schema import load_plan
from harness.registry.manager import default_registry
from harness.run.runner import RunConfig, Runner

PLAN = PLANS / "lidc_reduced.yaml"


def test_lidc_naive_model_learns_and_pgd_drops_it(tmp_path, shared_datasets, monkeypatch):
    monkeypatch.setenv("HARNESS_SHARED_DATASETS", str(shared_datasets))
    registry = default_registry()
    plan = load_plan(PLAN, registry=registry)
    result = Runner(plan, registry, RunConfig(out_root=tmp_path, progress=False, echo=lambda m: None)).run()
    results = json.loads((result.run_dir / "results.json").read_text())
    naive = results["models"]["naive"]
    clean = naive["clean"]
    confusion = np.array(clean["confusion_matrix"])
    balanced = float(np.mean(np.diag(confusion) / confusion.sum(axis=1)))
    # clearly above chance on both classes (the test split is 65 % benign), with a real ranking ability
    assert balanced >= 0.65 and clean["roc_auc"] >= 0.75, clean
    # Measured on this plan (CPU, seed 11, 1 training thread): clean 0.718 (balanced 0.72, AUC 0.80), PGD 0.408
    # at 0.004 (one grey level of the 8-bit source). Trained with 2 threads: clean 0.756, PGD 0.674 at 0.004. The
    # drop at 0.004 varies between training runs (docs/replication.md); at 0.02 the model always collapses.
    pgd = {p["epsilon"]: p for p in naive["attacks"]["pgd_linf"]["points"]}
    assert pgd[0.004]["robust_accuracy"] <= clean["accuracy"] - 0.05, (pgd, clean)
    assert pgd[0.02]["robust_accuracy"] <= clean["accuracy"] - 0.3, (pgd, clean)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    provenance = manifest["dataset"]["provenance"]
    assert provenance["counts"]["test"] and len(provenance["content_sha256"]) == 64
    assert str(shared_datasets) not in (result.run_dir / "samples.csv").read_text()
