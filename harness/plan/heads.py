"""The model entry's output contract (`output:`) and operating point (`decision:`), validated.

`output` says what the model returns: `logits` (N×K, the default), `sigmoid_logit` (N×1, one logit of the positive
class), `probabilities` (N×K softmax rows) or `sigmoid_probability` (N×1). `decision` is the device's operating
point: `{threshold: τ}` (positive when P(positive) ≥ τ) or `{sensitivity: s, on: val}` (τ chosen on the validation
split for that sensitivity). Without `decision` a prediction is the argmax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import PlanError

OUTPUTS = ("logits", "sigmoid_logit", "probabilities", "sigmoid_probability")
SINGLE_COLUMN = ("sigmoid_logit", "sigmoid_probability")
DECISION_SPLITS = ("val",)
HEAD_KEYS = ("output", "decision")  # keys of the model entry the core reads (not the plugin's parameters)


@dataclass(frozen=True)
class Decision:
    """The operating point as declared: a fixed threshold, or a target sensitivity on a split."""

    threshold: float | None = None  # P(positive) at or above which the decision is positive
    sensitivity: float | None = None  # target sensitivity; the threshold is chosen on `on`
    on: str = "val"

    def to_json(self) -> dict[str, Any]:
        """As the plan would write it."""
        if self.threshold is not None:
            return {"threshold": self.threshold}
        return {"sensitivity": self.sensitivity, "on": self.on}


@dataclass(frozen=True)
class ModelHead:
    """What the model returns and how a decision is formed from it."""

    output: str = "logits"
    decision: Decision | None = None

    @property
    def single_column(self) -> bool:
        """Whether the model returns one column (a sigmoid head)."""
        return self.output in SINGLE_COLUMN


def parse_head(raw: dict[str, Any], error: Callable[[str, str], PlanError]) -> ModelHead:
    """`output` and `decision` of the plan's model entry; `error(message, key)` makes the one-line PlanError.

    A `decision` key `on` that YAML read as `true` is renamed in `raw` (the plan's resolved data) itself."""
    output = raw.get("output", "logits")
    if output not in OUTPUTS:
        raise error(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}", "model.output")
    decision = raw.get("decision")
    if decision is None:
        return ModelHead(output=output)
    if not isinstance(decision, dict):
        raise error("expected a mapping: {threshold: 0.37} or {sensitivity: 0.90, on: val}", "model.decision")
    if True in decision:  # YAML 1.1 reads a bare `on:` key as the boolean true: the resolved plan says "on"
        decision = raw["decision"] = {("on" if key is True else key): value for key, value in decision.items()}
    unknown = sorted(str(key) for key in set(decision) - {"threshold", "sensitivity", "on"})
    if unknown:
        raise error(f"unknown key {unknown[0]!r} (allowed: threshold, sensitivity, on)", f"model.decision.{unknown[0]}")
    if ("threshold" in decision) == ("sensitivity" in decision):
        raise error("give exactly one of threshold or sensitivity", "model.decision")
    if "threshold" in decision:
        if "on" in decision:
            raise error("'on' goes with sensitivity (a fixed threshold is not chosen on a split)", "model.decision.on")
        return ModelHead(output, Decision(threshold=_probability(decision["threshold"], "threshold", error)))
    on = decision.get("on", "val")
    if on not in DECISION_SPLITS:
        raise error(f"the threshold is chosen on the validation split: on must be 'val', got {on!r}",
                    "model.decision.on")
    return ModelHead(output, Decision(sensitivity=_probability(decision["sensitivity"], "sensitivity", error), on=on))


def _probability(value: Any, name: str, error: Callable[[str, str], PlanError]) -> float:
    """A number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) < 1:
        raise error(f"{name} must be a number strictly between 0 and 1, got {value!r}", f"model.decision.{name}")
    return float(value)
