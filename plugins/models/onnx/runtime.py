"""An ONNX model run by onnxruntime (CPU) behind a torch module: forward only, no gradients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import torch
from torch import nn

from harness_plugins.models.onnx.graph import graph_input


class OnnxRuntimeModule(nn.Module):
    """Logits from onnxruntime for a torch batch (moved to the CPU and back); gradient-free attacks only."""

    def __init__(self, model_bytes: bytes, input_name: str, threads: int) -> None:
        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = max(1, threads), 1
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.input_name = input_name

    @classmethod
    def from_model(cls, path: Path, model: onnx.ModelProto) -> OnnxRuntimeModule:
        """A session for the ONNX file at `path` (parsed as `model`), with torch's CPU thread count."""
        return cls(path.read_bytes(), graph_input(model).name, torch.get_num_threads())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The session's first output for the batch, as a float32 tensor on the batch's device."""
        (logits, *_) = self.session.run(None, {self.input_name: x.detach().to("cpu", torch.float32).numpy()})
        return torch.from_numpy(logits).to(x.device)

    def __deepcopy__(self, memo: dict[int, Any]) -> OnnxRuntimeModule:
        """Copies share the session (inference holds no state)."""
        return self
