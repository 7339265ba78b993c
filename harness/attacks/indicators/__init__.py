"""Indicators of attack failure: cheap checks that a robustness result is credible (not gradient masking).

After Carlini et al. 2019 ("On Evaluating Adversarial Robustness", arXiv:1902.06705) and Pintor et al. 2022
("Indicators of Attack Failure", arXiv:2106.09947). Each check (one module each) runs on a small seeded subset of
clean-correct test images or reads the results section; `credible` is true only when every check passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.attacks.indicators import gradients, iterative, monotone, more_iterations, noise, unbounded
from harness.attacks.indicators.context import SUBSET_SIZE, CheckResult, Context, select_subset, sweep_on_subset
from harness.attacks.indicators.iterative import check_iterative
from harness.attacks.indicators.monotone import check_monotone
from harness.attacks.model_mode import eval_mode
from harness.errors import HarnessError
from harness.results.attack_outcome import AttackOutcome
from harness.results.model import ModelResult

PROBE_BREAKS = "probe_breaks"  # test images the stronger probes broke, per ε (for the worst case; not stored)
CHECKS = (monotone.CHECK, unbounded.CHECK, iterative.CHECK, more_iterations.CHECK, gradients.CHECK, noise.CHECK)
DESCRIPTIONS = {info.id: info.description for info in CHECKS}
EXPLANATIONS = {info.id: info.explanation for info in CHECKS}

__all__ = ["DESCRIPTIONS", "PROBE_BREAKS", "EXPLANATIONS", "check_iterative", "check_monotone", "compute_indicators"]


def compute_indicators(model: nn.Module, split: Any, results: ModelResult, plan: Any,
                       registry: Any, device: torch.device, batch_size: int, seed: int,
                       n_images: int = SUBSET_SIZE, class_names: list[str] | None = None,
                       outcomes: dict[str, AttackOutcome] | None = None) -> dict[str, Any]:
    """Run every indicator for one model; a JSON-ready {credible, checks, flags, n_subset, subset}.

    `outcomes` are the sweep's per-image outcomes by attack id: the checks read the subset's from them instead
    of attacking again (without them, the subset is swept first). Deterministic for a given seed (no timings
    inside, so resumed and uninterrupted runs agree); the global torch RNG is left as it was. Pass the eager
    float32 model (not a compiled or autocast wrapper).
    """
    attacks = results.attacks  # the model's typed attack results (harness.results.model.AttackResult by id)
    with eval_mode(model), _rng_untouched(device):
        subset = select_subset(model, split, device, batch_size, seed, n_images)
        specs = [s for s in plan.attacks if s.kind == "fixed_epsilon"]
        sweep = sweep_on_subset(model, subset, specs, registry, batch_size, seed, outcomes)
        ctx = Context(model, subset, batch_size, seed, registry, specs, sweep, class_names)
        results = [_guard(info.id, work) for info, work in (
            (monotone.CHECK, lambda: monotone.raw_runs_then_monotone(ctx, attacks)),
            (unbounded.CHECK, lambda: unbounded.check_unbounded(ctx)),
            (iterative.CHECK, lambda: iterative.check_iterative(attacks, registry, ctx)),
            (more_iterations.CHECK, lambda: more_iterations.check_more_iterations(ctx)),
            (gradients.CHECK, lambda: gradients.check_gradients(ctx)),
            (noise.CHECK, lambda: noise.check_noise(ctx)))]
    breaks: dict[tuple[str, float], set[int]] = {}
    for r in results:
        for key, rows in r.broken.items():
            breaks.setdefault(key, set()).update(subset.indices[i] for i in np.flatnonzero(rows))
    return {"credible": all(r.passed for r in results), "checks": [r.to_json() for r in results],
            "flags": [r.flag for r in results if not r.passed], "n_subset": len(subset),
            "subset": f"≤ {n_images} clean-correct test images in a seeded order",
            PROBE_BREAKS: [{"norm": norm, "epsilon": eps, "indices": sorted(rows)}
                           for (norm, eps), rows in sorted(breaks.items())]}


def _guard(check_id: str, work: Callable[[], CheckResult]) -> CheckResult:
    """A check that could not be computed counts as failed (credibility was not shown)."""
    try:
        return work()
    except (RuntimeError, ValueError, AssertionError, TypeError, HarnessError) as exc:
        info = next(c for c in CHECKS if c.id == check_id)
        return info.result(False, None, None, f"could not be computed: {' '.join(str(exc).split())[:300]}")


@contextlib.contextmanager
def _rng_untouched(device: torch.device) -> Iterator[None]:
    """Leave the global torch RNG as it was, so later stages (and resumed runs) see the same random streams."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield
