"""Per-class results of a multi-class model: each class one-vs-rest on every test image.

A class's results are a ModelResult computed as if that class were the positive one: its sensitivity (recall)
and specificity with their intervals, clean and under every attack, from the same per-sample outcomes as the
whole. Criteria name a class with `class:`; the report's per-class table reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from harness.errors import PlanError
from harness.plan.criteria import Criterion
from harness.registry.units import NativeUnits
from harness.results.model import ModelResult
from harness.results.subgroups import subgroup_model
from harness.results.uncertainty import IntervalSettings

if TYPE_CHECKING:
    from harness.results.attack_outcome import AttackOutcome


def class_results(model: ModelResult, class_names: Sequence[str], labels: np.ndarray, logits: np.ndarray,
                  outcomes: Mapping[str, AttackOutcome], native: NativeUnits | None,
                  intervals: IntervalSettings | None) -> dict[str, ModelResult]:
    """class name → the model's results with that class as the positive one (every test image)."""
    every = np.ones(len(labels), dtype=bool)
    return {name: subgroup_model(model, every, labels, logits, outcomes, k, native, intervals)
            for k, name in enumerate(class_names)}


def needs_classes(class_names: Sequence[str], named: Sequence[str]) -> bool:
    """Whether per-class results are computed: more than two classes, or a criterion names a class."""
    return len(class_names) > 2 or bool(named)


def check_criterion_classes(criteria: Sequence[Criterion], class_names: Sequence[str], source: str) -> None:
    """PlanError (one line, naming the criterion) for a `class:` the data set does not have."""
    for i, criterion in enumerate(criteria):
        if criterion.class_name is not None and criterion.class_name not in class_names:
            raise PlanError(f"class {criterion.class_name!r} is not a class of the data set "
                            f"({', '.join(class_names)})", key=f"acceptance.{i}.class", source=source)
