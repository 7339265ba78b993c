"""What every supplied model (state_dict, torchscript, onnx) shares: the declared input contract, normalisation,
the load-time reference check, a forward check on a dummy batch, and `keep_model`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from harness.attacks.heads import check_width, expected_width
from harness.errors import ModelError, first_line
from harness.registry.contracts import ModelBundle, ModelContext
from harness_plugins.models.model_input import (
    InputParams,
    NormalizationParams,
    NormalizedClassifier,
    describe_input,
    model_input_shape,
    normalization_of,
    wrap,
)
from harness_plugins.models.reference import ReferenceParams, check_reference
from harness_plugins.models.training import evaluate

NONE_DECLARED = "none declared: the file is taken to include its own preprocessing"
EVAL_BATCH = 64


@dataclass(kw_only=True)
class SuppliedParams:
    """Settings shared by the providers that load a model someone else trained."""

    normalization: NormalizationParams | Literal["none"] | None = None
    input: InputParams | None = None
    reference: ReferenceParams | None = None
    keep_model: bool = True  # false: do not copy the model file into the run directory (very large models)


def declared_normalization(params: SuppliedParams) -> NormalizationParams | None:
    """The plan's mean/std, or None for `none` or no declaration."""
    return params.normalization if isinstance(params.normalization, NormalizationParams) else None


def normalization_source(params: SuppliedParams) -> str:
    """Where the normalisation of a model wrapped from the plan's declaration came from."""
    if params.normalization is None:
        return NONE_DECLARED
    return "none (plan: normalization: none)" if params.normalization == "none" else "plan"


def network_shape(params: SuppliedParams, context: ModelContext) -> tuple[int, ...]:
    """C, H, W (volumes: C, D, H, W) the network itself receives (the data's shape after the declared contract)."""
    return model_input_shape(context.dataset.image_shape, params.input)


def wrap_declared(network: nn.Module, params: SuppliedParams, context: ModelContext) -> nn.Module:
    """The network behind the plan's contract and normalisation; the network itself when nothing is declared."""
    if params.input is None and declared_normalization(params) is None:
        return network
    return wrap(network, context.dataset.image_shape, params.input, declared_normalization(params))


def check_logits(module: nn.Module, what: str, shape: tuple[int, ...], num_classes: int,
                 output: str = "logits") -> None:
    """A forward pass on a dummy batch of 2 must give a finite 2×W float tensor, W the width the declared output
    contract implies (harness.attacks.heads.check_width), else ModelError."""
    dummy = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0))
    device = next((t.device for t in [*module.parameters(), *module.buffers()]), torch.device("cpu"))
    try:
        with torch.no_grad():
            out = module(dummy.to(device))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{what}: forward on a dummy batch of shape {tuple(dummy.shape)} failed "
                         f"({first_line(exc)})") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{what}: expected outputs of shape (2, {expected_width(output, num_classes)}) for "
                         f"input {tuple(dummy.shape)}, got {got}")
    check_width(int(out.shape[1]), output, num_classes, what)
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        raise ModelError(f"{what}: the module's outputs are not finite floating-point logits")


def supplied_bundle(module: nn.Module, params: SuppliedParams, context: ModelContext, what: str,
                    provenance: dict[str, Any], normalization: str, differentiable: bool = True) -> ModelBundle:
    """Check the model (dummy batch, then the reference), record the input contract, and bundle it."""
    module.to(context.device).eval()
    check_logits(module, what, tuple(context.dataset.image_shape), len(context.dataset.class_names),
                 context.output)
    if isinstance(module, NormalizedClassifier):
        provenance["normalization"] = normalization_of(module, normalization)
    else:
        provenance["normalization"] = {"source": normalization}
    provenance["input"] = describe_input(context.dataset.image_shape, params.input)
    if params.reference is None:
        provenance["reference_check"] = {"kind": "none", "passed": None,
                                         "note": "no reference in the plan: the loaded model was not compared "
                                                 "with the model its authors trust"}
    else:
        provenance["reference_check"] = check_reference(
            module, params.reference, context.base_dir, context.device,
            lambda: evaluate(module, context.dataset.splits["test"], context.device, EVAL_BATCH)[0])
        context.log(f"model: reference check passed ({_describe_check(provenance['reference_check'])})")
    provenance["differentiable"] = differentiable
    return ModelBundle(module=module, provenance=provenance, differentiable=differentiable)


def _describe_check(record: dict[str, Any]) -> str:
    """One phrase for the log."""
    if record["kind"] == "logits":
        return f"max |logit difference| {record['max_abs_difference']:.3g} ≤ {record['tolerance']:g}"
    return f"test accuracy {record['measured_accuracy']:.4f} vs {record['expected_accuracy']:.4f}"
