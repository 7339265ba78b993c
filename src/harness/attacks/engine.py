"""Engine options for attacks: the model the attacks use, the batch size that fits, and determinism.

`prepare_attack_model` turns a float32 eager classifier into the module attacks run on, following the plan's
`engine:` section (plan.EngineSettings). Every option is checked against the float32 eager model on a sample
batch; an option that fails or changes the logits is dropped with a warning, so a speed option never silently
changes a number. The caller's module is never modified: options work on an eval-mode copy.
"""

from __future__ import annotations

import copy
import math
import os
import warnings

import torch
from torch import nn

from harness.attacks.sweep import eval_mode
from harness.plan.schema import EngineSettings

FOLD_RTOL = 1e-4  # folded logits must match within this fraction of the largest |logit|
COMPILE_RTOL = 1e-3  # compiled vs eager, float32 (kernels may reorder sums)
AUTOCAST_RTOL = 5e-2  # compiled vs eager under autocast
CHECK_IMAGES = 8  # images of the sample used for the numerical checks
FP16_GRAD_SCALE = 1024.0  # fp16 autocast: gradients inside the fp16 region are scaled by this, then unscaled
DEVICE_MEMORY_FRACTION = 0.8  # auto_batch_size keeps the forward+backward peak under this share of the device
# CPU: small batches stay in cache; small_cnn 64×64 input-gradient throughput (1 thread) fell from 280 images/s at
# batch 16–32 to 220 at 64 and 135 at 256, so the CPU rule aims at ~32 images of 64×64 per batch.
CPU_BATCH_PIXELS = 32 * 64 * 64
CPU_MIN_BATCH, CPU_MAX_BATCH = 4, 64
CUBLAS_WORKSPACE = ":4096:8"
RECOMPILE_LIMIT = 32  # compiled graphs per function (grad and no-grad modes × batch-size specialisations)
_MONAI_RESNET_PAIRS = {"ResNet": (("conv1", "bn1"),),
                       "ResNetBlock": (("conv1", "bn1"), ("conv2", "bn2")),
                       "ResNetBottleneck": (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))}
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# ------------------------------------------------------------------------------------------ public API


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
    model = _frozen_eval_copy(module, device)
    if settings.fold_batchnorm:
        model = _fold_checked(model, sample[:CHECK_IMAGES], notes)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = _autocast_dtype(settings.autocast, device, notes)
    wrapped = AttackModule(model, channels_last=settings.channels_last, autocast_dtype=dtype,
                           device_type=device.type).eval()
    if dtype is not None:
        _note_autocast_agreement(model, wrapped, sample[:CHECK_IMAGES], settings.autocast, notes)
    if settings.compile:
        wrapped = _compiled_or_eager(wrapped, sample, dtype is not None, notes)
    return wrapped, notes


def engine_options_on(settings: EngineSettings) -> bool:
    """Whether any option changes the model attacks use (determinism does not)."""
    return bool(settings.channels_last or settings.compile or settings.fold_batchnorm or settings.autocast != "none")


def auto_batch_size(model: nn.Module, sample_shape: tuple[int, ...], device: torch.device, start: int = 1024,
                    limit: int | None = None) -> int:
    """The batch size for attacks: the largest power of two whose forward+backward w.r.t. the input fits.

    On CUDA, batches from `start` (capped at the power of two ≥ `limit`, e.g. the test-set size) are tried
    with random inputs and halved on out-of-memory or when the peak passes 80 % of the device memory; the
    attack itself holds a few more batch-sized tensors, which the margin leaves room for. Elsewhere a fixed
    size by image size: about 32 × 64×64 input values per batch (32 at 1×64×64, 8 at 1×128×128, 4 from 1×224×224).
    """
    device = torch.device(device)
    shape = tuple(sample_shape[-3:])
    cap = start if limit is None else min(start, 1 << max(0, math.ceil(math.log2(max(1, limit)))))
    if device.type != "cuda":
        return max(1, min(_cpu_batch_size(shape), cap))
    batch = 1 << max(0, int(math.log2(max(1, cap))))
    total = torch.cuda.get_device_properties(device).total_memory
    while batch > 1:
        if _fits(model, shape, batch, device, total):
            return batch
        batch //= 2
    return 1


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


