"""The load-time equivalence check: the loaded model must reproduce reference logits (or a known accuracy).

`reference: {inputs: x.npy, logits: y.npy}` holds [0,1] images N×C×H×W (the data's shape) and the logits a model
the user trusts gave for them (`harness export-reference` writes the pair); `reference: {expected_accuracy: a}`
compares the accuracy on the test split instead. A mismatch refuses the run with one line giving the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.data.reference_pair import logits_of, read_array
from harness.errors import ModelError, PlanError, first_line
from harness.plan.params import plan_path
from harness.storage.hashing import file_sha256

DEFAULT_LOGIT_TOLERANCE = 1e-4  # max |logit difference|
DEFAULT_ACCURACY_TOLERANCE = 0.01  # one percentage point


@dataclass
class ReferenceParams:
    """Reference logits for given inputs, or an expected test accuracy, with a tolerance."""

    inputs: str | None = None  # .npy of [0,1] images N×C×H×W; relative to the plan
    logits: str | None = None  # .npy of N×K logits
    expected_accuracy: float | None = field(default=None, metadata={"min": 0, "max": 1})
    tolerance: float | None = field(default=None, metadata={"min": 0})  # default 1e-4 (logits) / 0.01 (accuracy)

    def __post_init__(self) -> None:
        pair = (self.inputs is None, self.logits is None)
        if pair[0] != pair[1]:
            raise PlanError("give both inputs and logits (harness export-reference writes them)",
                            key="model.reference")
        if (self.inputs is None) == (self.expected_accuracy is None):
            raise PlanError("give either inputs and logits, or expected_accuracy", key="model.reference")


def check_reference(module: nn.Module, reference: ReferenceParams, base_dir: Path, device: torch.device,
                    test_accuracy: Callable[[], float]) -> dict[str, Any]:
    """Compare the loaded model with the reference; the record for the manifest, or ModelError on a mismatch."""
    if reference.expected_accuracy is not None:
        tolerance = DEFAULT_ACCURACY_TOLERANCE if reference.tolerance is None else reference.tolerance
        measured = test_accuracy()
        difference = abs(measured - reference.expected_accuracy)
        if difference > tolerance:
            raise ModelError(f"model.reference: the loaded model does not reproduce the expected test accuracy: "
                             f"{measured:.4f} measured, {reference.expected_accuracy:.4f} expected (difference "
                             f"{difference:.4f} > tolerance {tolerance:g})")
        return {"kind": "expected_accuracy", "expected_accuracy": reference.expected_accuracy,
                "measured_accuracy": measured, "difference": difference, "tolerance": tolerance, "passed": True}
    inputs_path, logits_path = plan_path(reference.inputs, base_dir), plan_path(reference.logits, base_dir)
    images, expected = read_array(inputs_path, "inputs"), read_array(logits_path, "logits")
    if images.ndim not in (4, 5) or expected.ndim != 2 or len(images) != len(expected) or not len(images):
        raise ModelError(f"reference inputs {tuple(images.shape)} and logits {tuple(expected.shape)} must be "
                         "N×C×H×W (or N×C×D×H×W) and N×K with the same N ≥ 1")
    try:
        got = logits_of(module, images, device)
    except Exception as exc:  # the model cannot take the reference inputs at all
        raise ModelError(f"model.reference: the loaded model fails on the reference inputs "
                         f"{tuple(images.shape)} ({first_line(exc)})") from None
    if got.shape != expected.shape:
        raise ModelError(f"model.reference: the loaded model gives logits of shape {got.shape}, the reference "
                         f"{expected.shape}")
    tolerance = DEFAULT_LOGIT_TOLERANCE if reference.tolerance is None else reference.tolerance
    difference = float(np.abs(got - expected).max())
    agree = float(np.mean(got.argmax(1) == expected.argmax(1)))
    if difference > tolerance:
        raise ModelError(f"model.reference: the loaded model does not reproduce {logits_path.name}: max |logit "
                         f"difference| {difference:.3g} > tolerance {tolerance:g} over {len(images)} inputs "
                         f"({agree:.0%} same predicted class)")
    return {"kind": "logits", "inputs": inputs_path.name, "logits": logits_path.name,
            "inputs_sha256": file_sha256(inputs_path), "logits_sha256": file_sha256(logits_path),
            "n_inputs": len(images), "max_abs_difference": difference, "tolerance": tolerance,
            "same_prediction": agree, "passed": True}
