"""docs/architecture.md against the tree: the import-linter contracts hold, no two modules import each other through
any chain, every package folder and every module of a core package is named in the document, the document's layer
list is the contract's, and the core's unit tests never import the built-in plugins."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
from support import REPO, TESTS

ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
PACKAGES = {"harness": REPO / "harness", "harness_plugins": REPO / "plugins"}


def test_the_import_linter_contracts_are_kept():
    """The layers and 'the core never imports harness_plugins' (pyproject.toml [tool.importlinter]); .ci/run runs
    the same command before the tests."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[tuple[str, ...]]:
    """Each import a → b whose target leads back to its source (b →…→ a), as the shortest such circle."""
    found = set()
    for importer in sorted(modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & modules):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                found.add(tuple(sorted(back)))
    return sorted(found)


def test_no_module_imports_itself_through_a_chain():
    """No import cycle between modules, type-checking imports and imports inside functions included."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    assert cycles(graph, set(graph.modules)) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    assert cycles(graph, {"p.a", "p.b", "p.c"}) == [("p.a", "p.b", "p.c")]
    graph.remove_import(importer="p.c", imported="p.a")
    assert cycles(graph, {"p.a", "p.b", "p.c"}) == []


def folders(root: Path) -> list[Path]:
    """Every package folder under `root` (with an __init__.py), relative to the repository."""
    return sorted(p.parent.relative_to(REPO) for p in root.rglob("__init__.py") if "__pycache__" not in p.parts)


def test_the_document_names_every_package_folder():
    unnamed = []
    for package, root in PACKAGES.items():
        for folder in folders(root):
            dotted = ".".join((package, *folder.parts[1:]))
            parent = ".".join((package, *folder.parts[1:-1]))
            names = {f"`{dotted}`", f"`{folder.as_posix()}/`", f"`{'/'.join(folder.parts[1:])}/`"}
            if not any(name in ARCHITECTURE for name in names) \
                    and not (f"`{parent}`" in ARCHITECTURE and f"`{folder.name}/`" in ARCHITECTURE):
                unnamed.append(folder.as_posix())
    assert unnamed == []


def test_the_document_names_every_module_of_the_core_packages():
    """Each module directly in harness/ or one of its packages appears in the package table as `name.py`."""
    core = REPO / "harness"
    modules = [p for p in [*core.glob("*.py"), *core.glob("*/*.py")] if p.name != "__init__.py"]
    unnamed = [p.relative_to(REPO).as_posix() for p in modules if f"`{p.name}`" not in ARCHITECTURE
               and f"`{p.stem}.py`" not in ARCHITECTURE and f"{p.stem}.py" not in ARCHITECTURE]
    assert unnamed == []


def test_the_documented_layers_are_the_contract():
    """The layer list in docs/architecture.md ('Layers' section, one layer a line) is the contract's, in order."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    block = re.search(r"```text\n(harness layers.*?)```", ARCHITECTURE, re.S)
    assert block, "docs/architecture.md has no ```text block starting 'harness layers'"
    documented = [line.split("#")[0].strip() for line in block.group(1).splitlines()[1:] if line.strip()]
    assert documented == layers


def test_the_cores_unit_tests_never_import_the_built_in_plugins():
    """tests/unit runs with no entry-point plugin loaded (tests/unit/conftest.py); it imports none either."""
    offenders = [p.name for p in sorted((TESTS / "unit").glob("*.py"))
                 if re.search(r"^\s*(from|import)\s+harness_plugins\b", p.read_text(encoding="utf-8"), re.M)]
    assert offenders == []
