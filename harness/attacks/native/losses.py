"""Per-sample attack losses (larger = more adversarial) and the success test native attacks stop on.

Every loss is called as `loss(logits, rows)`: the float32 logits of the rows of the batch still being attacked,
and those rows' indices into the batch (so a loss can look up each row's label, target or reference).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, rows) → loss per row
Success = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, rows) → bool per row
DLR_FLOOR = 1e-12


def cross_entropy(labels: torch.Tensor) -> PerSampleLoss:
    """Cross-entropy against the true labels (the untargeted attack loss of FGSM, BIM, PGD and APGD-CE)."""
    return lambda logits, rows: F.cross_entropy(logits, labels[rows], reduction="none")


def margin(labels: torch.Tensor) -> PerSampleLoss:
    """max_{j≠y} z_j − z_y: positive exactly when the image is misclassified (Carlini & Wagner's margin)."""
    def loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        y = labels[rows]
        true = logits.gather(1, y[:, None])[:, 0]
        others = logits.scatter(1, y[:, None], float("-inf"))
        return others.amax(1) - true
    return loss


def targeted_dlr(labels: torch.Tensor, targets: torch.Tensor, clean_spread: torch.Tensor) -> PerSampleLoss:
    """Targeted Difference of Logits Ratio (Croce & Hein 2020): −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2).

    The denominator makes the loss invariant to the logits' scale. It needs 4 classes; with fewer, the
    denominator is `clean_spread` (z_π1 − z_πK of the clean image, fixed), which keeps the scale invariance and,
    unlike a ratio of two equal margins, a non-zero gradient.
    """
    def loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        y, t = labels[rows], targets[rows]
        gap = logits.gather(1, y[:, None])[:, 0] - logits.gather(1, t[:, None])[:, 0]
        if logits.shape[1] >= 4:
            ranked = logits.sort(dim=1, descending=True).values
            spread = ranked[:, 0] - (ranked[:, 2] + ranked[:, 3]) / 2
        else:
            spread = clean_spread[rows]
        return -gap / (spread + DLR_FLOOR)
    return loss


def logit_spread(logits: torch.Tensor) -> torch.Tensor:
    """z_π1 − z_πK per sample: the fixed DLR denominator for models with fewer than 4 classes."""
    return (logits.amax(1) - logits.amin(1)).detach()


def misclassified(labels: torch.Tensor) -> Success:
    """The untargeted success test: the prediction differs from the label."""
    return lambda logits, rows: logits.argmax(1) != labels[rows]
