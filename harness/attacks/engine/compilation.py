"""`engine.compile`: torch.compile of the attack model, checked against eager, with an eager fallback."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from harness.attacks.engine.model_probe import CHECK_IMAGES, first_line, input_gradient_of_logit_sum

COMPILE_RTOL = 1e-3  # compiled vs eager, float32 (kernels may reorder sums)
AUTOCAST_RTOL = 5e-2  # compiled vs eager under autocast
RECOMPILE_LIMIT = 32  # compiled graphs per function (grad and no-grad modes × batch-size specialisations)


class CompiledOrEager(nn.Module):
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
                self.fallback_reason = first_line(exc)
                warnings.warn(f"engine.compile: compiled model failed ({self.fallback_reason}); continuing eager",
                              RuntimeWarning, stacklevel=2)
        return self.eager(x)



def compiled_or_eager(model: nn.Module, sample: torch.Tensor, reduced: bool, notes: list[str]) -> nn.Module:
    """torch.compile(model), compiled now on the sample and checked against eager; eager if either fails."""
    try:
        _fresh_compiler_caches()
        compiled = torch.compile(model)
        input_gradient_of_logit_sum(compiled, _batch_dynamic(sample))
        error = _same_precision_error(compiled, model, _batch_dynamic(sample[:CHECK_IMAGES]))
    except Exception as exc:  # noqa: BLE001 - a missing compiler, an unsupported op...: eager still works
        notes.append(f"engine.compile: torch.compile failed ({first_line(exc)}); the model runs eager")
        return model
    tolerance = AUTOCAST_RTOL if reduced else COMPILE_RTOL
    if not error <= tolerance:
        notes.append(f"engine.compile: compiled logits differ from eager by {error:.2e} of the largest logit "
                     f"(tolerance {tolerance:g}); the model runs eager")
        return model
    return CompiledOrEager(model, compiled).eval()


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

