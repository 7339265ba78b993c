"""Adversarial fine-tuning defences: the study's iterative curriculum, PGD-AT, FGSM-RS and TRADES.

Every defence is "how to build a batch's loss" plus a schedule of rounds; the round loop, validation-only
selection, checkpoints and resume are shared (rounds.py). Unlike the study's published code, the round is chosen
on the validation split (never test), robustness is measured against the model being trained (never the naive
one), and the chosen round's weights are what is returned and saved (never the last round's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.plan.params import params_to_dict
from harness.registry.contracts import DefenceContext, ModelBundle
from harness.registry.hookspecs import hookimpl
from harness_plugins.defences.losses import AdversarialCrossEntropy, TradesLoss
from harness_plugins.defences.rounds import TrainingSpec, run_defence, schedule_from_stages
from harness_plugins.defences.settings import FGSMRSParams, IterativeParams, PGDParams, TradesParams

_JOEL = "Joel et al. 2022, JCO Clin Cancer Inform, doi:10.1200/CCI.21.00170"
_MADRY = "Madry et al. 2018, arXiv:1706.06083"
_WONG = "Wong, Rice & Kolter 2020, arXiv:2001.03994"
_ZHANG = "Zhang et al. 2019, arXiv:1901.08573"


def iterative_spec(name: str, params: IterativeParams) -> TrainingSpec:
    """The study's curriculum: stages of one-epoch rounds on PGD batches (optionally mixed with clean ones)."""
    loss = AdversarialCrossEntropy(params.steps, params.rel_stepsize, params.random_start,
                                   params.adversarial_fraction)
    schedule = schedule_from_stages([(s.epsilon, s.rounds) for s in params.stages])
    return _spec(name, params, schedule, loss, params.stages[-1].epsilon)


def pgd_spec(name: str, params: PGDParams) -> TrainingSpec:
    """Madry et al.: `epochs` rounds of fully adversarial PGD batches at one epsilon."""
    loss = AdversarialCrossEntropy(params.steps, params.rel_stepsize, params.random_start)
    return _spec(name, params, schedule_from_stages([(params.epsilon, params.epochs)]), loss, params.epsilon)


def fgsm_rs_spec(name: str, params: FGSMRSParams) -> TrainingSpec:
    """Wong et al.: one FGSM step of α (default 1.25·ε) from a uniform random start in the ε-ball."""
    alpha = params.alpha if params.alpha is not None else 1.25 * params.epsilon
    loss = AdversarialCrossEntropy(steps=1, rel_stepsize=alpha / params.epsilon, random_start=True,
                                   abs_stepsize=alpha)
    return _spec(name, params, schedule_from_stages([(params.epsilon, params.epochs)]), loss, params.epsilon)


def trades_spec(name: str, params: TradesParams) -> TrainingSpec:
    """Zhang et al.: clean cross-entropy plus β × KL to a PGD-found neighbour."""
    loss = TradesLoss(params.beta, params.steps, params.rel_stepsize)
    return _spec(name, params, schedule_from_stages([(params.epsilon, params.epochs)]), loss, params.epsilon)


def _spec(name: str, params: Any, schedule: list, loss: Any, training_epsilon: float) -> TrainingSpec:
    """A TrainingSpec; the selection epsilon defaults to the (last) training epsilon."""
    selection = params.selection_epsilon if params.selection_epsilon is not None else training_epsilon
    return TrainingSpec(defence=name, schedule=schedule, batch_loss=loss, settings=params,
                        selection_epsilon=float(selection), params=params_to_dict(params))


@dataclass(frozen=True)
class AdversarialTrainingDefence:
    """One adversarial fine-tuning defence exposed as a harness DefencePlugin."""

    name: str
    description: str
    Params: type
    build: Callable[[str, Any], TrainingSpec]

    def harden(self, model: ModelBundle, params: Any, context: DefenceContext) -> ModelBundle:
        """Fine-tune a deep copy of `model`; the naive model is never modified."""
        return run_defence(self.build(self.name, params), model, context)


DEFENCES: tuple[AdversarialTrainingDefence, ...] = (
    AdversarialTrainingDefence(
        "iterative_adversarial_training",
        f"The study's iterative adversarial training: an ε curriculum of one-epoch PGD rounds, best round chosen on "
        f"validation ({_JOEL}).", IterativeParams, iterative_spec),
    AdversarialTrainingDefence(
        "pgd_adversarial_training",
        f"PGD adversarial training: fine-tune on L∞ PGD adversarials at one ε ({_MADRY}).", PGDParams, pgd_spec),
    AdversarialTrainingDefence(
        "fgsm_rs",
        f"Fast adversarial training: FGSM from a uniform random start, step α = 1.25·ε ({_WONG}).",
        FGSMRSParams, fgsm_rs_spec),
    AdversarialTrainingDefence(
        "trades",
        f"TRADES: clean cross-entropy plus β·KL to a PGD-found neighbour ({_ZHANG}).", TradesParams, trades_spec),
)


@hookimpl
def harness_register_defences() -> list[AdversarialTrainingDefence]:
    """The built-in adversarial fine-tuning defences."""
    return list(DEFENCES)
