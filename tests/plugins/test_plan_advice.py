"""Newcomer mistakes `harness validate` names (issue 25): ε as percent, thresholds as percent, no rationale, tabs."""

from __future__ import annotations

import pytest

from harness.cli.main import main

PLAN = """harness: 1
name: newcomer
dataset: {plugin: phantom_ct, n_patients: 40, window_width: 1500}
model: {plugin: train, architecture: small_cnn, epochs: 1}
epsilons: EPS
attacks:
  - attack: native_fgsm
acceptance:
  - metric: clean_accuracy
    min: THRESHOLD
DESCRIPTION"""


def write(tmp_path, eps="[0.001, 0.004]", threshold="0.8", description="    description: Fit for purpose."):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.replace("EPS", eps).replace("THRESHOLD", threshold).replace("DESCRIPTION", description))
    return path


def test_a_clean_plan_gets_no_warning(tmp_path, capsys):
    assert main(["validate", str(write(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out and "1 attack, 1 criterion;" in out


def test_an_epsilon_grid_in_percent_is_warned_with_its_native_value(tmp_path, capsys):
    assert main(["validate", str(write(tmp_path, eps="[0.01, 0.05, 0.1, 0.2, 0.4, 0.8]"))]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: attack native_fgsm: ε 0.8 is 80 % of the [0,1] pixel range = 1200 HU with window_width 1500" in out


@pytest.mark.parametrize("threshold", ["10", "-0.1", "1.5"])
def test_a_proportion_threshold_outside_0_1_is_an_error(tmp_path, capsys, threshold):
    assert main(["validate", str(write(tmp_path, threshold=threshold))]) == 2
    err = capsys.readouterr().err
    assert "key 'acceptance.0.min': clean_accuracy is a proportion between 0 and 1" in err


def test_a_criterion_without_rationale_is_warned(tmp_path, capsys):
    assert main(["validate", str(write(tmp_path, description=""))]) == 0
    assert "warning: acceptance criterion clean_accuracy>=0.80 has no rationale" in capsys.readouterr().out


def test_a_tab_names_key_column_and_fix(tmp_path, capsys):
    path = tmp_path / "tab.yaml"
    path.write_text("harness: 1\nname: t\ndataset:\n\tplugin: phantom_ct\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "a tab character at line 4, column 1 (key 'plugin')" in err and "replace the tab with spaces" in err


def test_one_image_is_singular(tmp_path, capsys):
    assert main(["validate", str(write(tmp_path, threshold="0.1"))]) == 0
    assert "decidable from 1 test image (" in capsys.readouterr().out
