"""What the numbers depend on: library versions, device, threads and determinism settings."""

from __future__ import annotations

import contextlib
import platform
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

LIBRARIES = ("harness", "torch", "foolbox", "eagerpy", "numpy", "scipy", "pydicom", "monai", "scikit-learn",
             "pluggy", "pyyaml", "jinja2", "weasyprint", "matplotlib", "pillow")


def library_versions() -> dict[str, str | None]:
    """Installed version of every library that can affect a number or the report."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def resolve_device(requested: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; otherwise the named device."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@contextlib.contextmanager
def plan_threads(n: int | None) -> Iterator[None]:
    """torch uses the plan's `n` CPU threads inside the block (CPU kernels split sums by thread, so the count decides
    numbers; the machine's core count must not); the previous count is restored after. None leaves it unchanged."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def device_info(device: torch.device) -> dict[str, Any]:
    """The device a run used, with GPU name and CUDA/cuDNN versions where relevant."""
    info: dict[str, Any] = {"type": device.type, "name": str(device), "cpu": platform.processor() or platform.machine(),
                            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info.update({"gpu_name": torch.cuda.get_device_name(index), "cuda": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version()})
    return info


def platform_info() -> dict[str, str]:
    """Operating system and interpreter."""
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "python_implementation": platform.python_implementation(), "executable": sys.executable}


def source_revision() -> str | None:
    """The git revision of the harness source when it runs from a checkout ('<sha>' or '<sha>-dirty'), else None."""
    import subprocess
    from pathlib import Path

    import harness

    root = Path(harness.__file__).resolve().parents[1]  # harness/__init__.py → the checkout
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def plan_git_provenance(plan_file: str | None) -> dict[str, object]:
    """Where the plan file stands in git (its pre-registration): the last commit that changed it, that commit's date
    and author, and whether the file was modified since; {'tracked': False, 'why': …} outside a repository or for
    a file never committed. Nothing is refused: the report states what it finds."""
    import subprocess
    from pathlib import Path

    if not plan_file or not Path(plan_file).is_file():
        return {"tracked": False, "why": "the plan was not read from a file"}
    path = Path(plan_file).resolve()

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(path.parent), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return {"tracked": False, "why": "not under version control"}
    try:
        last = git("log", "-1", "--format=%H%x00%cI%x00%an", "--", path.name)
        status = git("status", "--porcelain", "--", path.name)
    except (OSError, subprocess.SubprocessError):  # e.g. a repository without any commit yet
        last = ""
    if not last:
        return {"tracked": False, "why": "in a git repository but never committed"}
    commit, date, author = last.split("\x00")
    return {"tracked": True, "commit": commit, "date": date, "author": author, "modified": bool(status)}
