"""ONNX operators as torch functions, for the CNN subset medical classifiers use (opset 11 and later).

Each function takes the node's attributes and its input tensors (None for an omitted optional input) and returns
its outputs. An attribute value this subset does not implement raises UnsupportedOnnx naming the node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from onnx import numpy_helper

Tensor = torch.Tensor
Attrs = dict[str, Any]


class UnsupportedOnnx(Exception):
    """An operator or attribute value the converter does not implement (the message names it)."""


def _ints(tensor: Tensor | None) -> list[int] | None:
    """An int64 shape/axes/pads input as a Python list."""
    return None if tensor is None else [int(v) for v in tensor.reshape(-1).tolist()]


def _pads_to_torch(pads: Sequence[int]) -> list[int]:
    """ONNX [x1_begin, x2_begin, ..., x1_end, x2_end, ...] → torch F.pad order (last dimension first)."""
    n = len(pads) // 2
    out: list[int] = []
    for dim in reversed(range(n)):
        out += [pads[dim], pads[dim + n]]
    return out


def _spatial_pads(attrs: Attrs, spatial: int, op: str) -> list[int]:
    """Explicit pads of a conv/pool node (auto_pad NOTSET or VALID)."""
    auto = attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        raise UnsupportedOnnx(f"{op} with auto_pad {auto}")
    return list(attrs.get("pads", [0] * 2 * spatial)) if auto == "NOTSET" else [0] * 2 * spatial


def _symmetric(pads: list[int]) -> list[int] | None:
    """Per-dimension padding when begin == end, else None."""
    n = len(pads) // 2
    return pads[:n] if pads[:n] == pads[n:] else None


def conv(attrs: Attrs, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Conv (1D/2D/3D, groups, dilations, asymmetric pads)."""
    spatial = weight.ndim - 2
    functions = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
    if spatial not in functions:
        raise UnsupportedOnnx(f"Conv with {spatial} spatial dimensions")
    pads = _spatial_pads(attrs, spatial, "Conv")
    padding = _symmetric(pads)
    if padding is None:
        x, padding = F.pad(x, _pads_to_torch(pads)), [0] * spatial
    return functions[spatial](x, weight, bias, stride=attrs.get("strides", [1] * spatial), padding=padding,
                              dilation=attrs.get("dilations", [1] * spatial), groups=attrs.get("group", 1))