# ------------------------------------------------------------------------------------------ the wrapper


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


class _CompiledOrEager(nn.Module):
    """torch.compile'd forward that falls back to eager for good if a later call fails to compile."""

    def __init__(self, eager: nn.Module, compiled: nn.Module) -> None:
        super().__init__()
        self.eager = eager
        self.compiled = compiled
        self.fallback_reason: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from the compiled model, or the eager one after a failure."""
        if self.fallback_reason is None:
            try:
                return self.compiled(x)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager model is equivalent
                self.fallback_reason = _first_line(exc)
                warnings.warn(f"engine.compile: compiled model failed ({self.fallback_reason}); continuing eager",
                              RuntimeWarning, stacklevel=2)
        return self.eager(x)


# ------------------------------------------------------------------------------------------ BatchNorm folding


def fold_batchnorm(model: nn.Module) -> int:
    """Fold eval-mode BatchNorm2d into the Conv2d before it, in place; the number of pairs folded.

    Pairs are consecutive children of an nn.Sequential and convN→bnN in MONAI ResNet, ResNetBlock and
    ResNetBottleneck. Each folded BatchNorm becomes nn.Identity. Use on a copy.
    """
    folded = 0
    for parent in list(model.modules()):
        for conv_name, bn_name in _candidate_pairs(parent):
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if _foldable(conv, bn):
                _fold_pair(conv, bn)
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


def _candidate_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) attribute names that the forward applies one right after the other."""
    if isinstance(parent, nn.Sequential):
        names = list(parent._modules)
        return list(zip(names[:-1], names[1:], strict=True))
    cls = type(parent)
    if cls.__module__.startswith("monai.") and cls.__name__ in _MONAI_RESNET_PAIRS:
        return list(_MONAI_RESNET_PAIRS[cls.__name__])
    return []


def _foldable(conv: object, bn: object) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None
            and bn.running_var is not None and conv.out_channels == bn.num_features)


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv ← bn∘conv, computed in float64: w·γ/σ and (b − μ)·γ/σ + β."""
    dtype = conv.weight.dtype
    scale = (bn.running_var.double() + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = bn.bias.double() if bn.bias is not None else torch.zeros_like(scale)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    weight = conv.weight.double() * scale.view(-1, *([1] * (conv.weight.ndim - 1)))
    conv.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + shift).to(dtype), requires_grad=False)


def _fold_checked(model: nn.Module, sample: torch.Tensor, notes: list[str]) -> nn.Module:
    """A folded copy when its logits match the model's on the sample (float64), else the model unfolded."""
    try:
        folded = _copy(model)
        count = fold_batchnorm(folded)
    except (RuntimeError, TypeError, AttributeError) as exc:  # e.g. a TorchScript module refuses new submodules
        notes.append(f"engine.fold_batchnorm: cannot fold this model ({_first_line(exc)}); it is used unfolded")
        return model
    if count == 0:
        notes.append("engine.fold_batchnorm: no Conv2d→BatchNorm2d pair found; the model is used unfolded")
        return model
    error = _relative_error(folded, model, sample)
    if not error <= FOLD_RTOL:
        notes.append(f"engine.fold_batchnorm: folded logits differ from the original by {error:.2e} of the "
                     f"largest logit (tolerance {FOLD_RTOL:g}); the model is used unfolded")
        return model
    return folded


@torch.no_grad()
def _relative_error(candidate: nn.Module, reference: nn.Module, sample: torch.Tensor) -> float:
    """max |candidate − reference| / max |reference| of the logits, both evaluated in float64.

    float64 keeps TF32 and reduced-precision kernels out of the comparison (on CPU for devices without it).
    """
    device = sample.device if sample.device.type in ("cpu", "cuda") else torch.device("cpu")
    x = sample.to(device, torch.float64)
    ref = _copy(reference).to(device, torch.float64)(x)
    out = _copy(candidate).to(device, torch.float64)(x)
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


