"""The reference pair: [0,1] images N×C×H×W and the logits a model the user trusts gave for them.

`harness export-reference` writes the pair and a model provider's `model.reference` check reads it (the built-in
supplied-model providers do, in harness_plugins.models.reference); both go through this module.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.errors import ModelError, first_line
from harness.storage.atomic import write_bytes_atomic

CHUNK = 32
INPUTS_NAME, LOGITS_NAME = "reference_inputs.npy", "reference_logits.npy"


def read_array(path: Path, what: str) -> np.ndarray:
    """A float32 array from a .npy file (pickles refused); ModelError naming the file otherwise."""
    if not path.is_file():
        raise ModelError(f"reference {what} file not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable .npy array ({first_line(exc)})") from None
    if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
        raise ModelError(f"{path}: reference {what} must be finite numbers, got dtype {array.dtype}")
    return array.astype(np.float32)


@torch.no_grad()
def logits_of(module: nn.Module, images: np.ndarray, device: torch.device) -> np.ndarray:
    """The module's logits for N×C×H×W images, in chunks."""
    outputs = []
    for start in range(0, len(images), CHUNK):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + CHUNK])).to(device)
        outputs.append(module(batch).float().cpu().numpy())
    return np.concatenate(outputs, axis=0)


def save_array(path: Path, array: np.ndarray) -> None:
    """Write a .npy file atomically."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue())


def export_reference(module: nn.Module, images: np.ndarray, out_dir: Path) -> tuple[Path, Path, np.ndarray]:
    """Write reference_inputs.npy and reference_logits.npy for `images` through `module` (in eval mode)."""
    module.eval()
    logits = logits_of(module, images.astype(np.float32), torch.device("cpu"))
    if logits.ndim != 2 or not np.isfinite(logits).all():
        raise ModelError(f"the model must return finite N×K logits, got shape {logits.shape}")
    inputs_path, logits_path = out_dir / INPUTS_NAME, out_dir / LOGITS_NAME
    save_array(inputs_path, images.astype(np.float32))
    save_array(logits_path, logits)
    return inputs_path, logits_path, logits
