"""CI-sized replication of Joel et al. 2022 on the three real data sets (see docs/replication.md).

Each plan in tests/plans/replication_*.yaml trains a naive small CNN on a real set, hardens it with a few rounds
of the study's iterative adversarial training at ε=0.008, and attacks both with the study's PGD (10 steps of
ε/4, random start) at 0.004 and 0.008. The tests assert the study's pattern where it is reliable at this size:

- the naive model learns (where the set is large enough to say so);
- PGD costs the naive model accuracy;
- the hardened model's PGD accuracy at the training/selection epsilon (0.008) is not below the naive model's.

CT shows the study's pattern at CI size and is asserted with margins (naive PGD at 0.004 well below clean;
hardened well above naive). The MRI set (47 test images) shows a smaller drop, and the mammography set has 18
test images and a naive model at chance; each test's docstring gives the numbers measured and what is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import PLANS

from harness.plan.schema import load_plan
from harness.registry.manager import default_registry
from harness.run.runner import RunConfig, Runner


def _run(name: str, tmp_path: Path, shared_datasets: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("HARNESS_SHARED_DATASETS", str(shared_datasets))
    registry = default_registry()
    plan = load_plan(PLANS / name, registry=registry)
    config = RunConfig(out_root=tmp_path, progress=False, report=None, echo=lambda message: None)
    result = Runner(plan, registry, config).run()
    return json.loads((result.run_dir / "results.json").read_text())


def _pgd(model: dict, epsilon: float) -> float:
    for point in model["attacks"]["pgd_linf"]["points"]:
        if abs(point["epsilon"] - epsilon) < 1e-12:
            return point["robust_accuracy"]
    raise AssertionError(f"no PGD point at {epsilon}")


def _summary(results: dict) -> dict:
    out = {}
    for role in ("naive", "hardened"):
        model = results["models"][role]
        out[role] = {"clean": model["clean"]["accuracy"], "pgd@0.004": _pgd(model, 0.004),
                     "pgd@0.008": _pgd(model, 0.008)}
    return out


def test_ct_replication_naive_collapses_and_hardening_restores(tmp_path, shared_datasets, monkeypatch):
    """LIDC-derived CT nodules: 1200 training slices (whole exams), full val (802) and test (774) splits.

    Measured on the 2-core CPU (seed 11, naive training pinned to 1 thread): naive clean 0.718 (AUC 0.80), PGD
    0.408 @ 0.004 and 0.252 @ 0.008; after 2 rounds of the study's iterative adversarial training at 0.004
    (selected on val): clean 0.747, PGD 0.714 @ 0.004 and 0.640 @ 0.008 (study, CT: 26.9 % naive vs 67.7 %
    hardened at 0.004). The same recipe trained with 2 threads gave a less fragile naive model (clean 0.756, PGD
    0.674 @ 0.004, 0.465 @ 0.008; hardened 0.696 and 0.645), so the thresholds hold for both: the drop at 0.004
    varies between training runs, the drop at 0.008 and the hardening gain there do not.
    """
    results = _run("replication_ct.yaml", tmp_path, shared_datasets, monkeypatch)
    s = _summary(results)
    naive, hardened = s["naive"], s["hardened"]
    assert naive["clean"] >= 0.65, s
    assert naive["pgd@0.004"] <= naive["clean"] - 0.05, s
    assert naive["pgd@0.008"] <= naive["clean"] - 0.20, s
    assert hardened["pgd@0.004"] >= naive["pgd@0.004"], s
    assert hardened["pgd@0.008"] >= naive["pgd@0.008"] + 0.10, s
    assert hardened["clean"] >= naive["clean"] - 0.05, s


def test_mri_replication_naive_drops_and_hardening_helps(tmp_path, shared_datasets, monkeypatch):
    """Brain MRI tumour yes/no at 48×48, 47 test images (one image = 2.1 points).

    Measured on the 2-core CPU (seed 11): naive clean 0.851, PGD 0.638 @ 0.004 and 0.447 @ 0.008; after 10
    rounds at 0.008 (round 8 selected on val): clean 0.787, PGD 0.702 @ 0.004 and 0.660 @ 0.008. Asserted: the
    naive drop at 0.004 (21 points) at about half its size, the hardening gain at 0.008 (21 points) at half its
    size, and no loss from hardening at 0.004 (+6 points measured).
    """
    results = _run("replication_mri.yaml", tmp_path, shared_datasets, monkeypatch)
    s = _summary(results)
    naive, hardened = s["naive"], s["hardened"]
    assert naive["clean"] >= 0.7, s
    assert naive["pgd@0.004"] <= naive["clean"] - 0.10, s
    assert hardened["pgd@0.008"] >= naive["pgd@0.008"] + 0.10, s
    assert hardened["pgd@0.004"] >= naive["pgd@0.004"], s


def test_mammogram_replication_runs_and_hardening_does_not_hurt(tmp_path, shared_datasets, monkeypatch):
    """mini-MIAS ROI crops, 84 training and 18 test images.

    A small CNN trained from scratch on 84 crops does not learn benign vs malignant (test accuracy and AUC at
    chance, on this CPU with small_cnn and resnet18 alike; see docs/replication.md), so "the naive model
    collapses" cannot be asserted: a model at chance has little to lose. What is asserted: the whole pipeline
    runs on the real set, attacks never raise accuracy above clean, and hardening at 0.008 does not lower PGD
    robust accuracy at 0.008.
    """
    results = _run("replication_mammogram.yaml", tmp_path, shared_datasets, monkeypatch)
    s = _summary(results)
    for role in ("naive", "hardened"):
        assert s[role]["pgd@0.008"] <= s[role]["pgd@0.004"] + 1e-9 <= s[role]["clean"] + 2e-9, s
    assert s["hardened"]["pgd@0.008"] >= s["naive"]["pgd@0.008"], s