# ------------------------------------------------------------------------------------------ other options


def _frozen_eval_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """A deep copy in eval mode on `device` with parameters frozen (attacks only need input gradients)."""
    model = _copy(module).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def _copy(module: nn.Module) -> nn.Module:
    """copy.deepcopy outside autograd (a deep-copied TorchScript module's parameters would otherwise be clones
    with a grad_fn, not leaves)."""
    return copy.deepcopy(module)


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


def _compiled_or_eager(model: nn.Module, sample: torch.Tensor, reduced: bool, notes: list[str]) -> nn.Module:
    """torch.compile(model), compiled now on the sample and checked against eager; eager if either fails."""
    try:
        _fresh_compiler_caches()
        compiled = torch.compile(model)
        _input_gradient(compiled, _batch_dynamic(sample))
        error = _same_precision_error(compiled, model, _batch_dynamic(sample[:CHECK_IMAGES]))
    except Exception as exc:  # noqa: BLE001 - a missing compiler, an unsupported op...: eager still works
        notes.append(f"engine.compile: torch.compile failed ({_first_line(exc)}); the model runs eager")
        return model
    tolerance = AUTOCAST_RTOL if reduced else COMPILE_RTOL
    if not error <= tolerance:
        notes.append(f"engine.compile: compiled logits differ from eager by {error:.2e} of the largest logit "
                     f"(tolerance {tolerance:g}); the model runs eager")
        return model
    return _CompiledOrEager(model, compiled).eval()


def _fresh_compiler_caches() -> None:
    """Forget earlier compilations and allow RECOMPILE_LIMIT graphs per function.

    Attacks call the model with and without grad mode and with batch sizes that shrink as images break (1 is
    always its own graph); past torch's default of 8 graphs a function silently runs eager. Raising the limit
    and resetting changes process-wide dynamo state: models compiled earlier recompile on their next call.
    """
    torch.compiler.reset()
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
            break


def _batch_dynamic(x: torch.Tensor) -> torch.Tensor:
    """A copy whose batch size torch.compile treats as variable (attack batches shrink as images break)."""
    x = x.detach().clone()
    mark = getattr(torch._dynamo, "maybe_mark_dynamic", None)
    if mark is not None and len(x) > 1:
        mark(x, 0)
    return x


@torch.no_grad()
def _same_precision_error(candidate: nn.Module, reference: nn.Module, sample: torch.Tensor) -> float:
    ref = reference(sample).double()
    return float((candidate(sample).double() - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def _input_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d(sum of logits)/d(input): one forward and one backward, as an attack step does.

    `x` is a fresh leaf tensor the caller owns: requires_grad is set on it in place (a copy would lose
    torch.compile's dynamic-batch mark).
    """
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).float().sum(), x)
    return grad


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ------------------------------------------------------------------------------------------ batch size


def _cpu_batch_size(shape: tuple[int, ...]) -> int:
    """About CPU_BATCH_PIXELS input values per batch, as a power of two in [CPU_MIN_BATCH, CPU_MAX_BATCH]."""
    per_image = max(1, math.prod(shape))
    batch = 1 << max(0, int(math.log2(max(1, CPU_BATCH_PIXELS // per_image))))
    return max(CPU_MIN_BATCH, min(CPU_MAX_BATCH, batch))


def _fits(model: nn.Module, shape: tuple[int, ...], batch: int, device: torch.device, total: int) -> bool:
    """Whether forward+backward w.r.t. a batch of this size runs and peaks under the memory margin."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    ran = False
    try:
        with eval_mode(model):
            _input_gradient(model, torch.rand((batch, *shape), device=device))
        torch.cuda.synchronize(device)
        ran = True
    except torch.cuda.OutOfMemoryError:
        pass
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
    torch.cuda.empty_cache()  # outside the handler, once the failed attempt's tensors are unreachable
    return ran and torch.cuda.max_memory_allocated(device) <= DEVICE_MEMORY_FRACTION * total


