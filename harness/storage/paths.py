"""Paths as the sandbox sees them: resolved (symlinks, '..', '~'), inside a root or not, and a data file's real path
checked against the sandbox roots (harness.plan.sandbox holds the plan's side of the sandbox)."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import DataError


def resolve(path: Path | str, base_dir: Path | None = None) -> Path:
    """`path` made absolute (relative to `base_dir`), `~` expanded, with symlinks and '..' resolved."""
    path = Path(os.path.expanduser(str(path)))
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return path.resolve(strict=False)


def check_data_file(path: Path, roots: tuple[Path, ...] | list[Path], shown: str) -> Path:
    """The real path of a file a data set reads; with sandbox roots (the plan's `sandbox: true`), DataError naming
    the file as `shown` (de-identified) when it resolves outside every root, e.g. through a symlink."""
    try:
        resolved = Path(os.path.realpath(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"{shown}: its path cannot be resolved ({type(exc).__name__})") from None
    if roots and not inside(resolved, [resolve(root) for root in roots]):
        raise DataError(f"{shown} resolves outside the sandbox (a symlink or '..' leads out of the data folder and "
                        "the plan's data_root); sandbox: true refuses it")
    return resolved


def inside(resolved: Path, roots: list[Path]) -> bool:
    """Whether a resolved path is one of `roots` or lies under one."""
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)
