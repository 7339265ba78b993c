"""EpsilonGrid: exact matching, order, closest epsilon, and the samples.csv columns it names."""

from __future__ import annotations

import pytest

from harness.formatting import eps_label, eps_text
from harness.plan.epsilons import EpsilonGrid, success_column


def test_grid_is_sorted_and_distinct():
    grid = EpsilonGrid.of([0.004, 0.001], [0.004, 1e-05])
    assert grid.values == (1e-05, 0.001, 0.004) and len(grid) == 3 and list(grid) == [1e-05, 0.001, 0.004]
    assert grid.text() == "1e-05, 0.001, 0.004"


def test_matching_is_exact():
    grid = EpsilonGrid.of([0.3, 0.004])
    assert 0.004 in grid and 4e-3 in grid and float("0.0040") in grid
    assert 0.1 + 0.2 not in grid  # 0.30000000000000004: no tolerance hides a different epsilon
    assert grid.index(0.3) == 1
    with pytest.raises(KeyError, match=r"epsilon 0.005 is not in the grid \(0.004, 0.3\)"):
        grid.index(0.005)


def test_closest_prefers_the_smaller_on_a_tie():
    grid = EpsilonGrid.of([0.002, 0.006, 0.016])
    assert grid.closest(0.004) == 0.002 and grid.closest(0.005) == 0.006 and grid.closest(1.0) == 0.016
    assert EpsilonGrid.of([]).closest(0.004) is None


def test_columns_name_each_epsilon_once():
    grid = EpsilonGrid.of([0.0001, 0.02])
    assert grid.columns() == ["success@0.0001", "success@0.02"] == [success_column(e) for e in grid]
    assert grid.by_column() == {"success@0.0001": 0.0001, "success@0.02": 0.02}


def test_labels_and_text():
    assert (eps_label(0.004), eps_label(1e-05), eps_label(0.0012345678)) == ("0.004", "1e-05", "0.00123457")
    assert (eps_text(0.0068272054), eps_text(None), eps_text(float("inf"))) == ("0.006827", "n/a", "not found")
