"""An ONNX graph as a torch module: its nodes run in order with torch ops, so attacks get input gradients."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from harness_plugins.models.onnx.ops import OPS, UnsupportedOnnx

MIN_OPSET = 11
FLOAT = onnx.TensorProto.FLOAT
CONSTANT_VALUES = ("value", "value_float", "value_floats", "value_int", "value_ints")


def opset_of(model: onnx.ModelProto) -> int:
    """The default-domain opset the model was exported for."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each operator the graph has (for provenance)."""
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """Operators (with their domain where not the default) that the converter does not implement."""
    bad = []
    for node in model.graph.node:
        domain = "" if node.domain in ("", "ai.onnx") else f"{node.domain}."
        if domain or (node.op_type not in OPS and node.op_type != "Constant"):
            bad.append(f"{domain}{node.op_type}")
    return sorted(set(bad))


def graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The one graph input that is not an initializer (the image batch)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedOnnx(f"a graph with {len(inputs)} inputs (the harness feeds one image batch)")
    return inputs[0]


def declared_shape(value: onnx.ValueInfoProto) -> list[int | None]:
    """The declared dimensions of a graph input (None where symbolic or unknown)."""
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A torch tensor owning a copy of an ONNX array; floating point as float32."""
    tensor = torch.from_numpy(np.array(array, copy=True))
    return tensor.float() if tensor.is_floating_point() else tensor


def _constant(node: onnx.NodeProto) -> torch.Tensor:
    """The value of a Constant node."""
    for attribute in node.attribute:
        if attribute.name in CONSTANT_VALUES:
            value = helper.get_attribute_value(attribute)
            array = numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)
            return _tensor(array)
    raise UnsupportedOnnx(f"Constant node '{node.name}' without a tensor value")


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values (strings stay bytes; ops decode what they read)."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class OnnxGraph(nn.Module):
    """Runs an ONNX graph with torch ops; float initializers are parameters, the rest buffers."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        self.opset = opset_of(model)
        if self.opset < MIN_OPSET:
            raise UnsupportedOnnx(f"opset {self.opset} (the converter reads opset {MIN_OPSET} and later)")
        bad = unsupported_ops(model)
        if bad:
            raise UnsupportedOnnx(f"operator{'s' if len(bad) > 1 else ''} {', '.join(bad)}")
        source = graph_input(model)
        if source.type.tensor_type.elem_type != FLOAT:
            raise UnsupportedOnnx("a graph input that is not float32")
        if len(model.graph.output) != 1:
            raise UnsupportedOnnx(f"a graph with {len(model.graph.output)} outputs (the harness reads one: logits)")
        self.input_name, self.output_name = source.name, model.graph.output[0].name
        self.params = nn.ParameterDict()
        self.slots: dict[str, str] = {}  # ONNX value name → parameter or buffer key
        for i, initializer in enumerate(model.graph.initializer):
            self._store(f"t{i}", initializer.name, _tensor(numpy_helper.to_array(initializer)))
        self.nodes: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
        for i, node in enumerate(model.graph.node):
            if node.op_type == "Constant":
                self._store(f"c{i}", node.output[0], _constant(node))
            else:
                self.nodes.append((node.op_type, list(node.input), list(node.output), _attributes(node)))

    def _store(self, key: str, name: str, tensor: torch.Tensor) -> None:
        """Keep a float tensor as a parameter and any other as a buffer, reachable by its ONNX name."""
        if tensor.is_floating_point():
            self.params[key] = nn.Parameter(tensor)
        else:
            self.register_buffer(key, tensor)
        self.slots[name] = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The graph's output for an input batch."""
        values: dict[str, torch.Tensor] = {self.input_name: x}
        for name, key in self.slots.items():
            values[name] = self.params[key] if key in self.params else getattr(self, key)
        for op_type, inputs, outputs, attributes in self.nodes:
            arguments = [values[name] if name else None for name in inputs]
            for name, value in zip(outputs, OPS[op_type](attributes, self.opset, *arguments), strict=False):
                if name:
                    values[name] = value
        return values[self.output_name]


class FixedBatch(nn.Module):
    """Feeds a model exported for a fixed batch size `size` in chunks of exactly that size (the last one padded)."""

    def __init__(self, module: nn.Module, size: int) -> None:
        super().__init__()
        self.module, self.size = module, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs for any number of rows."""
        outputs = []
        for start in range(0, x.shape[0], self.size):
            chunk = x[start:start + self.size]
            rows = chunk.shape[0]
            if rows < self.size:
                chunk = torch.cat([chunk, chunk[-1:].expand(self.size - rows, *chunk.shape[1:])])
            outputs.append(self.module(chunk)[:rows])
        return torch.cat(outputs)
