"""Run directories and the cache directory: naming, creation and the per-installation de-identification salt."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from harness.storage.atomic import write_text_atomic
from harness.storage.filelock import is_held

RUN_LOCK = ".run.lock"  # held by the process running (or resuming) a run directory, for as long as it runs


def default_cache_dir() -> Path:
    """$HARNESS_CACHE_DIR, else ~/.cache/harness."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness"


def create_run_dir(out_root: Path, plan_name: str, plan_sha256: str) -> Path:
    """A new directory named <plan>-<YYYYmmdd-HHMMSS>-<short plan hash>[-N]."""
    out_root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = f"{plan_name}-{stamp}-{plan_sha256[:8]}"
    for n in range(1000):
        candidate = out_root / (base if n == 0 else f"{base}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a run directory under {out_root}")


def deid_salt(cache_dir: Path) -> str:
    """The secret salt for hashing identifiers: $HARNESS_DEID_SALT, else one kept (0600) in the cache dir.

    A per-installation secret keeps hashed ids stable across runs (runs stay comparable and reproducible)
    while the ids cannot be reversed by anyone without the secret; the salt is never written to outputs.
    """
    env = os.environ.get("HARNESS_DEID_SALT")
    if env:
        return env
    path = cache_dir / "deid_salt"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    salt = secrets.token_hex(32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, salt, mode=0o600)  # private from the first byte
    return path.read_text(encoding="utf-8").strip()


def run_lock_path(run_dir: Path) -> Path:
    """The lock file a running process holds in its run directory."""
    return Path(run_dir) / RUN_LOCK


def run_in_progress(run_dir: Path) -> bool:
    """Whether a process is running in `run_dir` now: it holds the run's lock, which ends with the process."""
    return is_held(run_lock_path(run_dir))