def batch_norm(attrs: Attrs, x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """BatchNormalization in inference mode (running statistics are constants)."""
    return F.batch_norm(x, mean.detach(), var.detach(), scale, bias, training=False, eps=attrs.get("epsilon", 1e-5))


_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _pool(kind: str, attrs: Attrs, x: Tensor) -> Tensor:
    """MaxPool or AveragePool (1D/2D/3D), with ceil_mode, dilations (max) and count_include_pad (average)."""
    kernel = list(attrs["kernel_shape"])
    spatial = len(kernel)
    if spatial not in _MAX_POOL:
        raise UnsupportedOnnx(f"{kind} over {spatial} spatial dimensions")
    pads = _spatial_pads(attrs, spatial, kind)
    strides, ceil = list(attrs.get("strides", [1] * spatial)), bool(attrs.get("ceil_mode", 0))
    padding = _symmetric(pads)
    if kind == "MaxPool":
        if padding is None:
            x, padding = F.pad(x, _pads_to_torch(pads), value=float("-inf")), [0] * spatial
        return _MAX_POOL[spatial](x, kernel, strides, padding, dilation=list(attrs.get("dilations", [1] * spatial)),
                                  ceil_mode=ceil)
    if padding is None:
        raise UnsupportedOnnx("AveragePool with asymmetric pads")
    if any(d != 1 for d in attrs.get("dilations", [1] * spatial)):
        raise UnsupportedOnnx("AveragePool with dilations")
    return _AVG_POOL[spatial](x, kernel, strides, padding, ceil_mode=ceil,
                              count_include_pad=bool(attrs.get("count_include_pad", 0)))


def gemm(attrs: Attrs, a: Tensor, b: Tensor, c: Tensor | None = None) -> Tensor:
    """alpha · A' · B' + beta · C."""
    a = a.transpose(0, 1) if attrs.get("transA", 0) else a
    b = b.transpose(0, 1) if attrs.get("transB", 0) else b
    out = attrs.get("alpha", 1.0) * (a @ b)
    return out if c is None else out + attrs.get("beta", 1.0) * c


def flatten(attrs: Attrs, x: Tensor) -> Tensor:
    """Flatten to 2D at `axis`."""
    axis = attrs.get("axis", 1)
    axis = axis % x.ndim if axis < 0 else axis
    leading = 1
    for size in x.shape[:axis]:
        leading *= int(size)
    return x.reshape(leading, -1)


def reshape(attrs: Attrs, x: Tensor, shape: Tensor) -> Tensor:
    """Reshape; a 0 copies the input's dimension unless allowzero."""
    target = _ints(shape) or []
    if not attrs.get("allowzero", 0):
        target = [int(x.shape[i]) if v == 0 else v for i, v in enumerate(target)]
    return x.reshape(target)


def pad(attrs: Attrs, x: Tensor, pads: Tensor | None = None, value: Tensor | None = None,
        axes: Tensor | None = None) -> Tensor:
    """Pad (constant, reflect, edge); pads from the input (opset ≥ 11) or the attribute."""
    mode = attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if torch_mode is None:
        raise UnsupportedOnnx(f"Pad mode {mode}")
    amounts = _ints(pads) if pads is not None else list(attrs.get("pads", []))
    if axes is not None:
        full = [0] * (2 * x.ndim)
        chosen = [a % x.ndim for a in _ints(axes) or []]
        for i, axis in enumerate(chosen):
            full[axis], full[axis + x.ndim] = amounts[i], amounts[i + len(chosen)]
        amounts = full
    torch_pads = _pads_to_torch(amounts)
    while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:  # F.pad pads the last dimensions first
        torch_pads = torch_pads[:-2]
    fill = float(value.reshape(-1)[0]) if value is not None and value.numel() else attrs.get("value", 0.0)
    return F.pad(x, torch_pads, mode=torch_mode, value=fill) if torch_mode == "constant" else \
        F.pad(x, torch_pads, mode=torch_mode)


def clip(attrs: Attrs, x: Tensor, low: Tensor | None = None, high: Tensor | None = None) -> Tensor:
    """Clip to [min, max] (inputs from opset 11, attributes before)."""
    low = low if low is not None else (torch.tensor(attrs["min"]) if "min" in attrs else None)
    high = high if high is not None else (torch.tensor(attrs["max"]) if "max" in attrs else None)
    return torch.clamp(x, min=low, max=high)


def resize(attrs: Attrs, x: Tensor, roi: Tensor | None = None, scales: Tensor | None = None,
           sizes: Tensor | None = None) -> Tensor:
    """Resize of the spatial dimensions: nearest (asymmetric, floor) or linear (half_pixel or align_corners)."""
    text = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
    mode = text.get("mode", "nearest")
    transform = text.get("coordinate_transformation_mode", "half_pixel")
    if sizes is not None and sizes.numel():
        size = _ints(sizes)[2:]
        factors = None
    else:
        values = [float(v) for v in (scales.reshape(-1).tolist() if scales is not None else [])]
        if len(values) < 3 or values[:2] != [1.0, 1.0]:
            raise UnsupportedOnnx(f"Resize with scales {values} (only spatial dimensions can be resized)")
        size, factors = None, values[2:]
    if mode == "nearest":
        nearest = text.get("nearest_mode", "round_prefer_floor")
        if transform == "asymmetric" and nearest == "floor":
            return F.interpolate(x, size=size, scale_factor=factors, mode="nearest")
        if transform in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil":
            return F.interpolate(x, size=size, scale_factor=factors, mode="nearest-exact")
        raise UnsupportedOnnx(f"Resize nearest with coordinate_transformation_mode {transform} and nearest_mode "
                              f"{nearest}")
    if mode == "linear" and x.ndim in (4, 5) and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        return F.interpolate(x, size=size, scale_factor=factors, mode="bilinear" if x.ndim == 4 else "trilinear",
                             align_corners=transform == "align_corners")
    raise UnsupportedOnnx(f"Resize mode {mode} with coordinate_transformation_mode {transform}")


def softmax(attrs: Attrs, x: Tensor, opset: int, log: bool = False) -> Tensor:
    """Softmax / LogSoftmax: over `axis` (opset ≥ 13), or over the flattened dimensions from `axis` before."""
    function = F.log_softmax if log else F.softmax
    if opset >= 13:
        return function(x, dim=attrs.get("axis", -1))
    axis = attrs.get("axis", 1) % x.ndim
    return function(x.reshape(*x.shape[:axis], -1), dim=-1).reshape(x.shape)


def _axes(attrs: Attrs, axes: Tensor | None) -> list[int] | None:
    """Axes from the input (opset ≥ 13/18) or the attribute."""
    return _ints(axes) if axes is not None else attrs.get("axes")


def unsqueeze(attrs: Attrs, x: Tensor, axes: Tensor | None = None) -> Tensor:
    """Insert size-1 dimensions."""
    chosen = _axes(attrs, axes) or []
    rank = x.ndim + len(chosen)
    for axis in sorted(a % rank for a in chosen):
        x = x.unsqueeze(axis)
    return x


def squeeze(attrs: Attrs, x: Tensor, axes: Tensor | None = None) -> Tensor:
    """Remove size-1 dimensions (all of them when no axes are given)."""
    chosen = _axes(attrs, axes)
    if chosen is None:
        return x.squeeze()
    for axis in sorted((a % x.ndim for a in chosen), reverse=True):
        x = x.squeeze(axis)
    return x


def reduce_mean(attrs: Attrs, x: Tensor, axes: Tensor | None = None) -> Tensor:
    """Mean over axes (all when none, unless noop_with_empty_axes)."""
    chosen = _axes(attrs, axes)
    keep = bool(attrs.get("keepdims", 1))
    if not chosen:
        return x if attrs.get("noop_with_empty_axes", 0) else x.mean(dim=tuple(range(x.ndim)), keepdim=keep)
    return x.mean(dim=tuple(chosen), keepdim=keep)


def gather(attrs: Attrs, x: Tensor, indices: Tensor) -> Tensor:
    """Gather along `axis` (negative indices count from the end)."""
    axis = attrs.get("axis", 0) % x.ndim
    index = torch.where(indices < 0, indices + x.shape[axis], indices).long()
    return torch.index_select(x, axis, index.reshape(-1)).reshape(
        (*x.shape[:axis], *index.shape, *x.shape[axis + 1:]))


def divide(attrs: Attrs, a: Tensor, b: Tensor) -> Tensor:
    """Div: integer division truncates, as ONNX defines it."""
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def slice_(attrs: Attrs, x: Tensor, starts: Tensor, ends: Tensor, axes: Tensor | None = None,
           steps: Tensor | None = None) -> Tensor:
    """Slice with Python's rules for out-of-range bounds; negative steps walk backwards."""
    begin, end = _ints(starts) or [], _ints(ends) or []
    chosen = _ints(axes) or list(range(len(begin)))
    strides = _ints(steps) or [1] * len(begin)
    for first, last, axis, stride in zip(begin, end, chosen, strides, strict=True):
        axis %= x.ndim
        kept = range(*slice(first, last, stride).indices(int(x.shape[axis])))
        x = torch.index_select(x, axis, torch.tensor(list(kept), dtype=torch.long, device=x.device))
    return x


def constant_of_shape(attrs: Attrs, shape: Tensor) -> Tensor:
    """A tensor of `shape` filled with the `value` attribute (float 0 by default)."""
    value = attrs.get("value")
    fill = torch.from_numpy(numpy_helper.to_array(value).copy()) if value is not None else torch.zeros(1)
    return fill.reshape(-1)[0].expand(_ints(shape) or []).clone()


ONNX_TO_TORCH_DTYPE = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32,
                       7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}


