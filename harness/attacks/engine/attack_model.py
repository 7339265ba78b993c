"""The model attacks run on: the plan's `engine:` options applied to a frozen eval-mode copy, each one checked.

`prepare_attack_model` turns a float32 eager classifier into the module attacks run on, following the plan's
`engine:` section (plan.EngineSettings). Every option is checked against the float32 eager model on a sample
batch; an option that fails or changes the logits is dropped with a warning, so a speed option never silently
changes a number. The caller's module is never modified: options work on an eval-mode copy.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.attacks.engine.batchnorm import fold_checked
from harness.attacks.engine.compilation import compiled_or_eager
from harness.attacks.engine.model_probe import CHECK_IMAGES, frozen_eval_copy
from harness.plan.schema import EngineSettings

FP16_GRAD_SCALE = 1024.0  # fp16 autocast: gradients inside the fp16 region are scaled by this, then unscaled
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def prepare_attack_model(module: nn.Module, settings: EngineSettings, device: torch.device,
                         sample: torch.Tensor) -> tuple[nn.Module, list[str]]:
    """The module attacks should use, and warnings for options that were dropped or deserve a note.

    `sample` is a batch of test images in [0,1] (e.g. the first batch); its first images check each option
    numerically and, with `compile`, the whole batch triggers compilation (forward and input gradient).
    With every option off the caller's module itself is returned, so the numbers are exactly as before.
    """
    notes: list[str] = []
    if not engine_options_on(settings):
        return module, notes
    device = torch.device(device)
    sample = sample.detach().to(device, torch.float32)
    model = frozen_eval_copy(module, device)
    if settings.fold_batchnorm:
        model = fold_checked(model, sample[:CHECK_IMAGES], notes)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = _autocast_dtype(settings.autocast, device, notes)
    wrapped = AttackModule(model, channels_last=settings.channels_last, autocast_dtype=dtype,
                           device_type=device.type).eval()
    if dtype is not None:
        _note_autocast_agreement(model, wrapped, sample[:CHECK_IMAGES], settings.autocast, notes)
    if settings.compile:
        wrapped = compiled_or_eager(wrapped, sample, dtype is not None, notes)
    wrapped.static_shapes = settings.static_shapes  # read by the sweep and the native attacks
    return wrapped, notes


def engine_options_on(settings: EngineSettings) -> bool:
    """Whether any option changes the model attacks use or how they batch it (determinism does not)."""
    return bool(settings.channels_last or settings.compile or settings.fold_batchnorm or settings.autocast != "none"
                or settings.static_shapes)



class _GradScale(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by a constant (keeps fp16 gradients off zero)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class AttackModule(nn.Module):
    """The model as attacks see it: channels_last inputs, forward under autocast, float32 logits."""

    def __init__(self, inner: nn.Module, channels_last: bool = False, autocast_dtype: torch.dtype | None = None,
                 device_type: str = "cpu") -> None:
        super().__init__()
        self.inner = inner
        self.channels_last = channels_last
        self.autocast_dtype = autocast_dtype
        self.device_type = device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 logits for [0,1] images."""
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is None:
            return self.inner(x)
        scale = FP16_GRAD_SCALE if self.autocast_dtype == torch.float16 else 1.0
        if scale != 1.0:
            x = _GradScale.apply(x, 1.0 / scale)
        with torch.autocast(self.device_type, dtype=self.autocast_dtype):
            logits = self.inner(x)
        logits = logits.float()
        return _GradScale.apply(logits, scale) if scale != 1.0 else logits



def _autocast_dtype(name: str, device: torch.device, notes: list[str]) -> torch.dtype | None:
    """The autocast dtype for `engine.autocast`, with a note where it is not what it is meant for."""
    if name == "none":
        return None
    dtype = _AUTOCAST_DTYPES[name]
    if device.type != "cuda":
        notes.append(f"engine.autocast={name} on {device.type}: reduced precision is meant for CUDA; on CPU it "
                     "is often slower than float32 and is used here only because the plan asks for it")
    return dtype


@torch.no_grad()
def _note_autocast_agreement(model: nn.Module, wrapped: nn.Module, sample: torch.Tensor, name: str,
                             notes: list[str]) -> None:
    """A note when reduced precision changes the predicted class of a sample image (vs the float32 model)."""
    reference = model(sample).float()
    logits = wrapped(sample)
    changed = int((logits.argmax(1) != reference.argmax(1)).sum())
    if changed:
        notes.append(f"engine.autocast={name}: {changed} of {len(sample)} sample images change their predicted "
                     "class relative to float32")

