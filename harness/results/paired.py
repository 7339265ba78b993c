"""Paired comparisons of two models (or two runs) on the same test images: exact McNemar per attack and epsilon.

Works on samples.csv rows (SampleOutcome), so it compares the naive and hardened models of one run as well as two
runs of a plan on the same test images (pair rows by de-identified sample id; `harness compare` can call it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.results.model import PairedComparison
from harness.results.samples import SampleOutcome
from harness.stats.paired import exact_mcnemar


def _by_id(rows: Sequence[SampleOutcome]) -> dict[str, SampleOutcome]:
    return {row.sample_id: row for row in rows}


def _paired(a: Sequence[SampleOutcome], b: Sequence[SampleOutcome], what: str) -> tuple[list[str], dict, dict]:
    """The sample ids both sides hold, in A's order; ValueError when the two sides tested different images."""
    rows_a, rows_b = _by_id(a), _by_id(b)
    if set(rows_a) != set(rows_b):
        only = len(set(rows_a) ^ set(rows_b))
        raise ValueError(f"{what}: the two sides were tested on different images ({only} sample ids are on one "
                         "side only); a paired comparison needs the same test images")
    return list(rows_a), rows_a, rows_b


def compare(a_name: str, b_name: str, attack: str | None, epsilon: float | None, ids: list[str],
            correct_a: dict[str, bool], correct_b: dict[str, bool]) -> PairedComparison:
    """One comparison from each image's correct decision under A and under B."""
    result = exact_mcnemar(np.array([correct_a[i] for i in ids]), np.array([correct_b[i] for i in ids]))
    return PairedComparison(a=a_name, b=b_name, attack=attack, epsilon=epsilon, n_pairs=result.n_pairs,
                            both=result.both, only_a=result.only_a, only_b=result.only_b, neither=result.neither,
                            p_value=result.p_value, test=result.test)


def compare_samples(a: Sequence[SampleOutcome], b: Sequence[SampleOutcome], a_name: str = "naive",
                    b_name: str = "hardened") -> tuple[PairedComparison, ...]:
    """Without attack, then per attack both sides ran and per epsilon of both: the paired table and exact McNemar
    test of correct decisions (correct under attack: correct without attack and not fooled at that epsilon)."""
    attacks = [attack for attack in dict.fromkeys(row.attack for row in a) if any(row.attack == attack for row in b)]
    if not attacks:
        return ()
    first_a = [row for row in a if row.attack == attacks[0]]
    first_b = [row for row in b if row.attack == attacks[0]]
    ids, rows_a, rows_b = _paired(first_a, first_b, "without attack")
    if not ids:
        return ()
    out = [compare(a_name, b_name, None, None, ids, {i: rows_a[i].clean_correct for i in ids},
                   {i: rows_b[i].clean_correct for i in ids})]
    for attack in attacks:
        ids, rows_a, rows_b = _paired([row for row in a if row.attack == attack],
                                      [row for row in b if row.attack == attack], attack)
        if not ids:
            continue
        epsilons = [eps for eps in rows_a[ids[0]].success if eps in rows_b[ids[0]].success]
        for eps in epsilons:
            out.append(compare(a_name, b_name, attack, eps, ids,
                               {i: rows_a[i].clean_correct and not rows_a[i].fooled_at(eps) for i in ids},
                               {i: rows_b[i].clean_correct and not rows_b[i].fooled_at(eps) for i in ids}))
    return tuple(out)


def compare_roles(samples: Sequence[SampleOutcome], a_role: str = "naive",
                  b_role: str = "hardened") -> tuple[PairedComparison, ...]:
    """Two model roles of one run (samples.csv rows of both)."""
    return compare_samples([s for s in samples if s.model == a_role], [s for s in samples if s.model == b_role],
                           a_role, b_role)
