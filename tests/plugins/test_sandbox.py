"""harness.plan.sandbox: '..' and symlink escapes are refused with a PlanError naming the key; paths inside pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.errors import PlanError
from harness.plan.params import build_dataclass
from harness.plan.sandbox import check_path, enforce_sandbox, is_path_field, path_fields, sandbox_roots


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """plans/ (the plan's folder), data/ (the data root), runs/, and secret/ outside all of them."""
    paths = {name: tmp_path / name for name in ("plans", "data", "runs", "secret")}
    for path in paths.values():
        path.mkdir()
    (paths["secret"] / "weights.pt").write_bytes(b"x")
    (paths["data"] / "scan.dcm").write_bytes(b"x")
    return paths


def roots(tree: dict[str, Path]) -> list[Path]:
    return sandbox_roots(tree["plans"], str(tree["data"]), tree["runs"])


def test_paths_inside_a_root_are_allowed_and_resolved(tree):
    allowed = roots(tree)
    assert check_path(tree["data"] / "scan.dcm", allowed, "dataset.path") == (tree["data"] / "scan.dcm").resolve()
    assert check_path("sub/model.pt", allowed, "model.weights", base_dir=tree["plans"]) == \
        (tree["plans"] / "sub" / "model.pt").resolve()  # need not exist yet
    assert check_path(tree["data"], allowed, "dataset.path") == tree["data"].resolve()  # the root itself
    assert check_path(tree["plans"] / "x" / ".." / "y", allowed, "k") == (tree["plans"] / "y").resolve()


def test_dotdot_escape_is_refused_with_key(tree):
    allowed = roots(tree)
    with pytest.raises(PlanError, match=r"key 'model.weights'.*outside the sandbox") as info:
        check_path("../secret/weights.pt", allowed, "model.weights", base_dir=tree["plans"])
    assert info.value.key == "model.weights" and "\n" not in info.value.one_line()
    with pytest.raises(PlanError):
        check_path(tree["data"] / ".." / "secret" / "weights.pt", allowed, "dataset.path")
    with pytest.raises(PlanError):  # a sibling whose name merely starts with a root's name
        check_path(str(tree["data"]) + "-evil/x", allowed, "dataset.path")


def test_symlink_escape_is_refused(tree):
    allowed = roots(tree)
    (tree["data"] / "link.pt").symlink_to(tree["secret"] / "weights.pt")
    (tree["data"] / "linkdir").symlink_to(tree["secret"], target_is_directory=True)
    with pytest.raises(PlanError, match="outside the sandbox"):
        check_path(tree["data"] / "link.pt", allowed, "model.weights")
    with pytest.raises(PlanError, match="outside the sandbox"):
        check_path(tree["data"] / "linkdir" / "weights.pt", allowed, "model.weights")
    (tree["data"] / "inner").symlink_to(tree["runs"], target_is_directory=True)  # a link to another root is fine
    assert check_path(tree["data"] / "inner" / "r.json", allowed, "k") == (tree["runs"] / "r.json").resolve()


def test_symlinked_root_and_odd_paths(tree, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(tree["data"], target_is_directory=True)
    assert check_path(tree["data"] / "scan.dcm", [alias], "k") == (tree["data"] / "scan.dcm").resolve()
    loop = tree["data"] / "loop"
    loop.symlink_to(loop)
    for bad in ("bad\0name", loop / "x"):
        with pytest.raises(PlanError, match="key 'dataset.path'") as info:
            check_path(bad, roots(tree), "dataset.path")
        assert "\n" not in info.value.one_line()
    with pytest.raises(PlanError, match="no allowed roots"):
        check_path(tree["data"], [], "dataset.path")


def test_sandbox_roots_skip_missing_and_deduplicate(tree):
    assert sandbox_roots(tree["plans"], None, None) == [tree["plans"].resolve()]
    assert sandbox_roots(tree["plans"], "", tree["plans"]) == [tree["plans"].resolve()]
    assert sandbox_roots(tree["plans"], "../data", tree["runs"]) == [
        tree["plans"].resolve(), tree["data"].resolve(), tree["runs"].resolve()]


@dataclass
class Inner:
    manifest: str | None = None
    center: float = 0.0


@dataclass
class FakeParams:
    path: str = "data"
    weights: str | None = None
    label_dir: str | None = None
    extra_paths: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    name: str = "../not-a-path"  # not a path field: never checked


def test_path_fields_follow_the_naming_convention():
    assert all(map(is_path_field, ("path", "root", "weights", "manifest", "cache_dir", "mask_path")))
    assert not any(map(is_path_field, ("name", "pattern", "path_column", "paths")))
    params = FakeParams(weights="w.pt", extra_paths=["a", "b"], inner=Inner(manifest="m.csv"))
    assert list(path_fields(params, "dataset")) == [
        ("dataset.path", "data"), ("dataset.weights", "w.pt"), ("dataset.inner.manifest", "m.csv")]
    params.label_dir, params.extra_paths = "labels", []
    assert ("dataset.label_dir", "labels") in list(path_fields(params, "dataset"))


def test_enforce_sandbox_on_a_params_dataclass(tree):
    allowed = roots(tree)
    ok = build_dataclass(FakeParams, {"path": "../data", "weights": "../runs/w.pt"}, "model")
    assert enforce_sandbox(ok, allowed, "model", base_dir=tree["plans"]) == [
        tree["data"].resolve(), (tree["runs"] / "w.pt").resolve()]
    bad = build_dataclass(FakeParams, {"path": "../data", "inner": {"manifest": "../secret/m.csv"}}, "dataset")
    with pytest.raises(PlanError, match=r"key 'dataset.inner.manifest'"):
        enforce_sandbox(bad, allowed, "dataset", base_dir=tree["plans"])
    assert enforce_sandbox(None, allowed, "attacks.0") == []


def test_enforce_sandbox_on_real_plugin_params(tree):
    from harness.registry.manager import default_registry

    registry = default_registry()
    dicom = registry.get("dataset", "dicom")
    params = build_dataclass(dicom.Params, {"path": "/etc"}, "dataset")
    with pytest.raises(PlanError, match=r"key 'dataset.path'"):
        enforce_sandbox(params, roots(tree), "dataset", base_dir=tree["plans"])
    model = registry.get("model", "state_dict")
    params = build_dataclass(model.Params, {"architecture": "small_cnn", "weights": "../secret/weights.pt"}, "model")
    with pytest.raises(PlanError, match=r"key 'model.weights'"):
        enforce_sandbox(params, roots(tree), "model", base_dir=tree["plans"])
