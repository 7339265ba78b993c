"""Plan parameters shared by the Foolbox and the native gradient attacks, and how each is strengthened.

The native FGSM/BIM/PGD plugins take the same keys with the same meaning as their Foolbox counterparts, so a plan
can switch between them by changing the attack name only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HARNESS_ONLY = ("restarts",)  # Params fields the harness uses itself (not passed to foolbox)
Strengthen = Callable[[Any, int, int], Any]  # (params, steps_factor, restarts) → stronger params


def at_least(minimum: int, default: int) -> Any:
    """An integer field with a lower bound."""
    return field(default=default, metadata={"min": minimum})


def positive(default: float | None, **bounds: float) -> Any:
    """A float field that must be > 0 (None allowed where the default is None)."""
    return field(default=default, metadata={"gt": 0, **bounds})


@dataclass
class FGSMParams:
    """FGSM: a single signed-gradient step of size ε."""

    random_start: bool = False


@dataclass
class BIMParams:
    """Iterative L∞ gradient sign steps; abs_stepsize, when set, overrides rel_stepsize × ε."""

    steps: int = at_least(1, 10)
    rel_stepsize: float = positive(0.1)
    abs_stepsize: float | None = positive(None)
    random_start: bool = False


@dataclass
class PGDLinfParams(BIMParams):
    """L∞ PGD: BIM with a random start (default step ε/4) and per-sample best-of-`restarts`."""

    rel_stepsize: float = positive(0.25)
    random_start: bool = True
    restarts: int = at_least(1, 1)


@dataclass
class PGDL2Params(PGDLinfParams):
    """L2 PGD with foolbox's defaults (50 steps of 0.025 ε) and restarts."""

    steps: int = at_least(1, 50)
    rel_stepsize: float = positive(0.025)


def more_steps_and_restarts(params: Any, steps_factor: int, restarts: int) -> Any:
    """The same attack with `steps_factor`× the steps and `restarts` restarts (PGD with a random start)."""
    return dataclasses.replace(params, steps=params.steps * steps_factor, restarts=restarts)


class StrengthenedByTable:
    """`strengthen` for a plugin row that names its strengthener (a field `strengthener`, None: it cannot)."""

    strengthener: Strengthen | None
    Params: type

    def strengthen(self, params: Any, steps_factor: int, restarts: int) -> Any | None:
        """Params with `steps_factor`× the steps (or queries) and `restarts` restarts, or None (single-step,
        deterministic or minimal attacks: more restarts from the same start would repeat the same run)."""
        return None if self.strengthener is None else self.strengthener(params or self.Params(), steps_factor,
                                                                        restarts)
