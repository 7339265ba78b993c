"""Model plugin 'onnx': an ONNX file converted to torch (attacks get gradients), or run by onnxruntime.

Every load is checked: the converted module and onnxruntime must give the same logits on sample images (the
tolerance and the largest difference are recorded). A model whose operators the converter does not implement runs
through onnxruntime without gradients (`backend: auto`), so only gradient-free attacks can test it; `backend:
torch` refuses it instead, naming the operators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from harness.data.reference_pair import logits_of
from harness.errors import ModelError, first_line
from harness.plan.params import plan_path
from harness.registry.contracts import ModelBundle, ModelContext
from harness.registry.hookspecs import hookimpl
from harness.storage.hashing import file_sha256
from harness_plugins.models.onnx.graph import (
    FixedBatch,
    OnnxGraph,
    declared_shape,
    graph_input,
    op_counts,
    opset_of,
)
from harness_plugins.models.onnx.ops import UnsupportedOnnx
from harness_plugins.models.onnx.runtime import OnnxRuntimeModule
from harness_plugins.models.supplied import (
    SuppliedParams,
    network_shape,
    normalization_source,
    supplied_bundle,
    wrap_declared,
)

N_RANDOM, N_TEST = 4, 4  # sample images of the load check: seeded uniform noise and the first test images


@dataclass
class OnnxParams(SuppliedParams):
    """Settings of the `onnx` model provider."""

    path: str  # an .onnx file mapping images N×C×H×W to N×K logits; relative to the plan's directory
    backend: Literal["auto", "torch", "onnxruntime"] = "auto"
    check_tolerance: float = field(default=1e-4, metadata={"gt": 0})  # × max(1, largest |logit|)


def read_model(path: Path) -> onnx.ModelProto:
    """The parsed and checked ONNX model; ModelError naming the file otherwise."""
    if not path.is_file():
        raise ModelError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelError(f"{path}: not a valid ONNX model ({first_line(exc)})") from None
    return model


def check_input_shape(model: onnx.ModelProto, expected: tuple[int, ...], path: Path) -> int | None:
    """The model's fixed batch size (None when free); ModelError when its C×H×W (volumes: C×D×H×W) differs from
    what it is fed."""
    try:
        dims = declared_shape(graph_input(model))
    except UnsupportedOnnx as exc:
        raise ModelError(f"{path}: {exc}") from None
    mismatch = any(d is not None and d != e for d, e in zip(dims[1:], expected, strict=False))
    if len(dims) != len(expected) + 1 or mismatch:
        shown = "×".join("?" if d is None else str(d) for d in dims)
        raise ModelError(f"{path}: the model takes input {shown} but is fed N×{'×'.join(map(str, expected))}; "
                         "declare model.input: {size: [H, W] (volumes: [D, H, W]), channels: C} to match it")
    return dims[0]


def compare_backends(converted: nn.Module, runtime: nn.Module, images: torch.Tensor, tolerance: float,
                     path: Path, device: torch.device) -> dict[str, Any]:
    """The converted module (on `device`) against onnxruntime on `images`; ModelError when they disagree."""
    got = logits_of(converted, images.numpy(), device)
    expected = logits_of(runtime, images.numpy(), torch.device("cpu"))
    difference = float(np.abs(got - expected).max())
    allowed = tolerance * max(1.0, float(np.abs(expected).max()))
    if difference > allowed:
        raise ModelError(f"{path}: the converted model differs from onnxruntime by {difference:.3g} > {allowed:.3g} "
                         "on sample images; run it with backend: onnxruntime (no gradients)")
    return {"compared_with": f"onnxruntime {onnxruntime.__version__}", "n_images": int(len(images)),
            "max_abs_difference": difference, "tolerance": f"{tolerance:g} × max(1, largest |logit|) = {allowed:.3g}",
            "passed": True}


def sample_images(context: ModelContext) -> torch.Tensor:
    """Seeded uniform [0,1] images of the data's shape, then the first test images."""
    shape = tuple(context.dataset.image_shape)
    noise = torch.rand((N_RANDOM, *shape), generator=torch.Generator().manual_seed(0))
    test = context.dataset.splits["test"]
    real = [test[i][0] for i in range(min(N_TEST, len(test)))]
    return torch.cat([noise, torch.stack(real)]) if real else noise


class OnnxProvider:
    """Loads an ONNX model: converted to torch when every operator is supported, else through onnxruntime."""

    name = "onnx"
    description = ("Load an ONNX model: converted to torch (CNN operator subset; gradients for attacks) and "
                   "checked against onnxruntime, or run by onnxruntime alone (gradient-free attacks only).")
    Params = OnnxParams
    needs_training_data = False
    model_files = (".onnx",)  # `harness export-reference MODEL.onnx` runs the file as-is through `load_file`

    def load_file(self, path: Path) -> nn.Module:
        """The trusted model in the file, run by onnxruntime as saved (no declared contract in front)."""
        try:
            return OnnxRuntimeModule.from_model(path, read_model(path))
        except UnsupportedOnnx as exc:
            raise ModelError(f"{path}: {exc} is not supported") from None

    def provide(self, params: OnnxParams, context: ModelContext) -> ModelBundle:
        """Read, convert (or fall back), check against onnxruntime, wrap in the declared contract, bundle."""
        path = plan_path(params.path, context.base_dir)
        model = read_model(path)
        batch = check_input_shape(model, network_shape(params, context), path)
        runtime: nn.Module = OnnxRuntimeModule.from_model(path, model)
        converted: nn.Module | None = None
        fallback = None
        if params.backend != "onnxruntime":
            try:
                converted = OnnxGraph(model)
            except UnsupportedOnnx as exc:
                if params.backend == "torch":
                    raise ModelError(f"{path}: the ONNX→torch converter does not support {exc}; use backend: "
                                     "onnxruntime (or auto) to run it without gradients") from None
                fallback = f"not converted ({exc}): run by onnxruntime without gradients"
                context.log(f"onnx: {path.name}: {fallback}")
        if batch is not None:
            runtime = FixedBatch(runtime, batch)
            converted = None if converted is None else FixedBatch(converted, batch)
        provenance: dict[str, Any] = {
            "source": "onnx", "architecture": f"onnx:{model.graph.name or '?'}", "weights_path": str(path),
            "weights_sha256": file_sha256(path), "cache_hit": False, "opset": opset_of(model),
            "producer": f"{model.producer_name} {model.producer_version}".strip() or None,
            "operators": op_counts(model), "fixed_batch_size": batch,
            "backend": "torch (converted by the harness)" if converted is not None else
                       f"onnxruntime {onnxruntime.__version__} (no gradients)",
            "n_parameters": int(sum(np.prod(t.dims) for t in model.graph.initializer)),
        }
        if fallback:
            provenance["not_converted"] = fallback
        module = wrap_declared(converted if converted is not None else runtime, params, context)
        if converted is not None:
            module.to(context.device).eval()
            provenance["onnx_check"] = compare_backends(module, wrap_declared(runtime, params, context).eval(),
                                                        sample_images(context), params.check_tolerance, path,
                                                        context.device)
        return supplied_bundle(module, params, context, str(path), provenance, normalization_source(params),
                               differentiable=converted is not None)


@hookimpl
def harness_register_models() -> list[object]:
    """The onnx model provider."""
    return [OnnxProvider()]
