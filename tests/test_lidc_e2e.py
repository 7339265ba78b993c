"""The whole pipeline on the real LIDC-derived CT nodule set: a naive model learns, and PGD hurts it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.plan import load_plan
from harness.plugin_manager import default_registry
from harness.runner import RunConfig, Runner

PLAN = Path(__file__).resolve().parent / "plans" / "lidc_reduced.yaml"


def test_lidc_naive_model_learns_and_pgd_drops_it(tmp_path, shared_datasets, monkeypatch):
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
    # Measured on this plan (CPU, seed 11): clean 0.744, PGD 0.728 at 0.004 (one grey level of the 8-bit source)
    # and 0.666 at 0.02. A small CNN on 64×64 segmented nodules does not collapse at 0.004 as the study's
    # ImageNet-pretrained VGG16 on 224×224 did (see docs/replication.md); it must still lose accuracy.
    pgd = {p["epsilon"]: p for p in naive["attacks"]["pgd_linf"]["points"]}
    assert pgd[0.004]["attack_success_rate"] > 0
    assert pgd[0.004]["robust_accuracy"] < clean["accuracy"], (pgd, clean)
    assert pgd[0.02]["robust_accuracy"] <= clean["accuracy"] - 0.05, (pgd, clean)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    provenance = manifest["dataset"]["provenance"]
    assert provenance["counts"]["test"] and len(provenance["content_sha256"]) == 64
    assert str(shared_datasets) not in (result.run_dir / "samples.csv").read_text()
