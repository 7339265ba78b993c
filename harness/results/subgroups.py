"""Every metric per subgroup of the test split (plan `subgroups`), from the same per-sample outcomes as the whole.

A subgroup's results are a ModelResult on its test images alone: clean metrics and every attack's points with
their intervals, minimal-epsilon quantiles, and the worst case over attacks (`subgroup_worst_case`). Bound
violations are counted over the whole test split only (None here), and the attack-failure indicators are not
repeated per subgroup (their probes' breaks count in the worst case, on the subgroup's images).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from harness.registry.units import NativeUnits
from harness.results.attack_outcome import AttackOutcome
from harness.results.build import attack_result, clean_metrics
from harness.results.model import ModelResult, WorstCase
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
    return {attribute: {value: subgroup_model(model, mask, labels, logits, outcomes, positive_class, native,
                                              intervals)
                        for value, mask in subgroup_masks(attribute, metadata).items()}
            for attribute in attributes}


def subgroup_masks(attribute: str, metadata: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """value → which test images have it, values in sorted order (as subgroup_results keys them)."""
    values = np.asarray(metadata[attribute])
    return {str(value): values == value for value in sorted(set(values.tolist()))}


def with_subgroup_worst_cases(subgroups: Mapping[str, Mapping[str, ModelResult]],
                              metadata: Mapping[str, Sequence[str]],
                              worst: Callable[[np.ndarray], WorstCase | None]) -> dict[str, dict[str, ModelResult]]:
    """Each subgroup's results with its worst case over attacks, `worst(mask)` computed on its images alone."""
    out: dict[str, dict[str, ModelResult]] = {}
    for attribute, values in subgroups.items():
        masks = subgroup_masks(attribute, metadata)
        out[attribute] = {value: replace(sub, worst_case=worst(masks[value])) if value in masks else sub
                          for value, sub in values.items()}
    return out
