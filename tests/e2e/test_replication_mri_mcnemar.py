"""The study's MRI claim on real data at CI size: adversarial training beats the naive model under PGD at 0.004.

tests/plans/replication_mri_mcnemar.yaml trains specs/real/brain_mri.yaml's naive recipe on brain_mri_4class
(binary: tumour vs no tumour; train 2504, val 538, test 521), hardens it with 1 round of the study's iterative
adversarial training at ε = 0.004 (round chosen on val), and attacks both with the study's PGD at 0.004 only.
Asserted: the hardened model is right under attack on more of the same test images than the naive one, by an
exact McNemar test (harness.stats.paired) at α = 0.05 on samples.csv, agreeing with the run's own paired
comparison; and nothing of the test split (no image, no dup_group) was trained on, nor chosen on.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from support import PLANS

from harness.plan.epsilons import EpsilonGrid
from harness.plan.schema import load_plan
from harness.registry.manager import default_registry
from harness.results.samples import read_samples
from harness.run.runner import RunConfig, Runner
from harness.stats.paired import exact_mcnemar

SUBSET: dict[str, int] = {}  # images kept per split (whole dup_groups); none cut: see the plan's header
ALPHA = 0.05


def subset_folder(source: Path, target: Path, seed: int = 0) -> dict[str, set[str]]:
    """target/brain_mri_4class: the images linked from `source`, labels.csv cut to SUBSET; the dup_groups kept."""
    with open(source / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(seed)
    kept, groups = [], {}
    for split in ("train", "val", "test"):
        in_split = [r for r in rows if r["split"] == split]
        by_group: dict[str, list[dict[str, str]]] = {}
        for row in in_split:
            by_group.setdefault(row["dup_group"], []).append(row)
        order = sorted(by_group)
        if split in SUBSET:
            order = [order[i] for i in rng.permutation(len(order))]
        chosen = []
        for group in order:
            if split in SUBSET and len(chosen) + len(by_group[group]) > SUBSET[split]:
                continue
            chosen.extend(by_group[group])
        kept.extend(chosen)
        groups[split] = {r["dup_group"] for r in chosen}
    folder = target / "brain_mri_4class"
    folder.mkdir(parents=True)
    os.symlink(source / "images", folder / "images")
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return groups


def test_hardened_beats_naive_under_pgd_by_mcnemar(tmp_path, shared_datasets, monkeypatch):
    groups = subset_folder(shared_datasets / "brain_mri_4class", tmp_path / "data")
    assert not (groups["test"] & groups["train"]) and not (groups["test"] & groups["val"])
    monkeypatch.setenv("HARNESS_SHARED_DATASETS", str(tmp_path / "data"))
    registry = default_registry()
    plan = load_plan(PLANS / "replication_mri_mcnemar.yaml", registry=registry)
    config = RunConfig(out_root=tmp_path / "runs", progress=False, report=None, echo=lambda message: None)
    run_dir = Runner(plan, registry, config).run().run_dir
    results = json.loads((run_dir / "results.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())

    # No test image, and no image of a test dup_group, was trained on: the run's own leakage facts say so too.
    dataset = manifest["dataset"]
    assert dataset["provenance"]["counts"]["test"] == {"no": 50, "yes": 471}
    assert sum(dataset["provenance"]["counts"]["train"].values()) == SUBSET.get("train", 2504)
    leakage = dataset["leakage"]
    assert all(v == 0 for v in leakage["exact_duplicates"].values()), leakage
    assert all(v == 0 for v in leakage["near_duplicates"].values()), leakage
    hardened = results["models"]["hardened"]
    selection = results["defence"]["selection"]  # the round is chosen on val images, never on test
    assert selection["split"] == "val" and selection["n_images"] == sum(dataset["provenance"]["counts"]["val"].values())

    # The exact McNemar test on the same 521 test images, naive vs hardened, correct under PGD at 0.004.
    samples = read_samples(run_dir / "samples.csv", EpsilonGrid.of([0.004]))
    pgd = {role: sorted((s for s in samples if s.model == role and s.attack == "pgd_linf"),
                        key=lambda s: s.sample_id) for role in ("naive", "hardened")}
    assert [s.sample_id for s in pgd["naive"]] == [s.sample_id for s in pgd["hardened"]] and len(pgd["naive"]) == 521
    correct = {role: np.array([s.clean_correct and not s.success[0.004] for s in rows]) for role, rows in pgd.items()}
    test = exact_mcnemar(correct["naive"], correct["hardened"])
    summary = {role: round(float(c.mean()), 3) for role, c in correct.items()} | {"p": test.p_value,
                                                                                  "only_naive": test.only_a,
                                                                                  "only_hardened": test.only_b}
    assert test.only_b > test.only_a and test.p_value < ALPHA, summary
    for role in ("naive", "hardened"):
        point = next(p for p in results["models"][role]["attacks"]["pgd_linf"]["points"] if p["epsilon"] == 0.004)
        assert point["robust_accuracy"] == pytest.approx(correct[role].mean()), summary
    # the run's own paired comparison agrees
    paired = [c for c in results.get("comparisons") or [] if c["attack"] == "pgd_linf" and c["epsilon"] == 0.004]
    assert len(paired) == 1 and paired[0]["p_value"] == pytest.approx(test.p_value), (paired, summary)
    assert hardened["clean"]["accuracy"] >= 0.8, summary
