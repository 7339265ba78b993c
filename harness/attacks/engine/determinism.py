"""`engine.deterministic`: deterministic algorithms (and the cuBLAS workspace on CUDA), recorded in the manifest."""

from __future__ import annotations

import os

import torch

from harness.plan.schema import EngineSettings

CUBLAS_WORKSPACE = ":4096:8"


def enable_determinism(settings: EngineSettings, device: torch.device) -> dict[str, object]:
    """Apply `engine.deterministic` and return what the manifest should record under "determinism".

    On: torch.use_deterministic_algorithms(True, warn_only=True) (ops without a deterministic kernel warn
    rather than stop the run; on CUDA the built-in models' adaptive average pool backward is one),
    cudnn.benchmark off, cudnn.deterministic on, and CUBLAS_WORKSPACE_CONFIG=":4096:8" on CUDA (effective
    only if set before the first cuBLAS call, so call this before the model reaches the GPU). Off: nothing
    changes and the current state is returned.
    """
    device = torch.device(device)
    if settings.deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return {"requested": bool(settings.deterministic),
            "torch_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}

