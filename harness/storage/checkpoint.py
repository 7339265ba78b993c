"""Per-batch checkpoints of a resumable stage: named numpy arrays and the fingerprint they were made under, in one
.npz written atomically; a checkpoint made under another fingerprint is never reused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from harness.storage.atomic import write_bytes_atomic


def save_arrays(path: Path | None, fingerprint: str, **arrays: np.ndarray | int) -> None:
    """Write the arrays and the fingerprint atomically (nothing when `path` is None)."""
    if path is None:
        return
    buffer = io.BytesIO()
    np.savez(buffer, fingerprint=fingerprint, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_arrays(path: Path | None, fingerprint: str) -> dict[str, np.ndarray] | None:
    """The saved arrays when `path` holds a checkpoint made under `fingerprint`; None otherwise."""
    if path is None or not Path(path).exists():
        return None
    with np.load(path, allow_pickle=False) as saved:
        if str(saved["fingerprint"]) != fingerprint:
            return None
        return {name: saved[name].copy() for name in saved.files if name != "fingerprint"}
