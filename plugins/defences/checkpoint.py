"""Round checkpoints: everything needed to continue a defence exactly where it stopped, saved atomically."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.run import distributed
from harness.storage.atomic import write_bytes_atomic
from harness_plugins.defences.precision import Precision
from harness_plugins.models.weights import cpu_state_dict, sha256_bytes

CHECKPOINT_NAME = "checkpoint.pt"
SELECTED_NAME = "selected_weights.pt"
CHECKPOINT_FORMAT = 1
GENERATORS = ("shuffle", "augment", "attack")


@dataclass
class Best:
    """The best round so far: its validation metrics and weights (CPU tensors)."""

    round: int
    val_clean: float
    val_robust: float
    state: dict[str, torch.Tensor]

    def beaten_by(self, val_clean: float, val_robust: float) -> bool:
        """Strictly better robust accuracy, or equal robust and better clean accuracy (ties keep the earlier)."""
        return (val_robust, val_clean) > (self.val_robust, self.val_clean)


@dataclass
class LoopState:
    """Progress of the round loop: next schedule index, the log, the best round and early-stopping counter."""

    next_index: int
    log: list[dict[str, Any]]
    best: Best
    stale: int = 0
    early_stopped: bool = False
    finished: bool = False
    resumed_from_round: int | None = None
    generators: dict[str, torch.Generator] = field(default_factory=dict)


def fingerprint(material: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that decides the training (a checkpoint must match it)."""
    return sha256_bytes(json.dumps(material, sort_keys=True, separators=(",", ":"), default=str).encode())


def labels_sha256(split: Any) -> str:
    """Cheap fingerprint of a split's membership: sha256 of its int64 labels."""
    return sha256_bytes(np.asarray(split.labels, dtype=np.int64).tobytes())


class CheckpointStore:
    """Reads and writes `checkpoint.pt` in the defence's checkpoint folder.

    Under torchrun every rank calls save() (the RNG states of all ranks are gathered) and rank 0 writes the file;
    every rank reads it back on resume and takes its own RNG states."""

    def __init__(self, folder: Path, expected_fingerprint: str, log: Callable[[str], None]) -> None:
        self.folder, self.expected, self.log = Path(folder), expected_fingerprint, log
        self.path = self.folder / CHECKPOINT_NAME

    def save(self, state: LoopState, model: nn.Module, optimizer: torch.optim.Optimizer,
             precision: Precision) -> None:
        """Write the whole loop state atomically (readers see the previous or the new round, never half)."""
        rng = _rng_states(state.generators)
        rng_by_rank = distributed.all_gather(rng) if distributed.is_distributed() else None
        if not distributed.is_main():
            return
        payload = {
            "format": CHECKPOINT_FORMAT, "fingerprint": self.expected, "next_index": state.next_index,
            "log": state.log, "stale": state.stale, "early_stopped": state.early_stopped,
            "finished": state.finished, "model": cpu_state_dict(model), "optimizer": optimizer.state_dict(),
            "scaler": precision.state_dict(), "rng": rng,
            "best": {"round": state.best.round, "val_clean": state.best.val_clean,
                     "val_robust": state.best.val_robust, "state": state.best.state},
            **({"rng_by_rank": rng_by_rank} if rng_by_rank is not None else {}),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        write_bytes_atomic(self.path, buffer.getvalue())

    def load(self) -> dict[str, Any] | None:
        """The checkpoint if present, readable (weights_only) and made by the same settings; else None."""
        if not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign file: start over, saying so
            self.log(f"defence: ignoring unreadable checkpoint {self.path} ({str(exc).splitlines()[0][:160]})")
            return None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            self.log(f"defence: ignoring checkpoint {self.path} (unknown format)")
            return None
        if payload.get("fingerprint") != self.expected:
            self.log(f"defence: ignoring checkpoint {self.path}: it was made with other settings, data or model")
            return None
        return payload

    def restore(self, payload: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                precision: Precision, generators: dict[str, torch.Generator]) -> LoopState:
        """Load model, optimiser, scaler and RNG states from `payload`; return the loop state."""
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        precision.load_state_dict(payload["scaler"])
        _load_rng_states(_own_rng(payload), generators)
        best = payload["best"]
        log = list(payload["log"])
        return LoopState(next_index=int(payload["next_index"]), log=log,
                         best=Best(int(best["round"]), float(best["val_clean"]), float(best["val_robust"]),
                                   dict(best["state"])),
                         stale=int(payload["stale"]), early_stopped=bool(payload["early_stopped"]),
                         finished=bool(payload["finished"]), resumed_from_round=int(log[-1]["round"]),
                         generators=generators)


def _own_rng(payload: dict[str, Any]) -> dict[str, Any]:
    """This rank's RNG states in a checkpoint (one process: the only ones)."""
    by_rank = payload.get("rng_by_rank")
    if by_rank and len(by_rank) == distributed.world_size():
        return by_rank[distributed.rank()]
    return payload["rng"]


def _rng_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG state as a uint8 tensor (the dedicated generators, torch's global CPU and CUDA states)."""
    states: dict[str, Any] = {name: generators[name].get_state() for name in GENERATORS}
    states["torch"] = torch.get_rng_state()
    states["cuda"] = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
    return states


def _load_rng_states(states: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Put RNG states saved by _rng_states back."""
    for name in GENERATORS:
        generators[name].set_state(states[name])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])
