"""Load-time checks of what a model returns, in the manner of AutoAttack's `checks.py`.

One forward pass twice on the same batch of test images: the output width against the declared contract and the
data set's classes (ModelError), values that cannot be what the plan declares (ModelError), probabilities where
the plan says logits (a warning: cross-entropy on probabilities weakens gradient attacks), and two passes that
differ (dropout or stochastic preprocessing in eval mode: a warning that attacks need EOT).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from harness.attacks.heads import check_width
from harness.errors import ModelError

SUM_TOLERANCE = 1e-3  # a row "sums to 1" within this
STOCHASTIC_TOLERANCE = 1e-5  # two passes "differ" beyond this (relative to the outputs' scale)


@dataclass
class OutputReport:
    """What the checks found: one-line warnings, and whether two passes differed."""

    warnings: list[str] = field(default_factory=list)
    stochastic: bool = False


@torch.no_grad()
def check_outputs(module: nn.Module, images: torch.Tensor, output: str, n_classes: int, what: str) -> OutputReport:
    """Run the checks on `images` (a few [0,1] test images on the model's device); ModelError for a contract the
    outputs contradict, warnings for the rest."""
    first, second = module(images), module(images)
    if not isinstance(first, torch.Tensor) or first.ndim != 2:
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
        raise ModelError(f"{what}: expected an N×K output tensor, got {shape}")
    check_width(int(first.shape[1]), output, n_classes, what)
    first, second = first.double(), second.double()
    report = OutputReport()
    in_unit = bool(((first >= 0) & (first <= 1)).all())
    sums_to_one = bool(((first.sum(1) - 1).abs() <= SUM_TOLERANCE).all())
    if output == "probabilities" and not (in_unit and sums_to_one):
        raise ModelError(f"{what}: the plan says output: probabilities but the rows do not lie in [0, 1] and sum "
                         "to 1; declare output: logits")
    if output == "sigmoid_probability" and not in_unit:
        raise ModelError(f"{what}: the plan says output: sigmoid_probability but outputs lie outside [0, 1]; "
                         "declare output: sigmoid_logit")
    if output == "logits" and in_unit and sums_to_one:
        report.warnings.append(f"{what}: every output row sums to 1 while the plan says output: logits; these look "
                               "like softmax probabilities (declare output: probabilities): cross-entropy on "
                               "probabilities weakens gradient attacks")
    elif output == "logits" and in_unit:
        report.warnings.append(f"{what}: every output lies in [0, 1] while the plan says output: logits; these look "
                               "like probabilities (declare output: probabilities or sigmoid_probability)")
    elif output == "sigmoid_logit" and in_unit:
        report.warnings.append(f"{what}: every output lies in [0, 1] while the plan says output: sigmoid_logit; "
                               "these look like probabilities (declare output: sigmoid_probability)")
    scale = float(first.abs().max()) or 1.0
    difference = float((first - second).abs().max())
    if difference > STOCHASTIC_TOLERANCE * max(scale, 1.0):
        report.stochastic = True
        report.warnings.append(f"{what}: two forward passes on the same images differ (max |difference| "
                               f"{difference:.3g}): dropout or stochastic preprocessing in eval mode; gradient "
                               "attacks then need EOT (expectation over transformation) and may understate the risk")
    return report
