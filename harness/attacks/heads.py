"""The logits view: the one adapter from whatever a model returns to the N×K logits every consumer uses.

Attacks (native and Foolbox), the judge, the indicators, the defences, the corruptions and the clean metrics all
see `logits_view(module, output, threshold_logit)`:

- `logits`: the module itself (nothing changes);
- `sigmoid_logit` (N×1, z): the two-logit view [0, z], so softmax cross-entropy is the BCE and the margin is the
  binary logit margin;
- `probabilities` (N×K softmax rows): log-probabilities, clamped away from 0 so they stay finite;
- `sigmoid_probability` (N×1, p): [0, logit(p)], with p clamped into [δ, 1 − δ].

With an operating point (binary models only), the positive column is lowered by logit(τ): the argmax of the view
is then the device's thresholded decision (positive ⇔ P(positive) ≥ τ), and every margin and loss built on the view
is measured relative to the threshold. A shift by a constant leaves ROC AUC unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.errors import ModelError

OUTPUTS = ("logits", "sigmoid_logit", "probabilities", "sigmoid_probability")
PROBABILITY_FLOOR = 1e-12  # log-probabilities are taken of p clamped to at least this (log ≈ −27.6)
SIGMOID_CLAMP = 1e-7  # a sigmoid probability is clamped into [δ, 1 − δ] before its logit


class LogitsView(nn.Module):
    """A model behind its logits view (see the module docstring); `inner` is the model as supplied."""

    def __init__(self, inner: nn.Module, output: str, threshold_logit: float | None = None,
                 positive_class: int = 1) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r} (one of {', '.join(OUTPUTS)})")
        self.inner = inner
        self.output = output
        self.threshold_logit = threshold_logit
        self.positive_class = positive_class

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×K logits whose argmax is the decision."""
        return view_logits(self.inner(x), self.output, self.threshold_logit, self.positive_class)


def view_logits(raw: torch.Tensor, output: str, threshold_logit: float | None = None,
                positive_class: int = 1) -> torch.Tensor:
    """The logits view of a batch of raw model outputs (the function behind LogitsView, for outputs in hand)."""
    raw = raw.float()
    if output == "logits":
        view = raw
    elif output == "probabilities":
        view = raw.clamp_min(PROBABILITY_FLOOR).log()
    else:
        z = raw[:, :1]
        if output == "sigmoid_probability":
            p = z.clamp(SIGMOID_CLAMP, 1 - SIGMOID_CLAMP)
            z = p.log() - torch.log1p(-p)
        view = torch.cat([torch.zeros_like(z), z], dim=1)
    if threshold_logit is None:
        return view
    shift = torch.zeros(view.shape[1], dtype=view.dtype, device=view.device)
    shift[positive_class] = threshold_logit
    return view - shift


def logits_view(module: nn.Module, output: str = "logits", threshold: float | None = None,
                positive_class: int = 1) -> nn.Module:
    """`module` as the N×K logits every consumer uses, with the decision at P(positive) ≥ `threshold` when given.

    The public entry point (certification, smoothing and third-party code call this): `output: logits` without a
    threshold returns `module` itself, so default plans run exactly the model supplied.
    """
    return logits_view_at(module, output, None if threshold is None else threshold_to_logit(threshold),
                          positive_class)


def logits_view_at(module: nn.Module, output: str, threshold_logit: float | None,
                   positive_class: int = 1) -> nn.Module:
    """As `logits_view`, with the threshold given as a logit (a threshold chosen on scores keeps full precision)."""
    inner = supplied_module(module)
    if output == "logits" and threshold_logit is None:
        return inner
    return LogitsView(inner, output, threshold_logit, positive_class).eval()


def supplied_module(module: nn.Module) -> nn.Module:
    """The model as supplied, without its logits view (what is kept in the run directory)."""
    return module.inner if isinstance(module, LogitsView) else module


def threshold_to_logit(threshold: float) -> float:
    """logit(τ) in float64: P(positive) ≥ τ ⇔ (positive logit − other logit) ≥ logit(τ)."""
    if not 0 < threshold < 1:
        raise ModelError(f"decision threshold must lie strictly between 0 and 1, got {threshold}")
    return math.log(threshold) - math.log1p(-threshold)


def logit_to_threshold(value: float) -> float:
    """σ(value): the probability threshold of a threshold logit (no overflow for large |value|)."""
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    e = math.exp(value)
    return e / (1.0 + e)


def expected_width(output: str, n_classes: int) -> int:
    """The output width the contract implies: 1 for a sigmoid head, else one column per class."""
    return 1 if output in ("sigmoid_logit", "sigmoid_probability") else n_classes


def check_width(width: int, output: str, n_classes: int, what: str) -> None:
    """ModelError (one line) when the output width fits neither the declared contract nor the data set's classes;
    several sigmoid outputs (multi-label) are refused, never taken for K classes."""
    single = output in ("sigmoid_logit", "sigmoid_probability")
    if single and width > 1:
        raise ModelError(f"{what}: output: {output} with {width} columns is a multi-label model (one sigmoid per "
                         "label); multi-label models are not supported yet")
    if single and n_classes != 2:
        raise ModelError(f"{what}: output: {output} is a binary head, but the data set has {n_classes} classes")
    if width == expected_width(output, n_classes):
        return
    hint = ""
    if width == 1 and not single:
        hint = "; a single-logit sigmoid head needs output: sigmoid_logit (or sigmoid_probability)"
    elif width == n_classes and single:
        hint = "; K columns need output: logits or probabilities"
    raise ModelError(f"{what}: expected outputs of shape (N, {expected_width(output, n_classes)}) for output: "
                     f"{output} and {n_classes} classes, got (N, {width}){hint}")
