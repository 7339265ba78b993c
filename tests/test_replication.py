"""CI-sized replication of Joel et al. 2022 on the three real data sets (see docs/replication.md).

Each plan in tests/plans/replication_*.yaml trains a naive small CNN on a real set, hardens it with a few rounds
of the study's iterative adversarial training at ε=0.008, and attacks both with the study's PGD (10 steps of
ε/4, random start) at 0.004 and 0.008. The tests assert the study's pattern where it is reliable at this size:

- the naive model learns (where the set is large enough to say so);
- PGD costs the naive model accuracy;
- the hardened model's PGD accuracy at the training/selection epsilon (0.008) is not below the naive model's.

At CI size (and at 64×64 on the full sets) the naive models do NOT collapse at 0.004 as in the study, so "well
below clean at 0.004" is not asserted; each test's docstring gives the numbers measured and what is asserted.
The mammography set has 18 test images and a naive model at chance (see its docstring).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.plan import load_plan
from harness.plugin_manager import default_registry
from harness.runner import RunConfig, Runner

PLANS = Path(__file__).resolve().parent / "plans"


def _run(name: str, tmp_path: Path, shared_datasets: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("HARNESS_SHARED_DATASETS", str(shared_datasets))
    registry = default_registry()
    plan = load_plan(PLANS / name, registry=registry)
    config = RunConfig(out_root=tmp_path, progress=False, report=False, echo=lambda message: None)
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


def test_ct_replication_attack_hurts_and_hardening_helps(tmp_path, shared_datasets, monkeypatch):
    """LIDC-derived CT nodules, 500 images per split (test n = 500).

    Measured on the 2-core CPU (seed 11): naive clean 0.744, PGD 0.728 @ 0.004 and 0.708 @ 0.008; hardened
    (2 rounds at 0.008) PGD 0.754 @ 0.004 and 0.746 @ 0.008. At this size the naive model does NOT collapse at
    0.004 (1.6 points, 8 of 500 images), so only the direction is asserted there; the drop at 0.008 (3.6 points)
    and the hardening gain at 0.008 (+3.8 points, 19 images) are asserted with about half their size as margin.
    """
    results = _run("replication_ct.yaml", tmp_path, shared_datasets, monkeypatch)
    s = _summary(results)
    naive, hardened = s["naive"], s["hardened"]
    assert naive["clean"] >= 0.65, s
    assert naive["pgd@0.004"] < naive["clean"], s
    assert naive["pgd@0.008"] <= naive["clean"] - 0.015, s
    assert hardened["pgd@0.008"] >= naive["pgd@0.008"] + 0.015, s


def test_mri_replication_attack_hurts_and_hardening_does_not_hurt(tmp_path, shared_datasets, monkeypatch):
    """Brain MRI tumour yes/no at 48×48, 47 test images (one image = 2.1 points).

    The full 64×64 plan (specs/real/brain_mri.yaml) measured: naive clean 0.872, PGD 0.745 @ 0.004 and 0.638
    @ 0.008; hardened (15 rounds at 0.004) PGD 0.723 @ 0.004 and 0.681 @ 0.008. So the naive drop at 0.008 and a
    hardening gain at 0.008 are what this set shows; at 0.004 the hardening effect is within one image. These
    CI thresholds were set from those numbers, before a complete timed CI run of this test (see
    docs/replication.md); they assert direction only.
    """
    results = _run("replication_mri.yaml", tmp_path, shared_datasets, monkeypatch)
    s = _summary(results)
    naive, hardened = s["naive"], s["hardened"]
    assert naive["clean"] >= 0.6, s
    assert naive["pgd@0.008"] < naive["clean"], s
    assert hardened["pgd@0.008"] >= naive["pgd@0.008"], s


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
