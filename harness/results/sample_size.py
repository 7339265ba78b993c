"""Sample-size honesty: which criteria the test split is too small to decide, and the n each one needs.

For a criterion on a proportion, the best possible outcome (every image counted a success for `min`, none for
`max`) must clear the threshold on its one-sided confidence bound, or no data of that size can support a PASS. The
level is the plan's, unadjusted: the most favourable one Holm's procedure can give a criterion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from harness.formatting import threshold_label
from harness.plan.criteria import WORST, Criterion
from harness.plan.metrics import METRICS, Outcomes
from harness.stats.decidability import can_pass, smallest_decidable_n
from harness.stats.intervals import METHOD_NAMES, two_sided_level

DENOMINATOR = {"clean_sensitivity": "positive test images", "robust_sensitivity": "positive test images",
               "clean_specificity": "negative test images", "robust_specificity": "negative test images",
               "attack_success_rate": "test images classified correctly without attack"}


def side(criterion: Criterion) -> str:
    """The bound that decides the criterion: 'lower' for min, 'upper' for max."""
    return "lower" if criterion.op == ">=" else "upper"


def denominator(criterion: Criterion) -> str:
    """What the criterion's n counts, in words."""
    return DENOMINATOR.get(criterion.metric, "test images")


def counted(n: int, criterion: Criterion) -> str:
    """'1 test image', '16 test images': n with the criterion's denominator, singular for one."""
    words = denominator(criterion)
    return f"{n} {words.replace('images', 'image', 1) if n == 1 else words}"


def members(criterion: Criterion, labels: np.ndarray, positive_class: int) -> int:
    """How many of these images the metric's proportion counts at best (all correct without attack)."""
    everyone = np.ones(len(labels), dtype=bool)
    counts = METRICS[criterion.metric].counts
    if counts is None:  # certification metrics: every (certified) image counts
        return len(labels)
    _, counted = counts(Outcomes(np.asarray(labels), positive_class, everyone, everyone))
    return int(np.count_nonzero(counted))


def groups_of(criterion: Criterion, labels: np.ndarray,
              metadata: Mapping[str, Sequence[str]]) -> list[tuple[str, np.ndarray]]:
    """(label, labels of the images) of the whole split, the named subgroup, or every subgroup."""
    labels = np.asarray(labels)
    if criterion.subgroup is None:
        return [("", labels)]
    chosen = metadata if criterion.subgroup == WORST else {a: metadata.get(a, ()) for a in criterion.subgroup}
    out = []
    for attribute, values in chosen.items():
        values = np.asarray(values)
        wanted = sorted(set(values.tolist())) if criterion.subgroup == WORST else [criterion.subgroup[attribute]]
        out += [(f" in subgroup {attribute}={value}", labels[values == value] if len(values) else labels[:0])
                for value in wanted]
    return out


def undecidable_warnings(criteria: Sequence[Criterion], method: str, confidence: float, labels: np.ndarray,
                         positive_class: int, metadata: Mapping[str, Sequence[str]],
                         class_names: Sequence[str] = ()) -> list[str]:
    """One warning per criterion (and subgroup) whose best possible outcome cannot clear its threshold; a criterion
    naming a class (`class:`) counts that class as the positive one."""
    out = []
    for c in criteria:
        if METRICS[c.metric].counts is None or c.model == "change" or c.threshold is None:  # None: a baseline gate
            continue
        for where, subset in groups_of(c, labels, metadata):
            named = c.class_name is not None and c.class_name in class_names
            n = members(c, subset, list(class_names).index(c.class_name) if named else positive_class)
            if n == 0 and c.subgroup == WORST:
                continue  # a subgroup without members has no value, and `worst` judges only those with one
            if can_pass(n, c.threshold, side(c), method, two_sided_level(confidence)):
                continue
            needed = smallest_decidable_n(c.threshold, side(c), method, two_sided_level(confidence))
            best = "a perfect score" if side(c) == "lower" else "a score of 0"
            need = (f"at least {counted(needed, c)} {'is' if needed == 1 else 'are'} needed" if needed
                    else "no test set size suffices")
            consequence = ("it cannot pass" if c.bound else
                           "a PASS on the point estimate would not be supported at that confidence")
            out.append(f"criterion {c.id}: with {counted(n, c)}{where}, even {best} has a "
                       f"one-sided {confidence:.0%} {METHOD_NAMES[method]} {side(c)} bound on the wrong side of "
                       f"{threshold_label(c.threshold)}, so {consequence}; {need}")
    return out


def decidable_from(criteria: Sequence[Criterion], method: str, confidence: float) -> list[str]:
    """For `harness validate` (no data loaded): the smallest n at which each proportion criterion can be decided."""
    out = []
    for c in criteria:
        if METRICS[c.metric].counts is None or c.model == "change" or c.threshold is None:  # None: a baseline gate
            continue
        needed = smallest_decidable_n(c.threshold, side(c), method, two_sided_level(confidence))
        where = " per subgroup" if c.subgroup == WORST else (" in the subgroup" if c.subgroup else "")
        out.append(f"{c.id}: decidable from {counted(needed, c)}{where}" if needed else
                   f"{c.id}: not decidable at any test set size")
    return out
