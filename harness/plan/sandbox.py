"""Path sandboxing for plans marked `sandbox: true`: every path a plugin reads must lie under an allowed root.

The plan's path parameters are checked when the plan loads (`enforce_sandbox`); the files a data set lists inside
its folder or manifest are checked by the reader as it opens them (`harness.storage.paths.check_data_file`,
through DatasetContext.check_file), so a symlinked file inside the data folder cannot lead outside it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import PlanError
from harness.storage.paths import inside, resolve

PATH_FIELDS = frozenset({"path", "root", "weights", "manifest", "inputs", "logits"})  # inputs, logits: model.reference
PATH_SUFFIXES = ("_path", "_dir")


def check_path(path: Path | str, roots: list[Path], key: str, base_dir: Path | None = None) -> Path:
    """The resolved `path`; PlanError naming `key` when it lies outside every root (after symlinks and '..')."""
    try:
        resolved = resolve(path, base_dir)
        allowed = [resolve(root) for root in roots]
    except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, symlink loops, unreadable folders
        raise PlanError(f"path {str(path)!r} cannot be resolved: {exc}", key=key) from None
    if not inside(resolved, allowed):
        where = ", ".join(str(root) for root in allowed) or "no allowed roots"
        raise PlanError(f"path {str(path)!r} resolves to {resolved}, outside the sandbox ({where})", key=key)
    return resolved


def sandbox_roots(plan_base_dir: Path, data_root: str | Path | None, out_root: Path | None,
                  cache_dir: Path | None = None) -> list[Path]:
    """The allowed roots: the plan's folder, the data root (e.g. $HARNESS_DATA_ROOT), the output and cache."""
    candidates: Iterable[Path | str | None] = (plan_base_dir, data_root, out_root, cache_dir)
    roots: list[Path] = []
    for candidate in candidates:
        if candidate is None or str(candidate) == "":
            continue
        root = resolve(candidate, Path(plan_base_dir))
        if root not in roots:
            roots.append(root)
    return roots


def is_path_field(name: str) -> bool:
    """Whether a Params field holds a filesystem path (by naming convention)."""
    return name in PATH_FIELDS or name.endswith(PATH_SUFFIXES)


def path_fields(params: Any, key: str) -> Iterator[tuple[str, str]]:
    """(key path, value) of every non-empty string path field of a Params dataclass, nested ones included."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        return
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        sub = f"{key}.{f.name}" if key else f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from path_fields(value, sub)
        elif is_path_field(f.name) and isinstance(value, (list, tuple)):
            yield from ((f"{sub}.{i}", str(item)) for i, item in enumerate(value) if _is_path(item))
        elif is_path_field(f.name) and _is_path(value):
            yield sub, str(value)


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) != ""


def enforce_sandbox(params: Any, roots: list[Path], key: str, base_dir: Path | None = None) -> list[Path]:
    """Check every path field of a plugin's Params (e.g. key='dataset'); the resolved paths, or PlanError."""
    return [check_path(value, roots, sub, base_dir) for sub, value in path_fields(params, key)]
