"""A complete synthetic run directory (no training, no attacks): a test fixture for the report tests and
benchmarks/report_render.py (not part of the product; it lives with the tests).

The per-image outcomes are made up; everything computed from them goes through the runner's own code (the results
model, metric registry, criteria and samples.csv of harness.results), giving results.json, manifest.json,
samples.csv, plan.source.yaml (a plan file with comments), plan.resolved.yaml, confidence intervals, the paired
comparison, attack-failure indicators and examples_<role>.npz for the naive and hardened models, with two
fixed-epsilon attacks and one minimal-perturbation attack: every section but subgroups has something to show.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.plan.criteria import Criterion, criterion_id
from harness.plan.epsilons import EpsilonGrid
from harness.registry.units import NativeUnits
from harness.results.build import attack_result, clean_metrics, worst_case
from harness.results.criteria import evaluate
from harness.results.model import (
    DatasetSummary,
    DefenceResult,
    IndicatorCheck,
    Indicators,
    ModelResult,
    PlanRef,
    ResultsDocument,
    Verdict,
    thaw,
)
from harness.results.paired import compare_roles
from harness.results.samples import sample_outcomes, write_samples
from harness.results.uncertainty import IntervalSettings
from harness.storage.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from harness.storage.checksums import write_sums

CLASS_NAMES = ["benign", "malignant"]
NATIVE = NativeUnits(1500.0, "HU", "lung window W1500 L-600")
ATTACKS = {
    "fgsm": {"attack": "fgsm", "norm": "linf", "kind": "fixed_epsilon", "params": {"random_start": False}},
    "pgd_linf": {"attack": "pgd_linf", "norm": "linf", "kind": "fixed_epsilon",
                 "params": {"steps": 10, "rel_stepsize": 0.25, "abs_stepsize": None, "random_start": True,
                            "restarts": 3}},
    "fmn_linf": {"attack": "fmn_linf", "norm": "linf", "kind": "minimal",
                 "params": {"steps": 50, "max_stepsize": 1.0, "min_stepsize": None, "gamma": 0.05,
                            "binary_search_steps": 10}},
}
STRENGTH = {"fgsm": 0.7, "pgd_linf": 1.0, "fmn_linf": 1.1}  # how fast accuracy falls with epsilon
DEFAULT_GRID = [0.001, 0.002, 0.004, 0.008, 0.016]
REVISION = "0123456789abcdef0123456789abcdef01234567"  # a made-up git revision of the harness


def epsilon_grid(n: int) -> list[float]:
    """`n` log-spaced epsilons between 0.0005 and 0.05, one of which is exactly 0.004."""
    if n <= len(DEFAULT_GRID):
        return sorted(sorted(DEFAULT_GRID, key=lambda e: abs(math.log(e / 0.004)))[:n])
    values = [float(f"{v:.3g}") for v in np.logspace(math.log10(0.0005), math.log10(0.05), n)]
    values[min(range(n), key=lambda i: abs(math.log(values[i] / 0.004)))] = 0.004
    return sorted(set(values))


def _logits(labels: np.ndarray, clean_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two-class logits whose argmax is `clean_pred`, with a made-up confidence."""
    logits = np.zeros((len(labels), 2))
    logits[np.arange(len(labels)), clean_pred] = rng.uniform(0.2, 3.0, len(labels))
    return logits


