"""`harness validate PLAN [PLAN ...]`: missing data folders, manifests and model files are found without a run."""

from __future__ import annotations

import numpy as np
import pytest
from support import PLANS

from harness.cli.main import main

PLAN = """\
harness: 1
name: supplied
dataset:
  plugin: image_folder
  path: {data}
model:
  plugin: state_dict
  architecture: small_cnn
  weights: {weights}
  normalization: none
attacks:
  - attack: fgsm
"""


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "weights.pt").write_bytes(b"not loaded by validate")
    return tmp_path


def write(folder, name, data="data", weights="weights.pt"):
    path = folder / name
    path.write_text(PLAN.format(data=data, weights=weights))
    return path


def test_a_plan_whose_files_are_there_is_valid(folder, capsys):
    assert main(["validate", str(write(folder, "ok.yaml"))]) == 0
    assert "valid plan 'supplied'" in capsys.readouterr().out


def test_a_missing_weights_file_fails_with_file_line_and_key(folder, capsys):
    plan = write(folder, "plan.yaml", weights="gone/resnet.pt")
    assert main(["validate", str(plan)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"harness: error: {plan}:9, key 'model.weights': not found: gone/resnet.pt (relative to the "
                     f"plan's folder {plan.parent.resolve()})")


def test_a_missing_data_folder_or_manifest_fails_naming_its_key(folder, capsys):
    assert main(["validate", str(write(folder, "plan.yaml", data="nowhere"))]) == 2
    assert "plan.yaml:5, key 'dataset.path': not found: nowhere" in capsys.readouterr().err
    assert main(["validate", str(write(folder, "plan.yaml", data="data/labels.csv"))]) == 2
    assert "key 'dataset.path': not found: data/labels.csv" in capsys.readouterr().err


def test_several_plans_each_get_a_line_and_the_worst_exit_code(folder, capsys):
    good, bad = write(folder, "good.yaml"), write(folder, "bad.yaml", weights="missing.pt")
    assert main(["validate", str(good), str(bad), str(PLANS / "tiny_phantom.yaml")]) == 2
    captured = capsys.readouterr()
    assert captured.out.count("valid plan") == 2 and "good.yaml" in captured.out
    assert captured.err.count("harness: error:") == 1 and "bad.yaml:9, key 'model.weights'" in captured.err


def test_a_missing_file_set_on_the_command_line_blames_the_override(folder, capsys):
    plan = write(folder, "plan.yaml")
    assert main(["validate", str(plan), "--set", "model.weights=other.pt"]) == 2
    error = capsys.readouterr().err
    assert "--set model.weights=other.pt, key 'model.weights': not found: other.pt" in error


def test_reference_files_of_a_supplied_model_are_checked(folder, capsys):
    np.save(folder / "inputs.npy", np.zeros((1, 1, 4, 4), dtype=np.float32))
    text = PLAN.format(data="data", weights="weights.pt").replace(
        "  normalization: none\n", "  normalization: none\n  reference: {inputs: inputs.npy, logits: logits.npy}\n")
    (folder / "ref.yaml").write_text(text)
    assert main(["validate", str(folder / "ref.yaml")]) == 2
    assert "ref.yaml:11, key 'model.reference.logits': not found: logits.npy" in capsys.readouterr().err


def test_validate_prints_the_smallest_decidable_test_split(capsys):
    from support import REPO

    from harness.cli.main import main

    assert main(["validate", str(REPO / "specs" / "ct_nodule.yaml")]) == 0
    out = capsys.readouterr().out
    assert "sample size: clean_accuracy>=0.75: decidable from 9 test images (one-sided 95% wilson)" in out


def test_plan_validation_takes_its_rules_from_the_registry():
    from harness.errors import PlanError
    from harness.plan.schema import load_plan_text
    from harness.registry.manager import default_registry

    plan = """
harness: 1
name: t
dataset: {plugin: phantom_ct, n_patients: 40}
model: {plugin: train, architecture: small_cnn, epochs: 1}
epsilons: [0.004]
attacks: [{attack: fgsm}]
acceptance: [{metric: %s, min: 0}]
"""
    registry = default_registry()
    with pytest.raises(PlanError, match="median_min_epsilon needs a minimal-perturbation attack"):
        load_plan_text(plan % "median_min_epsilon, attack: fgsm", registry=registry)
    with pytest.raises(PlanError, match="attack_credible applies to one model"):
        load_plan_text(plan.replace("model: {", "defence: {plugin: pgd_adversarial_training, epsilon: 0.004}\nmodel: {")
                       % "attack_credible, model: change", registry=registry)
    with pytest.raises(PlanError, match=r"epsilon 0.0040001 is not in the grid of attack 'fgsm' \(0.004\)"):
        load_plan_text(plan % "robust_accuracy, attack: fgsm, epsilon: 0.0040001", registry=registry)
    accepted = load_plan_text(plan % "robust_accuracy, attack: fgsm, epsilon: 4.0e-3", registry=registry)
    assert accepted.acceptance[0].epsilon == 0.004
