"""Gaussian noise augmentation (Cohen, Rosenfeld & Kolter 2019): fine-tune the model on x + δ, δ ~ N(0, σ²I), so
that the smoothed classifier built from it at σ is accurate and certifiable.

It runs in the shared round loop (rounds.py): one epoch per round, every round scored on the VALIDATION split by
clean accuracy and accuracy under the same Gaussian noise (a fixed seed, so every round sees the same draws); the
best round by noisy accuracy is kept. The hardened model's provenance says it was trained with noise at σ
(`noise_augmentation`), which the certification stage reports as its kind of model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.attacks.sweep import batch_seed
from harness.plan.params import params_to_dict
from harness.registry.contracts import DefenceContext, ModelBundle
from harness.registry.hookspecs import hookimpl
from harness_plugins.defences.parallel import train_forward
from harness_plugins.defences.precision import Precision
from harness_plugins.defences.rounds import TrainingSpec, run_defence, schedule_from_stages
from harness_plugins.defences.settings import CommonParams, _count
from harness_plugins.models.training import iterate_batches

_COHEN = "Cohen, Rosenfeld & Kolter 2019, arXiv:1902.02918"
NAME = "gaussian_noise_augmentation"


@dataclass(kw_only=True)
class NoiseParams(CommonParams):
    """Train on Gaussian-noised copies of each batch at `sigma` ([0,1] pixels) for `epochs` rounds."""

    sigma: float = field(metadata={"gt": 0, "max": 1})
    epochs: int = _count(10)
    learning_rate: float = field(default=1e-3, metadata={"gt": 0})


@dataclass(frozen=True)
class NoisyCrossEntropy:
    """Cross-entropy on x + σ·δ for every image of the batch (the `epsilon` slot of the round loop carries σ)."""

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
                 generator: torch.Generator, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
        model.train()
        with precision.autocast():
            (logits,) = train_forward(model, images + epsilon * noise)
        return F.cross_entropy(logits.float(), labels), logits.detach()


@torch.no_grad()
def noisy_accuracy(model: nn.Module, val: Any, sigma: float, settings: CommonParams, seed: int,
                   device: torch.device) -> tuple[float, float]:
    """Clean accuracy and accuracy under Gaussian noise at σ on the validation split (one fixed noise draw)."""
    model.eval()
    generator = torch.Generator().manual_seed(batch_seed(seed, "noise-selection"))
    clean, noisy, n = 0, 0, 0
    for images, labels in iterate_batches(val, settings.batch_size):
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
        labels = labels.to(device)
        clean += int((model(images.to(device)).argmax(1) == labels).sum())
        noisy += int((model((images + sigma * noise).to(device)).argmax(1) == labels).sum())
        n += len(labels)
    return clean / max(n, 1), noisy / max(n, 1)


def noise_spec(params: NoiseParams) -> TrainingSpec:
    """`epochs` rounds of noisy batches at σ, selected by val accuracy under the same noise."""
    selection = {"score": f"accuracy under Gaussian noise at σ = {params.sigma:g} (one fixed draw per val image)",
                 "sigma": params.sigma,
                 "rule": "max val noisy accuracy, ties: max val clean accuracy, then the earlier round"}
    return TrainingSpec(defence=NAME, schedule=schedule_from_stages([(params.sigma, params.epochs)]),
                        batch_loss=NoisyCrossEntropy(), settings=params, selection_epsilon=params.sigma,
                        params=params_to_dict(params), score=noisy_accuracy, selection=selection)


@dataclass(frozen=True)
class NoiseAugmentationDefence:
    """Gaussian noise augmentation as a harness DefencePlugin."""

    name: str = NAME
    description: str = (f"Gaussian noise augmentation at σ for randomized smoothing: fine-tune on x + N(0, σ²), "
                        f"best round by val accuracy under that noise ({_COHEN}).")
    Params: type = NoiseParams

    def harden(self, model: ModelBundle, params: Any, context: DefenceContext) -> ModelBundle:
        """Fine-tune a deep copy of `model` with noise; its provenance records σ (`noise_augmentation`)."""
        bundle = run_defence(noise_spec(params), model, context)
        bundle.provenance["noise_augmentation"] = {"sigma": params.sigma, "reference": _COHEN}
        return bundle


@hookimpl
def harness_register_defences() -> list[NoiseAugmentationDefence]:
    """The Gaussian noise augmentation defence."""
    return [NoiseAugmentationDefence()]