def write_synthetic_run(run_dir: Path, *, n_test: int = 60, n_eps: int = 5, hardened: bool = True,
                        description: str = "Synthetic robustness study of a lung-nodule classifier.",
                        intended_use: str = "Decision support for characterising pulmonary nodules on CT.",
                        criterion_description: str = "Pre-registered floor for PGD at 0.004 (6 HU).",
                        examples: bool = True, warnings: list[str] | None = None, seed: int = 0,
                        subject: dict[str, Any] | None = None, seal: bool = True, worst: bool = False) -> Path:
    """Write a complete run directory and return it; `subject` is the plan's `subject:` section (none by default),
    `seal` writes SHA256SUMS last, as a run does; `worst` adds each model's worst case over the fixed-ε attacks."""
    from harness.results.attack_outcome import AttackOutcome
    from harness.run.runner import PLAN_HASHES, PLAN_SOURCE_FILE

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    confidence_rng = np.random.default_rng(seed + 1)
    grid = epsilon_grid(n_eps)
    labels = np.arange(n_test) % 2
    sample_ids = [f"s-{i:04d}-{rng.integers(16**6):06x}" for i in range(n_test)]
    roles = ["naive", "hardened"] if hardened else ["naive"]
    intervals = IntervalSettings()  # the plan's default: Wilson 95 %, every image its own patient
    document = ResultsDocument(plan=PlanRef("synthetic_ct", "ab" * 32, subject), warnings=warnings or (),
                               dataset=DatasetSummary("phantom_ct", tuple(CLASS_NAMES), 1, "cd" * 32, n_test, NATIVE),
                               statistics=intervals.summary("holm"))
    samples = []
    for role in roles:
        clean_correct = rng.random(n_test) < (0.85 if role == "naive" else 0.8)
        # robustness margin per image: hardened images need much larger perturbations to flip
        margin = rng.lognormal(math.log(0.003 if role == "naive" else 0.02), 0.9, n_test)
        clean_pred = np.where(clean_correct, labels, 1 - labels)
        model = ModelResult(weights_sha256=("e1" if role == "naive" else "f2") * 32,
                            clean=clean_metrics(labels, _logits(labels, clean_pred, confidence_rng), 1, intervals))
        fixed: dict[str, AttackOutcome] = {}
        for attack_id, spec in ATTACKS.items():
            minimal = spec["kind"] == "minimal"
            threshold = margin / STRENGTH[attack_id]
            min_eps = threshold  # misclassified images have one too: minimal attacks aim at the clean prediction
            if minimal:
                min_eps = np.where(clean_correct & (rng.random(n_test) < 0.05), np.inf, min_eps)
            success = np.stack([~clean_correct | (min_eps <= eps) for eps in grid])
            violations = np.array([int(attack_id == "fgsm" and role == "naive" and k == 0) for k in range(len(grid))])
            outcome = AttackOutcome(grid, success, violations, min_eps if minimal else None)
            result = attack_result(spec["attack"], spec["norm"], spec["kind"], spec["params"], outcome, labels,
                                   clean_correct, 1, NATIVE, intervals)
            model = model.with_attack(attack_id, result)
            samples += sample_outcomes(role, attack_id, outcome, sample_ids, labels, clean_pred)
            if not minimal:
                fixed[attack_id] = outcome
        if worst:
            model = replace(model, worst_case=worst_case(fixed, labels, clean_correct, 1, NATIVE, intervals))
        document = document.with_model(role, replace(model, indicators=_indicators(role)))
    if hardened:
        document = replace(document, comparisons=compare_roles(samples, "naive", "hardened"), defence=DefenceResult(
            plugin="adversarial_training",
            params={"attack": "pgd_linf", "epsilons": [0.002, 0.004], "rounds": 2, "epochs_per_round": 3,
                    "steps": 7, "mix_clean": 0.5},
            selected_round=2, selected_weights_sha256="f2" * 32,
            training_log=[{"round": r, "epsilon": e, "loss": 0.7 - 0.1 * r, "train_accuracy": 0.6 + 0.05 * r,
                           "val_clean_accuracy": 0.78, "val_robust_accuracy": 0.4 + 0.1 * r, "seconds": 12.5}
                          for r, e in ((1, 0.002), (2, 0.004))]))
    criteria_plan = [
        {"id": "clean-floor", "metric": "clean_accuracy", "min": 0.8},
        {"metric": "robust_accuracy", "attack": "pgd_linf", "epsilon": 0.004, "min": 0.6,
         "description": criterion_description},
        {"metric": "median_min_epsilon", "attack": "fmn_linf", "min": 0.001},
    ]
    if hardened:
        criteria_plan.append({"metric": "robust_accuracy", "model": "hardened", "attack": "pgd_linf",
                              "epsilon": 0.004, "min": 0.5})
    criteria = evaluate([_criterion(item) for item in criteria_plan], document)
    document = replace(document, criteria=criteria, verdict=Verdict.of(criteria)).finished()
    resolved = {
        "harness": 1, "name": "synthetic_ct", "description": description, "intended_use": intended_use,
        "seed": 20221, "device": "auto", "batch_size": 128,
        "dataset": {"plugin": "phantom_ct", "n_patients": 400, "window_width": 1500},
        "model": {"plugin": "train", "architecture": "small_cnn", "epochs": 12},
        "epsilons": grid,
        "attacks": [{"attack": a, **{k: v for k, v in ATTACKS[a]["params"].items() if v is not None}}
                    for a in ATTACKS],
        "acceptance": criteria_plan,
        "report": {"susceptibility_cutoff": 0.004, "n_examples": 3},
    }
    if subject:
        resolved["subject"] = subject
    if hardened:
        resolved["defence"] = {"plugin": "adversarial_training", **thaw(document.defence.params)}  # type: ignore[union-attr]
    plan_text = PLAN_HEADER + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True, width=100)
    resolved_yaml = yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)
    manifest = {
        "schema": "harness.manifest", "schema_version": 1, "harness_version": "0.1.0", "harness_revision": REVISION,
        "started_at": "2026-01-15T09:30:00Z",
        "command": ["/opt/venv/bin/harness", "run", "/home/qa/plans/synthetic_ct.yaml", "--out", "/srv/runs"],
        "plan": {"name": "synthetic_ct", "source": "/home/qa/plans/synthetic_ct.yaml", "sha256": "ab" * 32,
                 "resolved": resolved, "overrides": [], "copy": PLAN_SOURCE_FILE,
                 "file_sha256": hashlib.sha256(plan_text.encode("utf-8")).hexdigest(),
                 "resolved_yaml_sha256": hashlib.sha256(resolved_yaml.encode("utf-8")).hexdigest(),
                 "hashes": PLAN_HASHES},
        "seeds": {"plan": 20221, "attack_batches": "sha256(seed:model:attack:batch) per batch"},
        "device": {"type": "cuda", "name": "cuda:0", "gpu_name": "NVIDIA H100 80GB HBM3", "cuda": "12.4",
                   "cudnn": 90100, "cpu": "x86_64", "torch_threads": 16},
        "versions": {"python": "3.11.7", "harness": "0.1.0", "torch": "2.13.0+cu124", "foolbox": "3.3.4",
                     "eagerpy": "0.30.0", "numpy": "2.4.6", "scipy": "1.17.1", "pydicom": "3.0.2",
                     "monai": "1.6.1", "scikit-learn": "1.9.1", "weasyprint": "70.0"},
        "platform": {"system": "Linux", "release": "6.1.0", "machine": "x86_64",
                     "python_implementation": "CPython", "executable": "/opt/venv/bin/python3"},
        "determinism": {"torch_deterministic_algorithms": False, "cudnn_benchmark": False},
        "plugins": [{"kind": "dataset", "name": "phantom_ct", "provider": "harness", "version": "0.1.0"},
                    {"kind": "attack", "name": "pgd_linf", "provider": "harness", "version": "0.1.0"}],
        "timings_seconds": {"dataset": 1.2, "model": 40.5, "naive:clean": 0.3, "naive:attack:pgd_linf": 12.0},
        "dataset": {"plugin": "phantom_ct", "name": "phantom_ct", "identifiers": "synthetic",
                    "class_names": CLASS_NAMES, "positive_class": 1,
                    "image_shape": [1, 32, 32],
                    "native_units": {"per_unit": NATIVE.per_unit, "unit": NATIVE.unit, "note": NATIVE.note},
                    "provenance": {"source": "harness_plugins.datasets.phantoms.ct (generated, no patient data)",
                                   "content_sha256": "cd" * 32,
                                   "counts": {"train": {"benign": 140, "malignant": 140},
                                              "val": {"benign": 30, "malignant": 30},
                                              "test": {"benign": n_test - n_test // 2, "malignant": n_test // 2}},
                                   "patients": {"train": 200, "val": 40, "test": 40},
                                   "split_method": "patient-grouped, label-stratified (seed 0, 0.7/0.15/0.15)",
                                   "n_samples": 340 + n_test, "generator_version": 1,
                                   "skipped": ["case-017.dcm: no pixel data"]}},
        "models": {"naive": {"plugin": "train", "architecture": "small_cnn", "source": "trained",
                             "weights_sha256": "e1" * 32, "cache_hit": True, "n_parameters": 23538,
                             "weights_path": "/home/qa/.cache/harness/models/e1e1.pt",
                             "stored_copy": {"how": "hard link", "path": "model/naive.pt", "sha256": "e1" * 32},
                             "training_log": [{"epoch": e, "loss": 0.7 / e, "val_accuracy": 0.7 + 0.02 * e}
                                              for e in range(1, 4)]}},
    }
    if hardened:
        manifest["models"]["hardened"] = {"plugin": "adversarial_training", "architecture": "small_cnn",
                                          "weights_sha256": "f2" * 32, "cache_hit": False,
                                          "stored_copy": {"how": "copy", "path": "model/hardened.pt",
                                                          "sha256": "f2" * 32}}
    write_json_atomic(run_dir / "results.json", document.to_json())
    write_json_atomic(run_dir / "manifest.json", manifest)
    write_text_atomic(run_dir / PLAN_SOURCE_FILE, plan_text)
    write_text_atomic(run_dir / "plan.resolved.yaml", resolved_yaml)
    write_samples(run_dir / "samples.csv", samples, EpsilonGrid.of(grid))
    if examples:
        for role in roles:
            _write_examples(run_dir, role, sample_ids, labels, rng)
    if seal:
        write_sums(run_dir)
    return run_dir


PLAN_HEADER = """# Synthetic study of a lung-nodule classifier on 64×64 CT patches (ε grid around 0.004 = 6 HU).
# Comments like these are the plan's rationale: the report reproduces this file verbatim.
"""


def _indicators(role: str) -> Indicators:
    """Made-up attack-failure indicators: credible for the naive model, one failed check for the hardened one."""
    checks = (
        IndicatorCheck("monotone", "Robust accuracy never rises with epsilon.", True, 0.0, 0.05,
                       "largest rise 0 in the results", explanation="A rise of more than 0.05 (about two images) "
                       "would mean the attack found fewer adversarials at a larger budget.",
                       quantity="largest rise of robust accuracy with ε (fraction of images)"),
        IndicatorCheck("iterative_vs_single_step", "Iterative attacks are at least as strong as FGSM at each ε "
                       "(tolerance 0.02 plus one image).", True, 0.0, 0.0367, "largest excess +0.000",
                       quantity="largest excess of iterative over FGSM accuracy (fraction of the test set)"),
        IndicatorCheck("more_iterations", "5× the steps and 3 restarts lower PGD accuracy by ≤ 0.05.",
                       role == "naive", 0.0 if role == "naive" else 0.156, 0.05, "pgd_linf at ε=0.016",
                       flipped_by=None if role == "naive" else "more steps: benign 2 of 9, malignant 3 of 7",
                       concerns=(("pgd_linf", 0.016),), quantity="accuracy drop under the stronger attacks",
                       on_subset=True),
    )
    return Indicators(credible=all(c.passed for c in checks), checks=checks,
                      flags=tuple(c.id for c in checks if not c.passed), n_subset=16,
                      subset="≤ 16 clean-correct test images in a seeded order")


def _criterion(item: dict[str, Any]) -> Criterion:
    """A criterion as the plan loader makes it from one `acceptance` entry."""
    model, attack, epsilon = item.get("model", "naive"), item.get("attack"), item.get("epsilon")
    op, threshold = (">=", item["min"]) if "min" in item else ("<=", item["max"])
    return Criterion(id=item.get("id") or criterion_id(item["metric"], op, threshold, model, attack, epsilon),
                     metric=item["metric"], op=op, threshold=threshold, model=model, attack=attack, epsilon=epsilon,
                     description=item.get("description", ""))


def _write_examples(run_dir: Path, role: str, sample_ids: list[str], labels: np.ndarray,
                    rng: np.random.Generator) -> None:
    n, size, eps = 3, 32, 0.004
    yy, xx = np.mgrid[0:size, 0:size]
    clean = np.empty((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        radius = 3 + 3 * labels[i]
        blob = np.exp(-((yy - 16) ** 2 + (xx - 15) ** 2) / (2 * radius**2))
        clean[i, 0] = np.clip(0.25 + 0.6 * blob + rng.normal(0, 0.03, (size, size)), 0, 1)
    adversarial = np.clip(clean + eps * np.sign(rng.normal(size=clean.shape)), 0, 1).astype(np.float32)
    arrays = {
        "clean": clean, "adversarial": adversarial, "labels": labels[:n].astype(np.int64),
        "clean_pred": labels[:n].astype(np.int64), "clean_conf": np.array([0.93, 0.88, 0.97]),
        "adv_pred": (1 - labels[:n]).astype(np.int64) if role == "naive" else labels[:n].astype(np.int64),
        "adv_conf": np.array([0.71, 0.64, 0.55]),
        "perturbation_norm": np.abs(adversarial - clean).reshape(n, -1).max(axis=1).astype(np.float64),
        "within_bound": np.ones(n, dtype=bool),
        "sample_ids": np.asarray(sample_ids[:n], dtype=np.str_), "attack_id": np.asarray("pgd_linf"),
        "attack": np.asarray("pgd_linf"), "norm": np.asarray("linf"), "epsilon": np.asarray(eps),
        "role": np.asarray(role), "seed": np.asarray(0),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(run_dir / f"examples_{role}.npz", buffer.getvalue())