def cast(attrs: Attrs, x: Tensor) -> Tensor:
    """Cast to the element type `to`."""
    dtype = ONNX_TO_TORCH_DTYPE.get(attrs["to"])
    if dtype is None:
        raise UnsupportedOnnx(f"Cast to ONNX element type {attrs['to']}")
    return x.to(dtype)


def _single(function: Callable[..., Tensor]) -> Callable[..., list[Tensor]]:
    """Wrap a one-output op."""
    return lambda attrs, opset, *inputs: [function(attrs, *inputs)]


def _dropout(attrs: Attrs, opset: int, x: Tensor, *rest: Tensor | None) -> list[Tensor]:
    """Dropout in inference: the input itself, and an all-true mask."""
    return [x, torch.ones_like(x, dtype=torch.bool)]


OPS: dict[str, Callable[..., list[Tensor]]] = {
    "Conv": _single(conv),
    "BatchNormalization": _single(batch_norm),
    "Relu": _single(lambda a, x: F.relu(x)),
    "LeakyRelu": _single(lambda a, x: F.leaky_relu(x, a.get("alpha", 0.01))),
    "Sigmoid": _single(lambda a, x: torch.sigmoid(x)),
    "Tanh": _single(lambda a, x: torch.tanh(x)),
    "MaxPool": _single(lambda a, x: _pool("MaxPool", a, x)),
    "AveragePool": _single(lambda a, x: _pool("AveragePool", a, x)),
    "GlobalAveragePool": _single(lambda a, x: x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)),
    "GlobalMaxPool": _single(lambda a, x: x.amax(dim=tuple(range(2, x.ndim)), keepdim=True)),
    "Gemm": _single(gemm),
    "MatMul": _single(lambda a, x, y: torch.matmul(x, y)),
    "Flatten": _single(flatten),
    "Reshape": _single(reshape),
    "Add": _single(lambda a, x, y: x + y),
    "Sub": _single(lambda a, x, y: x - y),
    "Mul": _single(lambda a, x, y: x * y),
    "Div": _single(divide),
    "Concat": _single(lambda a, *xs: torch.cat(list(xs), dim=a["axis"])),
    "Pad": _single(pad),
    "Clip": _single(clip),
    "Resize": _single(resize),
    "Softmax": lambda a, opset, x: [softmax(a, x, opset)],
    "LogSoftmax": lambda a, opset, x: [softmax(a, x, opset, log=True)],
    "Transpose": _single(lambda a, x: x.permute(*(a.get("perm") or reversed(range(x.ndim))))),
    "Shape": _single(lambda a, x: torch.tensor(x.shape[a.get("start", 0):a.get("end")], dtype=torch.int64)),
    "Gather": _single(gather),
    "Unsqueeze": _single(unsqueeze),
    "Squeeze": _single(squeeze),
    "ReduceMean": _single(reduce_mean),
    "Cast": _single(cast),
    "Identity": _single(lambda a, x: x),
    "Slice": _single(slice_),
    "ConstantOfShape": _single(constant_of_shape),
    "Dropout": _dropout,
}
