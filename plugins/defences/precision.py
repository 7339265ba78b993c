"""Mixed precision for adversarial training: CUDA autocast (bf16, else fp16 with a GradScaler); CPU is float32."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

FP16_ATTACK_LOSS_SCALE = 1024.0  # keeps fp16 input gradients from underflowing; their sign is unchanged


@dataclass
class Precision:
    """How forward passes run and how a loss is turned into an optimiser step."""

    enabled: bool
    device_type: str
    dtype: torch.dtype | None = None
    scaler: Any = None  # torch.amp.GradScaler for fp16, else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """torch.autocast when mixed precision is on, else a no-op."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def attack_loss_scale(self) -> float:
        """Factor on an attack objective before its input gradient is taken."""
        return FP16_ATTACK_LOSS_SCALE if self.dtype == torch.float16 else 1.0

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and optimiser step (through the GradScaler for fp16)."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The GradScaler's state (empty without one)."""
        return {} if self.scaler is None else dict(self.scaler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the GradScaler's state from a checkpoint."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def describe(self) -> dict[str, Any]:
        """Provenance: whether mixed precision was used, and with which dtype."""
        dtype = None if self.dtype is None else str(self.dtype).removeprefix("torch.")
        return {"mixed_precision": self.enabled, "amp_dtype": dtype, "grad_scaler": self.scaler is not None}


def choose_precision(requested: bool, device: torch.device) -> Precision:
    """bf16 autocast on CUDA when supported, fp16 + GradScaler otherwise; always float32 off CUDA."""
    if not requested or device.type != "cuda":
        return Precision(enabled=False, device_type=device.type)
    if torch.cuda.is_bf16_supported():
        return Precision(enabled=True, device_type="cuda", dtype=torch.bfloat16)
    return Precision(enabled=True, device_type="cuda", dtype=torch.float16, scaler=torch.amp.GradScaler("cuda"))
