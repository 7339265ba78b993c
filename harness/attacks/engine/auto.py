"""`engine: auto`: the fastest engine options whose attack results agree with float32 eager on the plan's images.

On CUDA each candidate (from all options on down to none) prepares the attack model, runs a timed probe, a native
PGD-10 (ε/4 steps, random start, cross-entropy) at every ε of the plan on up to 512 of the plan's test images, and
is judged by the float32 eager model. A candidate passes when its success rate is within 1 percentage point (and
at least one image) of float32 eager's at every ε whose float32 rate is in 10–90 %; the fastest passing one is
used. On CPU nothing is probed: attacks run float32 eager without options, because reduced precision and
torch.compile target GPUs and a choice timed on a shared CPU would change from run to run. The manifest records
the choice, every candidate's rate and timing, and the reason. A resumed run keeps the options its first attempt
chose (they are part of the resume fingerprint), so one run's attacks never mix two engines.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from harness.attacks.engine.attack_model import prepare_attack_model
from harness.attacks.judge import judge
from harness.attacks.native.losses import cross_entropy, misclassified
from harness.attacks.native.pgd import pgd
from harness.plan.schema import EngineSettings

PROBE_IMAGES = 512
PROBE_STEPS, PROBE_REL_STEP = 10, 0.25
AGREEMENT_POINTS = 1.0  # percentage points, as the benchmark's bf16 check
AGREEMENT_BAND = (0.10, 0.90)  # compared where float32 success is in this band (elsewhere both sit at 0 or 100 %)
CANDIDATES: tuple[EngineSettings, ...] = (
    EngineSettings(channels_last=True, fold_batchnorm=True, autocast="bf16", compile=True, static_shapes=True),
    EngineSettings(channels_last=True, fold_batchnorm=True, autocast="bf16"),
    EngineSettings(channels_last=True, fold_batchnorm=True),
    EngineSettings(),
)
RESUMED_REASON = "engine: auto: resumed with the options the run's first attempt chose"
NO_GRADIENTS_REASON = "engine: auto: the model gives no input gradients, so no speed option applies"
CPU_REASON = ("engine: auto on {device}: float32 eager without speed options (reduced precision and torch.compile "
              "target GPUs, and a choice timed on a shared CPU would change from run to run)")


def resolve_engine(settings: EngineSettings, model: nn.Module, device: torch.device,
                   probe: Callable[[int], tuple[torch.Tensor, torch.Tensor]], epsilons: Sequence[float],
                   candidates: Sequence[EngineSettings] = CANDIDATES,
                   differentiable: bool = True,
                   earlier: dict[str, Any] | None = None) -> tuple[EngineSettings, dict[str, Any]]:
    """The options attacks should use and what the manifest records about the choice.

    Pinned settings (auto off) are returned unchanged. `probe(n)` returns up to n of the plan's test images and
    labels (called only when candidates are measured; the probe keeps those the model classifies correctly),
    `epsilons` is the plan's L∞ fixed-ε grid. A model without input gradients gets no options (the probe is a
    gradient attack, and the options only speed up gradient work). `earlier` is the options an interrupted
    attempt of the same run used (its `used` record): auto reuses them instead of probing again.
    """
    if not settings.auto:
        return settings, {"requested": "pinned", "used": _options(settings)}
    if earlier is not None:
        chosen = EngineSettings(**earlier)
        return chosen, {"requested": "auto", "used": _options(chosen), "reason": RESUMED_REASON}
    device = torch.device(device)
    keep = {"deterministic": settings.deterministic}
    if device.type != "cuda" or not differentiable:
        chosen = EngineSettings(**keep)
        reason = CPU_REASON.format(device=device.type) if differentiable else NO_GRADIENTS_REASON
        return chosen, {"requested": "auto", "used": _options(chosen), "reason": reason}
    images, labels = probe(PROBE_IMAGES)
    chosen, record = choose_fastest_agreeing(model, device, images, labels, epsilons,
                                             [dataclasses.replace(c, **keep) for c in candidates])
    return chosen, {"requested": "auto", **record}


def choose_fastest_agreeing(model: nn.Module, device: torch.device, images: torch.Tensor, labels: torch.Tensor,
                            epsilons: Sequence[float],
                            candidates: Sequence[EngineSettings]) -> tuple[EngineSettings, dict[str, Any]]:
    """Probe every candidate against float32 eager; the fastest that agrees (float32 eager if none does)."""
    x, y = _probe_images(model, images.to(device), labels.to(device))
    grid = sorted(set(float(e) for e in epsilons))
    reference = _success_rates(model, model, x, y, grid)
    rows = []
    for candidate in candidates:
        row: dict[str, Any] = {"options": _options(candidate)}
        try:
            attack_model, notes = prepare_attack_model(model, candidate, device, x)
            _success_rates(attack_model, model, x, y, grid)  # warm-up: compiles, autotunes
            start = time.perf_counter()
            rates = _success_rates(attack_model, model, x, y, grid)
            _sync(device)
            row.update(seconds=time.perf_counter() - start, success_rates=rates, notes=notes,
                       **_agreement(reference, rates, len(x)))
        except (RuntimeError, ValueError) as exc:
            row.update(passed=False, error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
        rows.append(row)
    passing = [(row["seconds"], k) for k, row in enumerate(rows) if row.get("passed")]
    index = min(passing)[1] if passing else None
    chosen = candidates[index] if index is not None else EngineSettings(deterministic=candidates[0].deterministic)
    reason = ("the fastest candidate whose success rates agree with float32 eager" if index is not None
              else "no candidate agreed with float32 eager: float32 eager without options")
    return chosen, {"used": _options(chosen), "reason": reason, "probe_images": len(x), "epsilons": grid,
                    "float32_success_rates": reference, "candidates": rows}


def _probe_images(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to PROBE_IMAGES images the float32 model classifies correctly (all given images if none is)."""
    with torch.no_grad():
        correct = model(images).float().argmax(1) == labels
    if bool(correct.any()):
        images, labels = images[correct], labels[correct]
    return images[:PROBE_IMAGES], labels[:PROBE_IMAGES]


def _success_rates(attack_model: nn.Module, judge_model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   epsilons: Sequence[float]) -> list[float]:
    """Share of the probe images a PGD-10 crafted on `attack_model` fools (judged by `judge_model`), per ε."""
    rates = []
    for k, eps in enumerate(epsilons):
        torch.manual_seed(k)
        adv = pgd(attack_model, x, cross_entropy(y), eps, "linf", PROBE_STEPS, PROBE_REL_STEP * eps, "uniform",
                  success=misclassified(y), compact=not getattr(attack_model, "static_shapes", False))
        rates.append(float(judge(judge_model, x, y, adv, "linf", eps).counted.float().mean()))
    return rates


def _agreement(reference: list[float], rates: list[float], n: int) -> dict[str, Any]:
    """Largest gap in points over the ε whose float32 rate is in the band; passed when ≤ 1 point (≥ one image)."""
    tolerance = max(AGREEMENT_POINTS, 100 / max(1, n))
    compared = [k for k, rate in enumerate(reference) if AGREEMENT_BAND[0] <= rate <= AGREEMENT_BAND[1]]
    worst = max((abs(rates[k] - reference[k]) * 100 for k in compared), default=0.0)
    return {"max_gap_points": worst, "tolerance_points": tolerance, "compared_epsilons": len(compared),
            "passed": worst <= tolerance}


def _options(settings: EngineSettings) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(settings).items() if k != "auto"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
