"""Params of the adversarial fine-tuning defences (the plan's `defence:` mapping, minus `plugin`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import PlanError
from harness_plugins.models.training import AugmentParams

STUDY_STEPS = 7  # the study's training PGD: 7 steps of ε/4 from one random start
STUDY_REL_STEPSIZE = 0.25


def _epsilon(**kwargs: Any) -> Any:
    """An epsilon on [0,1] pixels: > 0 and ≤ 1."""
    return field(metadata={"gt": 0, "max": 1}, **kwargs)


def _count(default: int, minimum: int = 1, maximum: int = 100_000) -> Any:
    """A bounded integer field."""
    return field(default=default, metadata={"min": minimum, "max": maximum})


@dataclass(kw_only=True)
class CommonParams:
    """Settings every defence shares: optimiser, batches, augmentation, validation selection, precision."""

    batch_size: int = _count(128)
    learning_rate: float = field(default=1e-4, metadata={"gt": 0})
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = field(default=0.9, metadata={"min": 0, "max": 1})  # sgd only
    weight_decay: float = field(default=0.0, metadata={"min": 0})
    augment: AugmentParams | None = None  # null: no augmentation; a mapping: the naive training's flips/rot90
    selection_epsilon: float | None = _epsilon(default=None)  # None: the (last) training epsilon
    selection_steps: int = _count(10, maximum=1000)  # validation PGD: steps of selection_rel_stepsize × ε
    selection_rel_stepsize: float = field(default=0.25, metadata={"gt": 0})
    early_stopping_patience: int | None = field(default=None, metadata={"min": 1})  # rounds without improvement
    mixed_precision: bool = True  # CUDA only (bf16 autocast, else fp16 + GradScaler); CPU is always float32
    seed: int | None = None  # None: the plan's seed
    num_threads: int | None = field(default=None, metadata={"min": 1})


@dataclass
class Stage:
    """One stage of the epsilon curriculum: `rounds` rounds (one epoch each) at `epsilon`."""

    epsilon: float = _epsilon()
    rounds: int = field(metadata={"min": 1, "max": 100_000})


@dataclass(kw_only=True)
class PGDAttackParams(CommonParams):
    """The training attack: L∞ PGD with `steps` steps of rel_stepsize × ε, optionally from a random start."""

    steps: int = _count(STUDY_STEPS, maximum=1000)
    rel_stepsize: float = field(default=STUDY_REL_STEPSIZE, metadata={"gt": 0})
    random_start: bool = True


@dataclass(kw_only=True)
class IterativeParams(PGDAttackParams):
    """The study's iterative adversarial training: an epsilon curriculum of stages, one epoch per round."""

    stages: list[Stage]
    adversarial_fraction: float = field(default=1.0, metadata={"min": 0, "max": 1})  # 1.0: fully adversarial

    def __post_init__(self) -> None:
        if not self.stages:
            raise PlanError("give at least one stage, e.g. [{epsilon: 0.004, rounds: 10}]", key="defence.stages")


@dataclass(kw_only=True)
class PGDParams(PGDAttackParams):
    """Madry et al. PGD adversarial training at one epsilon for `epochs` rounds."""

    epsilon: float = _epsilon()
    epochs: int = _count(10)


@dataclass(kw_only=True)
class FGSMRSParams(CommonParams):
    """FGSM with a uniform random start and step α (default 1.25·ε), for `epochs` rounds."""

    epsilon: float = _epsilon()
    alpha: float | None = field(default=None, metadata={"gt": 0})
    epochs: int = _count(10)


@dataclass(kw_only=True)
class TradesParams(CommonParams):
    """TRADES: clean cross-entropy plus β × KL to a PGD-found neighbour, for `epochs` rounds."""

    epsilon: float = _epsilon()
    beta: float = field(default=6.0, metadata={"min": 0})
    steps: int = _count(10, maximum=1000)
    rel_stepsize: float = field(default=STUDY_REL_STEPSIZE, metadata={"gt": 0})
    epochs: int = _count(10)
