"""Weights I/O: deterministic state-dict bytes and hashes, atomic writes, safe loading."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import ModelError, first_line
from harness.storage.hashing import file_sha256, sha256_bytes  # noqa: F401 - re-exported for the model plugins


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A plain dict copy of the module's state dict, every tensor detached, contiguous and on CPU."""
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def state_dict_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    """The bytes torch.save writes for `state` (stable: equal tensors give equal bytes)."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return buffer.getvalue()


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """A content hash of a state dict (names, dtypes, shapes and values in key order), format-independent."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def non_finite_entries(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of a state dict's floating-point tensors that hold NaN or Inf (empty when all are finite)."""
    return [name for name, tensor in state.items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict with weights_only=True; a file that needs arbitrary code is refused, never run."""
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        imported = re.search(r"GLOBAL (\S+)", str(exc))
        if imported:
            raise ModelError(f"{path}: refused to load: the file needs arbitrary code to unpickle (it "
                             f"imports {imported.group(1)}); save model.state_dict() instead") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        reason = detail.group(1).strip() if detail else first_line(exc)
        raise ModelError(f"{path}: not a readable torch state dict (weights-only unpickler: {reason})") from None
    except Exception as exc:  # corrupt zip, truncated file, not a torch file at all
        raise ModelError(f"{path}: not a readable torch state dict ({first_line(exc)})") from None
    return _as_state_dict(obj, path)


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Unwrap {'state_dict': ...} checkpoints and 'module.' prefixes; check every value is a tensor."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ModelError(f"{path}: expected a state dict (a mapping of names to tensors), "
                         f"got {type(obj).__name__}")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelError(f"{path}: entry {key!r} is not a tensor ({type(value).__name__})")
        state[key] = value
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


