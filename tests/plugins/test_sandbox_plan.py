"""`sandbox: true` in a plan: path parameters cannot escape the plan folder or data_root via '..' or symlinks."""

from __future__ import annotations

import pytest

from harness.errors import PlanError
from harness.plan.schema import load_plan

PLAN = """\
harness: 1
name: sandboxed
sandbox: true
{data_root}
dataset:
  plugin: npz
  path: {path}
model:
  plugin: train
attacks:
  - attack: fgsm
"""


def write(tmp_path, path, data_root=""):
    plan_dir = tmp_path / "plans"
    plan_dir.mkdir(exist_ok=True)
    plan = plan_dir / "plan.yaml"
    plan.write_text(PLAN.format(path=path, data_root=data_root))
    return plan


def test_dotdot_escape_is_refused_with_key_and_line(tmp_path):
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, "../../secret/data.npz"))
    message = info.value.one_line()
    assert "key 'dataset.path'" in message and "plan.yaml:7" in message


def test_symlink_escape_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    plan = write(tmp_path, "link/data.npz")
    (plan.parent / "link").symlink_to(outside)
    with pytest.raises(PlanError, match="dataset.path"):
        load_plan(plan)


def test_paths_inside_the_plan_folder_or_data_root_are_allowed(tmp_path):
    (tmp_path / "data").mkdir()
    assert load_plan(write(tmp_path, "sub/data.npz")).dataset.params.path == "sub/data.npz"
    plan = load_plan(write(tmp_path, "../data/x.npz", data_root="data_root: ../data"))
    assert plan.dataset.params.path == "../data/x.npz"
