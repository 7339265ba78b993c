"""The adversarial examples a run saved for the report (examples_<role>.npz), read without pickle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Examples:
    """One model's saved adversarial examples (see harness.attacks.example_images.save_examples)."""

    role: str
    clean: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    clean_pred: np.ndarray
    clean_conf: np.ndarray
    adv_pred: np.ndarray
    adv_conf: np.ndarray
    sample_ids: list[str]
    attack_id: str
    attack: str
    epsilon: float
    within_bound: np.ndarray | None = None


def read_examples(path: Path) -> Examples:
    """Load examples_<role>.npz without pickle."""
    with np.load(path, allow_pickle=False) as data:
        role = str(data["role"]) if "role" in data else path.stem.removeprefix("examples_")
        clean = np.asarray(data["clean"], dtype=np.float32)
        adversarial = np.asarray(data["adversarial"], dtype=np.float32)
        if clean.shape != adversarial.shape or clean.ndim not in (4, 5):
            raise ValueError(f"clean {clean.shape} and adversarial {adversarial.shape} must both be N×C×H×W "
                             "(or N×C×D×H×W)")
        return Examples(
            role=role, clean=clean, adversarial=adversarial, labels=np.asarray(data["labels"]),
            clean_pred=np.asarray(data["clean_pred"]), clean_conf=np.asarray(data["clean_conf"]),
            adv_pred=np.asarray(data["adv_pred"]), adv_conf=np.asarray(data["adv_conf"]),
            sample_ids=[str(s) for s in data["sample_ids"]], attack_id=str(data["attack_id"]),
            attack=str(data["attack"]) if "attack" in data else str(data["attack_id"]),
            epsilon=float(data["epsilon"]),
            within_bound=np.asarray(data["within_bound"], dtype=bool) if "within_bound" in data else None)
