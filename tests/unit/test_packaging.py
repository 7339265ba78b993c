"""The design card's top level, and a wheel that carries all of it: every package, the templates and the CSS."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"harness": "harness", "plugins": "harness_plugins", "reports": "harness_reports"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _packages_in_tree() -> set[str]:
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join((name, *relative.parts)))
    return found


def test_top_level_is_the_design_cards():
    for entry in ("harness", "plugins", "reports/templates", "specs", "tests", "pyproject.toml", "CHANGELOG.md"):
        assert (ROOT / entry).exists(), entry
    assert not (ROOT / "src").exists(), "the card has no src/ folder"


def test_every_package_in_the_tree_is_listed_in_pyproject():
    tool = _pyproject()["tool"]["setuptools"]
    assert set(tool["packages"]) == _packages_in_tree()
    assert tool["package-dir"] == {name: folder for folder, name in FOLDERS.items()}


def test_templates_are_found_through_importlib_resources():
    from harness.report.render import environment

    template = environment().get_template("report.html")
    assert template is not None


@pytest.mark.skipif(sys.platform != "linux", reason="builds the wheel with the venv's setuptools")
def test_wheel_carries_packages_templates_and_css(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.relative_to(ROOT / "reports").as_posix() for p in (ROOT / "reports" / "templates").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    assert templates, "no templates in the tree"
    for template in templates:
        assert f"harness_reports/{template}" in names, template
    assert "harness_reports/templates/report.css" in names
    for package in _packages_in_tree():
        assert package.replace(".", "/") + "/__init__.py" in names, package
    assert not any(name.startswith(("src/", "plugins/", "reports/")) for name in names)
