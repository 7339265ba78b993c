"""Every metric per subgroup of the test split (plan `subgroups`), from the same per-sample outcomes as the whole.

A subgroup's results are a ModelResult on its test images alone: clean metrics and every attack's points with
their intervals, and minimal-epsilon quantiles. Bound violations are counted over the whole test split only
(None here), and the attack-failure indicators are not repeated per subgroup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from harness.registry.units import NativeUnits
from harness.results.attack_outcome import AttackOutcome
from harness.results.build import attack_result, clean_metrics
from harness.results.model import ModelResult
from harness.results.uncertainty import IntervalSettings


def outcome_subset(outcome: AttackOutcome, mask: np.ndarray) -> AttackOutcome:
    """One attack's per-sample outcome on some of the test images (violations are not per image: zero here)."""
    return AttackOutcome(epsilons=list(outcome.epsilons), success=outcome.success[:, mask],
                         violations=np.zeros(len(outcome.epsilons), dtype=np.int64),
                         min_epsilon=None if outcome.min_epsilon is None else outcome.min_epsilon[mask])


def subgroup_model(model: ModelResult, mask: np.ndarray, labels: np.ndarray, logits: np.ndarray,
                   outcomes: Mapping[str, AttackOutcome], positive_class: int, native: NativeUnits | None,
                   intervals: IntervalSettings | None) -> ModelResult:
    """The model's results on the test images in `mask`."""
    labels = np.asarray(labels)
    settings = intervals.subset(mask) if intervals else None
    clean = clean_metrics(labels[mask], logits[mask], positive_class, settings)
    clean_correct = logits[mask].argmax(axis=1) == labels[mask]
    attacks = {}
    for attack_id, outcome in outcomes.items():
        whole = model.attacks[attack_id]
        result = attack_result(whole.attack, whole.norm, whole.kind, whole.params, outcome_subset(outcome, mask),
                               labels[mask], clean_correct, positive_class, native, settings)
        attacks[attack_id] = replace(result, points=tuple(replace(p, bound_violations=None) for p in result.points))
    return ModelResult(weights_sha256=model.weights_sha256, clean=clean, attacks=attacks)


def subgroup_results(model: ModelResult, attributes: Sequence[str], metadata: Mapping[str, Sequence[str]],
                     labels: np.ndarray, logits: np.ndarray, outcomes: Mapping[str, AttackOutcome],
                     positive_class: int, native: NativeUnits | None,
                     intervals: IntervalSettings | None) -> dict[str, dict[str, ModelResult]]:
    """attribute → value → the model's results on that subgroup, values in sorted order."""
    out: dict[str, dict[str, ModelResult]] = {}
    for attribute in attributes:
        values = np.asarray(metadata[attribute])
        out[attribute] = {str(value): subgroup_model(model, values == value, labels, logits, outcomes,
                                                     positive_class, native, intervals)
                          for value in sorted(set(values.tolist()))}
    return out
