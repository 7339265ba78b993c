"""The corruption strips a run saved for the report (corruption_examples_<role>.npz), read without pickle.

Written by harness.corruptions.examples.save_corruption_examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.registry.severities import SEVERITY_LEVELS

LEVELS = len(SEVERITY_LEVELS)  # the strip's slots, one per severity level


@dataclass
class CorruptionExamples:
    """One model's corruption strips: the clean image, and per corruption one image per severity level (1-5)."""

    role: str
    sample_id: str
    label: int
    clean: np.ndarray  # C×H×W
    clean_pred: int
    clean_conf: float
    ids: list[str]  # the plan's corruption ids, in plan order
    images: np.ndarray  # [n_corruptions, 5, C, H, W]; zeros at levels not run
    ran: np.ndarray  # bool [n_corruptions, 5]
    preds: np.ndarray  # int [n_corruptions, 5]
    confs: np.ndarray  # float [n_corruptions, 5]
    rule: str | None = None  # how the image was chosen (harness.corruptions.examples.EXAMPLE_RULE); None: older runs


def read_corruption_examples(path: Path) -> CorruptionExamples:
    """Load corruption_examples_<role>.npz without pickle (ValueError or KeyError when malformed)."""
    with np.load(path, allow_pickle=False) as data:
        examples = CorruptionExamples(
            role=str(data["role"]), sample_id=str(data["sample_id"]), label=int(data["label"]),
            clean=np.asarray(data["clean"], dtype=np.float32), clean_pred=int(data["clean_pred"]),
            clean_conf=float(data["clean_conf"]), ids=[str(i) for i in data["ids"]],
            images=np.asarray(data["images"], dtype=np.float32), ran=np.asarray(data["ran"], dtype=bool),
            preds=np.asarray(data["preds"]), confs=np.asarray(data["confs"]),
            rule=str(data["rule"]) if "rule" in data.files else None)
    if examples.images.shape[:2] != (len(examples.ids), LEVELS) \
            or examples.images.shape[2:] != examples.clean.shape:
        raise ValueError(f"images {examples.images.shape} do not match {len(examples.ids)} corruptions of "
                         f"{examples.clean.shape} images")
    return examples
