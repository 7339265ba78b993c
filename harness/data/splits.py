"""Patient-grouped, label-stratified split generation and the check that no patient crosses splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from harness.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def grouped_stratified_split(labels: Sequence[int], groups: Sequence[str], seed: int,
                             fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> np.ndarray:
    """Assign each sample a split name so whole groups (patients) move together, balanced by label.

    Groups are stratified by their majority label, shuffled with `seed`, and dealt to splits in proportion.
    """
    labels = np.asarray(labels)
    groups = np.asarray([str(g) for g in groups])
    if len(labels) != len(groups):
        raise DataError("labels and patient ids differ in length")
    names = list(fractions)
    weights = np.array([fractions[n] for n in names], dtype=float)
    weights = weights / weights.sum()
    rng = np.random.default_rng(seed)
    unique_groups = sorted(set(groups.tolist()))
    majority = {}
    for g in unique_groups:
        values, counts = np.unique(labels[groups == g], return_counts=True)
        majority[g] = int(values[np.argmax(counts)])
    assignment: dict[str, str] = {}
    for label in sorted(set(majority.values())):
        members = [g for g in unique_groups if majority[g] == label]
        rng.shuffle(members)
        bounds = np.round(np.cumsum(weights) * len(members)).astype(int)
        start = 0
        for name, stop in zip(names, bounds, strict=True):
            for g in members[start:stop]:
                assignment[g] = name
            start = stop
    return np.array([assignment[g] for g in groups.tolist()])


def check_no_group_crosses(split_groups: Mapping[str, Sequence[str]]) -> None:
    """Raise DataError naming a (de-identified) patient id found in more than one split."""
    owner: dict[str, str] = {}
    for split, groups in split_groups.items():
        for g in set(groups):
            if g in owner and owner[g] != split:
                raise DataError(f"patient {g} appears in both the {owner[g]} and {split} splits; "
                                "a patient must stay within one split")
            owner[g] = split
