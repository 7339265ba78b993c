"""Path sandboxing for plans marked `sandbox: true`: every path a plugin reads must lie under an allowed root.

The plan's path parameters are checked when the plan loads (`enforce_sandbox`); the files a data set lists inside
its folder or manifest are checked by the reader as it opens them (`check_data_file`, through
DatasetContext.check_file), so a symlinked file inside the data folder cannot lead outside it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import DataError, PlanError

PATH_FIELDS = frozenset({"path", "root", "weights", "manifest", "inputs", "logits"})  # inputs, logits: model.reference
PATH_SUFFIXES = ("_path", "_dir")


def resolve(path: Path | str, base_dir: Path | None = None) -> Path:
    """`path` made absolute (relative to `base_dir`), `~` expanded, with symlinks and '..' resolved."""
    path = Path(os.path.expanduser(str(path)))
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return path.resolve(strict=False)


def check_path(path: Path | str, roots: list[Path], key: str, base_dir: Path | None = None) -> Path:
    """The resolved `path`; PlanError naming `key` when it lies outside every root (after symlinks and '..')."""
    try:
        resolved = resolve(path, base_dir)
        allowed = [resolve(root) for root in roots]
    except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, symlink loops, unreadable folders
        raise PlanError(f"path {str(path)!r} cannot be resolved: {exc}", key=key) from None
    if not _inside(resolved, allowed):
        where = ", ".join(str(root) for root in allowed) or "no allowed roots"
        raise PlanError(f"path {str(path)!r} resolves to {resolved}, outside the sandbox ({where})", key=key)
    return resolved


def check_data_file(path: Path, roots: tuple[Path, ...] | list[Path], shown: str) -> Path:
    """The real path of a file a data set reads; with sandbox roots (the plan's `sandbox: true`), DataError naming
    the file as `shown` (de-identified) when it resolves outside every root, e.g. through a symlink."""
    try:
        resolved = Path(os.path.realpath(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"{shown}: its path cannot be resolved ({type(exc).__name__})") from None
    if roots and not _inside(resolved, [resolve(root) for root in roots]):
        raise DataError(f"{shown} resolves outside the sandbox (a symlink or '..' leads out of the data folder and "
                        "the plan's data_root); sandbox: true refuses it")
    return resolved


def _inside(resolved: Path, roots: list[Path]) -> bool:
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


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
