"""Restarts shared by the native attacks: attack again, from a new start, only the images not yet fooled."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harness.attacks.model_mode import eval_mode

Attempt = Callable[[torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]  # (rows, last) → (adv, hit)


def with_restarts(model: nn.Module, images: torch.Tensor, restarts: int, attempt: Attempt) -> torch.Tensor:
    """Run `attempt(rows, last)` up to `restarts` times in eval mode, each time on the rows of `images` that no
    attempt has fooled yet; per image the first success is kept, else the last attempt's iterate. An attempt
    that returns no success mask (hit None) ends the restarts."""
    result = images.detach().clone()
    todo = torch.arange(len(images), device=images.device)
    with eval_mode(model):
        for attempt_index in range(max(1, restarts)):
            adv, hit = attempt(todo, attempt_index == max(1, restarts) - 1)
            result[todo] = adv
            if hit is None:
                break
            todo = todo[~hit]
            if not len(todo):
                break
    return result
