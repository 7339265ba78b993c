"""The statistics module against published values and constructed data (harness.stats)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from harness.stats.auc import delong_auc
from harness.stats.clustered import ClusterBootstrap, adjusted_interval
from harness.stats.decidability import can_pass, smallest_decidable_n
from harness.stats.intervals import binomial_interval
from harness.stats.multiplicity import adjusted_levels
from harness.stats.paired import exact_mcnemar


def rounded(interval, digits: int = 4) -> tuple[float, float]:
    return round(interval.low, digits), round(interval.high, digits)


# Newcombe RG (1998) Two-sided confidence intervals for the single proportion: comparison of seven methods.
# Stat Med 17:857-872, Table II: method 3 (Wilson score) and method 5 (Clopper-Pearson exact).
NEWCOMBE = [((81, 263), (0.2553, 0.3662), (0.2527, 0.3676)),
            ((15, 148), (0.0624, 0.1605), (0.0578, 0.1617)),
            ((0, 20), (0.0, 0.1611), (0.0, 0.1684)),
            ((1, 29), (0.0061, 0.1718), (0.0009, 0.1776))]


@pytest.mark.parametrize(("counts", "wilson", "exact"), NEWCOMBE)
def test_wilson_and_clopper_pearson_match_newcombe_1998(counts, wilson, exact):
    assert rounded(binomial_interval(*counts, "wilson")) == wilson
    assert rounded(binomial_interval(*counts, "clopper_pearson")) == exact


@pytest.mark.parametrize(("k", "n", "expected"), [
    (0, 10, (0.0, 0.2775)),   # Newcombe 1998 Table I and the closed form below
    (10, 10, (0.7225, 1.0)),
    (7, 122, (0.0281, 0.1137)),
])
def test_wilson_is_proper_at_zero_and_n_and_matches_the_closed_form(k, n, expected):
    interval = binomial_interval(k, n)
    assert rounded(interval) == expected
    z = 1.959963984540054  # Wilson (1927): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    p = k / n
    centre, half = (p + z * z / (2 * n)), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert interval.low == pytest.approx(max(0.0, (centre - half) / (1 + z * z / n)), abs=1e-12)
    assert interval.high == pytest.approx(min(1.0, (centre + half) / (1 + z * z / n)), abs=1e-12)
    assert interval.low < interval.high
    assert (k > 0 or interval.low == 0.0) and (k < n or interval.high == 1.0)  # exact, not 0.9999999999999999


def test_jeffreys_is_the_beta_posterior_interval_and_proper_at_the_edges():
    from scipy.stats import beta

    interval = binomial_interval(7, 122, "jeffreys")
    assert interval.low == pytest.approx(beta.ppf(0.025, 7.5, 115.5))
    assert interval.high == pytest.approx(beta.ppf(0.975, 7.5, 115.5))
    assert binomial_interval(0, 10, "jeffreys").low == 0.0 < binomial_interval(0, 10, "jeffreys").high
    assert binomial_interval(10, 10, "jeffreys").high == 1.0 > binomial_interval(10, 10, "jeffreys").low


def test_interval_levels_and_bad_input():
    assert binomial_interval(3, 0) is None
    narrow, wide = binomial_interval(30, 100, confidence=0.9), binomial_interval(30, 100, confidence=0.99)
    assert wide.low < narrow.low < 0.3 < narrow.high < wide.high
    with pytest.raises(ValueError, match="unknown interval method"):
        binomial_interval(1, 2, "wald")


def clustered_outcomes(n_clusters: int = 20, size: int = 10, n_correct: int = 12) -> tuple[np.ndarray, list[str]]:
    """Every image of a patient shares its outcome: the strongest clustering there is."""
    correct = np.repeat(np.arange(n_clusters) < n_correct, size)
    groups = [f"p{i}" for i in range(n_clusters) for _ in range(size)]
    return correct, groups


def test_cluster_bootstrap_widens_the_interval_when_patients_cluster():
    correct, groups = clustered_outcomes()
    everyone = np.ones(len(correct), dtype=bool)
    boot = ClusterBootstrap.draw(groups, n_resamples=2000, seed=3)
    assert (boot.n_groups, boot.n_resamples, boot.clustered) == (20, 2000, True)
    effect = boot.design_effect(correct, everyone)
    assert 7 < effect < 13  # ten identical images per patient: about ten times the binomial variance
    plain = binomial_interval(int(correct.sum()), len(correct))
    adjusted = adjusted_interval(int(correct.sum()), len(correct), effect, "wilson", 0.95).interval
    assert adjusted.high - adjusted.low > 2.5 * (plain.high - plain.low)
    assert adjusted.low < plain.low and adjusted.high > plain.high


def test_cluster_bootstrap_without_clustering_stays_close_to_the_binomial_interval():
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.7
    boot = ClusterBootstrap.draw([f"p{i}" for i in range(400)], n_resamples=2000, seed=1)
    assert not boot.clustered
    effect = boot.design_effect(correct, np.ones(400, dtype=bool))
    assert 1.0 <= effect < 1.2


def test_cluster_bootstrap_is_seeded_and_edges_stay_proper():
    correct, groups = clustered_outcomes()
    everyone = np.ones(len(correct), dtype=bool)
    first = ClusterBootstrap.draw(groups, 500, seed=9).design_effect(correct, everyone)
    assert first == ClusterBootstrap.draw(groups, 500, seed=9).design_effect(correct, everyone)
    assert first != ClusterBootstrap.draw(groups, 500, seed=10).design_effect(correct, everyone)
    perfect = np.ones(len(correct), dtype=bool)
    assert ClusterBootstrap.draw(groups, 500, seed=9).design_effect(perfect, everyone) is None
    edge = adjusted_interval(len(correct), len(correct), None, "wilson", 0.95)
    assert edge.design_effect == 1.0 and edge.interval.low < 1.0 == edge.interval.high


def test_cluster_bootstrap_of_a_subset_uses_only_its_members():
    correct, groups = clustered_outcomes()
    boot = ClusterBootstrap.draw(groups, 500, seed=2)
    half = np.arange(len(correct)) < 100  # the first ten patients
    assert boot.subset(half).codes.shape == (100,)
    assert boot.design_effect(correct, half) is None  # all ten are correct: no variance


# Hanley JA, McNeil BJ (1982) Radiology 143:29-36, Table 1: ratings 1-5 of 58 normal and 51 abnormal CT images;
# the area under the empirical ROC curve is 0.893 with a standard error of 0.032.
HANLEY_NORMAL, HANLEY_ABNORMAL = (33, 6, 6, 11, 2), (3, 2, 2, 11, 33)


def test_delong_auc_on_hanley_mcneil_1982():
    scores = np.concatenate([np.repeat(np.arange(1, 6), HANLEY_NORMAL), np.repeat(np.arange(1, 6), HANLEY_ABNORMAL)])
    positive = np.arange(len(scores)) >= sum(HANLEY_NORMAL)
    result = delong_auc(positive, scores)
    assert round(result.auc, 3) == 0.893
    assert result.auc == pytest.approx(roc_auc_score(positive, scores))
    assert result.se == pytest.approx(0.032, abs=0.002)
    assert result.low == pytest.approx(result.auc - 1.959964 * result.se)
    assert result.high == pytest.approx(result.auc + 1.959964 * result.se)


def test_delong_auc_needs_two_of_each_class_and_clips():
    assert delong_auc(np.array([True, False, False]), np.array([0.9, 0.1, 0.2])) is None
    perfect = delong_auc(np.array([True, True, False, False]), np.array([0.9, 0.8, 0.1, 0.2]))
    assert perfect.auc == 1.0 and perfect.high == 1.0


def test_exact_mcnemar_on_fagerland_2013():
    # Fagerland, Lydersen, Laake (2013) BMC Med Res Methodol 13:91: airway hyper-responsiveness before and after
    # stem cell transplantation, pairs (yes, yes) 1, (yes, no) 1, (no, yes) 7, (no, no) 12; exact p = 0.070.
    a = np.array([1] * 1 + [1] * 1 + [0] * 7 + [0] * 12, dtype=bool)
    b = np.array([1] * 1 + [0] * 1 + [1] * 7 + [0] * 12, dtype=bool)
    result = exact_mcnemar(a, b)
    assert (result.both, result.only_a, result.only_b, result.neither, result.n_pairs) == (1, 1, 7, 12, 21)
    assert round(result.p_value, 3) == 0.070
    assert result.p_value == pytest.approx(18 / 256)  # 2·P(X ≤ 1), X ~ Binomial(8, 1/2)
    assert exact_mcnemar(a, a).p_value == 1.0
    with pytest.raises(ValueError):
        exact_mcnemar(a, b[:-1])


def test_holm_levels_match_holm_on_the_exact_p_values():
    # Clopper-Pearson's lower end at two-sided level 1 − α clears t exactly when the one-sided exact binomial
    # p-value P(X ≥ k | t) is at most α/2: Holm on the levels must decide as Holm on those p-values.
    cases = [(95, 100, 0.85), (90, 100, 0.85), (88, 100, 0.80), (70, 100, 0.60), (62, 100, 0.50), (50, 60, 0.7)]
    checks = [lambda level, k=k, n=n, t=t: binomial_interval(k, n, "clopper_pearson", level).low >= t
              for k, n, t in cases]
    levels = adjusted_levels(checks, 0.95, "holm")
    decided = [check(level) for check, level in zip(checks, levels, strict=True)]
    p_values = [2 * binomtest(k, n, t, alternative="greater").pvalue for k, n, t in cases]
    expected = multipletests(p_values, alpha=0.05, method="holm")[0]
    assert decided == list(expected)
    assert any(decided) and not all(decided)
    assert adjusted_levels(checks, 0.95, "none") == [0.95] * len(cases)
    assert adjusted_levels([lambda level: False] * 4, 0.95) == [pytest.approx(1 - 0.05 / 4)] * 4


def test_decidability_of_a_perfect_score():
    # Wilson's lower end at n/n is n / (n + z²): it reaches 0.70 at n = 9 (9/12.84 = 0.701) and not at 8
    assert not can_pass(8, 0.70, "lower", "wilson", 0.95)
    assert can_pass(9, 0.70, "lower", "wilson", 0.95)
    assert smallest_decidable_n(0.70, "lower", "wilson", 0.95) == 9
    assert smallest_decidable_n(0.95, "lower", "wilson", 0.95) == 73  # 73/76.84 = 0.950, 72/75.84 = 0.949
    assert smallest_decidable_n(0.10, "upper", "clopper_pearson", 0.95) == 36  # 1 − 0.025^(1/n) ≤ 0.10
    assert smallest_decidable_n(1.0, "lower", "wilson", 0.95) is None
