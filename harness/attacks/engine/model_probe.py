"""Small helpers the engine modules share: copying a model, one input gradient, and one-line error text."""

from __future__ import annotations

import copy

import torch
from torch import nn

CHECK_IMAGES = 8  # images of the sample used for the numerical checks of engine options


def frozen_eval_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """A deep copy in eval mode on `device` with parameters frozen (attacks only need input gradients)."""
    model = copy_module(module).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def copy_module(module: nn.Module) -> nn.Module:
    """copy.deepcopy outside autograd (a deep-copied TorchScript module's parameters would otherwise be clones
    with a grad_fn, not leaves)."""
    return copy.deepcopy(module)


def input_gradient_of_logit_sum(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d(sum of logits)/d(input): one forward and one backward, as an attack step does.

    `x` is a fresh leaf tensor the caller owns: requires_grad is set on it in place (a copy would lose
    torch.compile's dynamic-batch mark).
    """
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).float().sum(), x)
    return grad


def first_line(exc: BaseException) -> str:
    """'Type: first line of the message', at most 300 characters (for one-line warnings)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]

