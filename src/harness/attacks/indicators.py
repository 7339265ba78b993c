"""Indicators of attack failure: cheap checks that a robustness result is credible (not gradient masking).

After Carlini et al. 2019 ("On Evaluating Adversarial Robustness", arXiv:1902.06705) and Pintor et al. 2022
("Indicators of Attack Failure", arXiv:2106.09947). Each check runs on a small seeded subset of clean-correct
test images or reads the results section; `credible` is true only when every check passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.attacks.sweep import BOUND_TOLERANCE, batch_seed, eval_mode, perturbation_norm
from harness.errors import HarnessError

SUBSET_SIZE = 64
SECTION_TOLERANCE = 1e-9  # the results section is monotone by construction
RAW_MONOTONE_TOLERANCE = 0.05  # subset re-runs of stochastic attacks may wobble by a few images
UNBOUNDED_EPSILON = 1.0  # the whole [0,1] box: every non-constant classifier can be fooled
UNBOUNDED_MAX_ACCURACY = 0.05
UNBOUNDED_STEPS, UNBOUNDED_RESTARTS = 40, 2
ITERATIVE_TOLERANCE = 0.02  # on the full test split
ITERATIVE_SUBSET_TOLERANCE = 0.05
MORE_ITERATIONS_MAX_DROP = 0.05
STEPS_FACTOR, MORE_RESTARTS = 5, 3
GRADIENT_MIN_NORM, GRADIENT_MIN_FRACTION = 1e-12, 0.9
NOISE_DRAWS, NOISE_MARGIN, BARELY_SUCCEEDS = 5, 0.1, 0.1
SINGLE_STEP_ATTACKS = frozenset({"fgsm"})

DESCRIPTIONS = {
    "monotone": "Robust accuracy never rises with epsilon (results, minimal-epsilon quantiles, raw subset re-runs).",
    "unbounded_budget": f"PGD L∞ at ε={UNBOUNDED_EPSILON:g} (the whole pixel box) drives accuracy to "
                        f"≤ {UNBOUNDED_MAX_ACCURACY:g}.",
    "iterative_vs_single_step": "Iterative attacks (PGD/BIM) are at least as strong as single-step FGSM at each ε "
                                f"(tolerance {ITERATIVE_TOLERANCE:g} plus one image).",
    "more_iterations": f"{STEPS_FACTOR}× the steps and {MORE_RESTARTS} restarts lower the plan's PGD accuracy at "
                       f"its largest ε by ≤ {MORE_ITERATIONS_MAX_DROP:g} (at least 1.5 images).",
    "gradients": f"The loss gradient w.r.t. the input is finite and non-zero for ≥ {GRADIENT_MIN_FRACTION:.0%} "
                 "of inputs.",
    "noise_vs_attack": "Random noise of the same norm and ε is much weaker than the attack.",
}
FLAGS = {
    "monotone": "robust accuracy rises with epsilon",
    "unbounded_budget": "unbounded attack does not reach ~0% accuracy (gradient masking or broken attack)",
    "iterative_vs_single_step": "iterative attack weaker than single-step FGSM",
    "more_iterations": "more PGD steps/restarts lower accuracy (attack not converged)",
    "gradients": "zero or non-finite input gradients (gradient masking)",
    "noise_vs_attack": "random noise about as effective as the attack",
}


@dataclass
class Subset:
    """Clean-correct test images on the device, with their split indices."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: list[int]

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class Context:
    """What every subset check needs."""

    model: nn.Module
    subset: Subset
    batch_size: int
    seed: int
    registry: Any
    specs: list[Any]  # the plan's fixed-epsilon AttackSpecs
    raw: dict[str, np.ndarray]  # spec id → subset robust accuracy per epsilon, each ε run on its own
    class_names: list[str] | None = None

    def by_class(self, hit: torch.Tensor) -> str:
        """'benign 0 of 44, malignant 20 of 20': per true class, how many subset images `hit` marks."""
        labels = self.subset.labels.cpu()
        hit = hit.cpu()
        parts = []
        for label in sorted(set(labels.tolist())):
            mine = labels == label
            name = self.class_names[label] if self.class_names and label < len(self.class_names) else f"class {label}"
            parts.append(f"{name} {int(hit[mine].sum())} of {int(mine.sum())}")
        return ", ".join(parts)


def check(check_id: str, passed: bool, value: Any, threshold: Any, detail: str) -> dict[str, Any]:
    """One JSON-ready check entry."""
    return {"id": check_id, "description": DESCRIPTIONS[check_id], "passed": bool(passed),
            "value": _jsonable(value), "threshold": _jsonable(threshold), "detail": detail}


def allowance(base: float, n: int, images: float) -> float:
    """A tolerance of at least `images` images out of `n`, so that one stray image never decides a check."""
    return max(base, images / n) if n else base


def _jsonable(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


# ------------------------------------------------------------------------------------------------ entry


def compute_indicators(model: nn.Module, split: Any, results_model_section: dict[str, Any], plan: Any,
                       registry: Any, device: torch.device, batch_size: int, seed: int,
                       n_images: int = SUBSET_SIZE, class_names: list[str] | None = None) -> dict[str, Any]:
    """Run every indicator for one model; a JSON-ready {credible, checks, flags, n_subset, subset}.

    Deterministic for a given seed (no timings inside, so resumed and uninterrupted runs agree); the global torch
    RNG is left as it was. Pass the eager float32 model (not a compiled or autocast wrapper).
    """
    with eval_mode(model), _rng_untouched(device):
        subset = select_subset(model, split, device, batch_size, seed, n_images)
        specs = [s for s in plan.attacks if s.kind == "fixed_epsilon"]
        ctx = Context(model, subset, batch_size, seed, registry, specs, {}, class_names)
        checks = [_guard(check_id, work) for check_id, work in (
            ("monotone", lambda: _raw_runs_then_monotone(ctx, results_model_section)),  # first: fills ctx.raw
            ("unbounded_budget", lambda: check_unbounded(ctx)),
            ("iterative_vs_single_step", lambda: check_iterative(ctx, results_model_section)),
            ("more_iterations", lambda: check_more_iterations(ctx)),
            ("gradients", lambda: check_gradients(ctx)),
            ("noise_vs_attack", lambda: check_noise(ctx)))]
    credible = all(c["passed"] for c in checks)
    return {"credible": credible, "checks": checks, "flags": [FLAGS[c["id"]] for c in checks if not c["passed"]],
            "n_subset": len(subset), "subset": f"≤ {n_images} clean-correct test images in a seeded order"}


def indicator_criterion_value(section: dict[str, Any]) -> float:
    """1.0 when a model section's (or an indicators dict's) attack results are credible, else 0.0."""
    indicators = section.get("indicators", section) if isinstance(section, dict) else None
    return 1.0 if isinstance(indicators, dict) and indicators.get("credible") is True else 0.0


def _guard(check_id: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A check that could not be computed counts as failed (credibility was not shown)."""
    try:
        return work()
    except (RuntimeError, ValueError, AssertionError, TypeError, HarnessError) as exc:
        return check(check_id, False, None, None, f"could not be computed: {' '.join(str(exc).split())[:300]}")


@contextlib.contextmanager
def _rng_untouched(device: torch.device) -> Iterator[None]:
    """Leave the global torch RNG as it was, so later stages (and resumed runs) see the same random streams."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


# ------------------------------------------------------------------------------------------------ subset


def select_subset(model: nn.Module, split: Any, device: torch.device, batch_size: int, seed: int,
                  size: int = SUBSET_SIZE) -> Subset:
    """Up to `size` clean-correct images, visiting the split in a seeded order (deterministic)."""
    order = np.random.default_rng(batch_seed(seed, "indicators:subset")).permutation(len(split))
    images, labels, indices = [], [], []
    for start in range(0, len(order), batch_size):
        chunk = [int(i) for i in order[start:start + batch_size]]
        items = [split[i] for i in chunk]
        x = torch.stack([torch.as_tensor(img) for img, _ in items]).to(device, torch.float32)
        y = torch.tensor([int(lbl) for _, lbl in items], dtype=torch.int64, device=device)
        with torch.no_grad():
            correct = (model(x).argmax(dim=1) == y).cpu().numpy()
        keep = np.flatnonzero(correct)[: size - len(indices)]
        images.append(x[keep])
        labels.append(y[keep])
        indices += [chunk[k] for k in keep]
        if len(indices) >= size:
            break
    if not indices:
        shape = tuple(split[0][0].shape) if len(split) else (1, 1, 1)
        return Subset(torch.empty((0, *shape), device=device), torch.empty(0, dtype=torch.int64, device=device), [])
    return Subset(torch.cat(images), torch.cat(labels), indices)


def _chunks(subset: Subset, batch_size: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    for k, start in enumerate(range(0, len(subset), batch_size)):
        yield k, subset.images[start:start + batch_size], subset.labels[start:start + batch_size]


# ------------------------------------------------------------------------------------------------ torch helpers


def loss_per_sample(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample (the loss the plan's gradient attacks use)."""
    return F.cross_entropy(model(x).float(), y, reduction="none")


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d(loss)/d(input) per sample; model parameters get no .grad."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_per_sample(model, x, y).sum(), x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.detach()


def fast_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """FGSM (L∞: one signed step of ε) or its L2 form (one normalised step of ε), clipped to [0,1]."""
    return _step(x, input_gradient(model, x, y), eps, norm).clamp(0, 1)


def _step(x: torch.Tensor, grad: torch.Tensor, size: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return x + size * grad.sign()
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
    return x + size * grad / norms


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, restarts: int,
             generator: torch.Generator) -> torch.Tensor:
    """L∞ PGD (step ε/10, first run from x, later ones from a random start); per sample the first success."""
    best = x.clone()
    done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for restart in range(restarts):
        adv = x.clone()
        if restart:
            adv = (x + (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * eps).clamp(0, 1)
        for step in range(1, steps + 1):
            adv = _step(adv, input_gradient(model, adv, y), eps / 10, "linf")
            adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
            if step % 10 == 0 and bool(_fooled(model, x, adv, y, "linf", eps).all()):
                break
        fooled = _fooled(model, x, adv, y, "linf", eps)
        best = torch.where(_mask(fooled & ~done, x), adv, best)
        done |= fooled
        if bool(done.all()):
            break
    return best


def random_noise(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """Uniform random-sign noise of L∞ norm ε, or a random direction of L2 norm ε; clipped to [0,1]."""
    if norm == "linf":
        signs = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
        return (x + eps * signs).clamp(0, 1)
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return _step(x, direction, eps, "l2").clamp(0, 1)


@torch.no_grad()
def _fooled(model: nn.Module, x: torch.Tensor, adv: torch.Tensor, y: torch.Tensor, norm: str,
            eps: float) -> torch.Tensor:
    """Misclassified by a valid adversarial: within ε in `norm` and inside [0,1]."""
    adv = adv.to(x.device, x.dtype)
    flat = adv.flatten(1)
    valid = (perturbation_norm(adv - x, norm) <= eps + BOUND_TOLERANCE) & torch.isfinite(flat).all(1)
    valid &= (flat.amin(1) >= -BOUND_TOLERANCE) & (flat.amax(1) <= 1 + BOUND_TOLERANCE)
    return valid & (model(adv).float().argmax(dim=1) != y)


def _mask(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return flags.view(-1, *([1] * (like.ndim - 1)))


def _generator(ctx: Context, *parts: object) -> torch.Generator:
    device = ctx.subset.images.device
    return torch.Generator(device=device).manual_seed(batch_seed(ctx.seed, "indicators", *parts))


def plugin_robust_accuracy(ctx: Context, spec: Any, params: Any, epsilons: Sequence[float], tag: str) -> np.ndarray:
    """Subset robust accuracy per ε of an attack plugin with `params` (each ε on its own, not accumulated)."""
    plugin = ctx.registry.get("attack", spec.attack)
    fooled = np.zeros((len(epsilons), len(ctx.subset)), dtype=bool)
    for k, x, y in _chunks(ctx.subset, ctx.batch_size):
        torch.manual_seed(batch_seed(ctx.seed, "indicators", tag, spec.id, k))
        output = plugin.run(ctx.model, x, y, list(epsilons), params)
        if len(output.adversarials) != len(epsilons):
            raise ValueError(f"attack {spec.id!r} returned {len(output.adversarials)} adversarial sets, "
                             f"expected {len(epsilons)}")
        start = k * ctx.batch_size
        for e, (adv, eps) in enumerate(zip(output.adversarials, epsilons, strict=True)):
            fooled[e, start:start + len(x)] = _fooled(ctx.model, x, adv, y, spec.norm, eps).cpu().numpy()
    return 1.0 - fooled.mean(axis=1) if len(ctx.subset) else np.ones(len(epsilons))


# ------------------------------------------------------------------------------------------------ checks


def _not_applicable(check_id: str, why: str) -> dict[str, Any]:
    return check(check_id, True, None, None, f"not applicable: {why}")


def _raw_runs_then_monotone(ctx: Context, section: dict[str, Any]) -> dict[str, Any]:
    """Re-run each fixed-ε attack on the subset (reused by later checks), then check monotonicity."""
    if len(ctx.subset):
        for spec in ctx.specs:
            ctx.raw[spec.id] = plugin_robust_accuracy(ctx, spec, spec.params, spec.epsilons, "raw")
    raw = {spec.id: (spec.epsilons, ctx.raw[spec.id]) for spec in ctx.specs if spec.id in ctx.raw}
    return check_monotone(section, raw, len(ctx.subset))


def check_monotone(section: dict[str, Any], raw: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                   n_subset: int = SUBSET_SIZE) -> dict[str, Any]:
    """(a) Robust accuracy must not rise with ε: the section's points, minimal-ε quantiles, raw subset values."""
    problems, worst = [], 0.0
    for attack_id, summary in (section.get("attacks") or {}).items():
        points = sorted(summary.get("points", []), key=lambda p: p["epsilon"])
        pairs = [(p["epsilon"], p.get("robust_accuracy")) for p in points if p.get("robust_accuracy") is not None]
        rise, where = _largest_rise(pairs)
        worst = max(worst, rise)
        if rise > SECTION_TOLERANCE:
            problems.append(f"{attack_id}: robust accuracy rises by {rise:.3f} at ε={where:g}")
        quantiles = [(summary.get("min_epsilon") or {}).get(f"p{q}", 0) for q in (10, 25, 50, 75, 90)]
        values = [np.inf if v is None else v for v in quantiles]
        if any(b < a for a, b in zip(values, values[1:], strict=False)):
            problems.append(f"{attack_id}: minimal-ε quantiles are not increasing")
            worst = max(worst, 1.0)
    raw_worst, tolerance = 0.0, allowance(RAW_MONOTONE_TOLERANCE, n_subset, 1.5)
    for attack_id, (epsilons, accuracy) in (raw or {}).items():
        rise, where = _largest_rise(sorted(zip(epsilons, accuracy, strict=True)))
        raw_worst = max(raw_worst, rise)
        if rise > tolerance:
            problems.append(f"{attack_id} (subset, each ε run alone): accuracy rises by {rise:.3f} at ε={where:g}")
    passed = not problems
    detail = "; ".join(problems) if problems else (
        f"largest rise {worst:.3g} in the results, {raw_worst:.3g} in {len(raw or {})} raw subset re-runs")
    return check("monotone", passed, max(worst, raw_worst), tolerance, detail)


def _largest_rise(pairs: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The largest increase of accuracy between consecutive ε, and the ε where it happens."""
    rise, where = 0.0, 0.0
    for (_, a), (eps, b) in zip(pairs, pairs[1:], strict=False):
        if b - a > rise:
            rise, where = float(b - a), float(eps)
    return rise, where


def check_unbounded(ctx: Context) -> dict[str, Any]:
    """(b) Own L∞ PGD at ε = 1 (the whole box) must leave ≤ 5% accuracy on the subset."""
    if not len(ctx.subset):
        return _not_applicable("unbounded_budget", "no clean-correct test images")
    fooled = []
    for k, x, y in _chunks(ctx.subset, ctx.batch_size):
        adv = pgd_linf(ctx.model, x, y, UNBOUNDED_EPSILON, UNBOUNDED_STEPS, UNBOUNDED_RESTARTS,
                       _generator(ctx, "unbounded", k))
        fooled.append(_fooled(ctx.model, x, adv, y, "linf", UNBOUNDED_EPSILON))
    survived = ~torch.cat(fooled)
    accuracy = float(survived.float().mean())
    return check("unbounded_budget", accuracy <= UNBOUNDED_MAX_ACCURACY, accuracy, UNBOUNDED_MAX_ACCURACY,
                 f"accuracy {accuracy:.3f} on {len(ctx.subset)} images after PGD L∞ ε={UNBOUNDED_EPSILON:g} "
                 f"({UNBOUNDED_STEPS} steps, {UNBOUNDED_RESTARTS} restarts, cross-entropy); still correct by "
                 f"class: {ctx.by_class(survived)}")


def _is_iterative(summary: dict[str, Any]) -> bool:
    """An attack summary whose parameters have more than one step (PGD, BIM)."""
    steps = (summary.get("params") or {}).get("steps")
    return isinstance(steps, int) and steps > 1


def check_iterative(ctx: Context | None, section: dict[str, Any]) -> dict[str, Any]:
    """(c) PGD/BIM accuracy ≤ FGSM's (+ tolerance) at each common ε: from the results, else on the subset."""
    attacks = section.get("attacks") or {}
    fixed = {aid: s for aid, s in attacks.items() if s.get("kind") == "fixed_epsilon"}
    single = {aid: s for aid, s in fixed.items() if s.get("attack") in SINGLE_STEP_ATTACKS}
    iterative = {aid: s for aid, s in fixed.items() if aid not in single and _is_iterative(s)}
    if not iterative:
        return _not_applicable("iterative_vs_single_step", "the plan has no iterative fixed-ε attack")
    gaps, notes, n_test = [], [], 0
    for iid, it in iterative.items():
        for sid, sg in single.items():
            if sg.get("norm") != it.get("norm"):
                continue
            ref = {p["epsilon"]: p.get("robust_accuracy") for p in sg["points"]}
            for p in it["points"]:
                base = ref.get(p["epsilon"])
                if base is not None and p.get("robust_accuracy") is not None:
                    gaps.append((p["robust_accuracy"] - base, f"{iid} vs {sid} at ε={p['epsilon']:g}"))
                    n_test = max(n_test, int(p.get("n") or 0))
    tolerance = ITERATIVE_TOLERANCE + (1 / n_test if n_test else 0)  # and one image
    if not gaps and ctx is not None:  # no FGSM in the plan: compare with a one-step attack on the subset
        gaps = _subset_iterative_gaps(ctx, iterative)
        tolerance = allowance(ITERATIVE_SUBSET_TOLERANCE, len(ctx.subset), 1.5)
        notes.append(f"plan has no single-step attack of the same norm; own FGSM on {len(ctx.subset)} images")
    if not gaps:
        return _not_applicable("iterative_vs_single_step", "no single-step attack to compare with")
    gap, where = max(gaps)
    detail = "; ".join([*notes, f"largest excess of iterative over single-step accuracy {gap:+.3f} ({where})"])
    return check("iterative_vs_single_step", gap <= tolerance, gap, tolerance, detail)


def _subset_iterative_gaps(ctx: Context, iterative: dict[str, Any]) -> list[tuple[float, str]]:
    gaps = []
    for spec in ctx.specs:
        if spec.id not in iterative or spec.id not in ctx.raw:
            continue
        for eps, acc in zip(spec.epsilons, ctx.raw[spec.id], strict=True):
            fooled = torch.cat([_fooled(ctx.model, x, fast_gradient(ctx.model, x, y, eps, spec.norm), y, spec.norm,
                                        eps) for _, x, y in _chunks(ctx.subset, ctx.batch_size)])
            gaps.append((float(acc) - (1.0 - float(fooled.float().mean())), f"{spec.id} vs FGSM at ε={eps:g}"))
    return gaps


def check_more_iterations(ctx: Context) -> dict[str, Any]:
    """(d) The plan's PGD with 5× steps and 3 restarts at its largest ε must not do much better on the subset."""
    pgds = [s for s in ctx.specs if _has_fields(s.params, "steps", "restarts") and s.id in ctx.raw]
    if not pgds:
        return _not_applicable("more_iterations", "the plan has no PGD-style attack (with steps and restarts)")
    drops = []
    for spec in pgds:
        eps = max(spec.epsilons)
        stronger = dataclasses.replace(spec.params, steps=spec.params.steps * STEPS_FACTOR, restarts=MORE_RESTARTS)
        strong = float(plugin_robust_accuracy(ctx, spec, stronger, [eps], "more")[0])
        base = float(ctx.raw[spec.id][spec.epsilons.index(eps)])
        drops.append((base - strong, f"{spec.id} at ε={eps:g}: {base:.3f} → {strong:.3f} with "
                                     f"{stronger.steps} steps × {MORE_RESTARTS} restarts"))
    drop, detail = max(drops)
    threshold = allowance(MORE_ITERATIONS_MAX_DROP, len(ctx.subset), 1.5)
    return check("more_iterations", drop <= threshold, drop, threshold, f"{detail} (on {len(ctx.subset)} images)")


def _has_fields(params: Any, *names: str) -> bool:
    return dataclasses.is_dataclass(params) and all(hasattr(params, n) for n in names)


def check_gradients(ctx: Context) -> dict[str, Any]:
    """(e) The cross-entropy input gradient must be finite with norm > 1e-12 for ≥ 90% of the subset."""
    if not len(ctx.subset):
        return _not_applicable("gradients", "no clean-correct test images")
    ok = []
    for _, x, y in _chunks(ctx.subset, ctx.batch_size):
        grad = input_gradient(ctx.model, x, y).flatten(1).double()
        ok.append(torch.isfinite(grad).all(1) & (grad.norm(dim=1) > GRADIENT_MIN_NORM))
    fraction = float(torch.cat(ok).double().mean())
    bad = len(ctx.subset) - int(round(fraction * len(ctx.subset)))
    return check("gradients", fraction >= GRADIENT_MIN_FRACTION, fraction, GRADIENT_MIN_FRACTION,
                 f"{bad} of {len(ctx.subset)} inputs have a zero or non-finite gradient")


def check_noise(ctx: Context) -> dict[str, Any]:
    """(f) Random noise at the strongest attack's largest ε must fool far fewer images than the attack."""
    candidates = [(float(ctx.raw[s.id][s.epsilons.index(max(s.epsilons))]), i) for i, s in enumerate(ctx.specs)
                  if s.id in ctx.raw]
    if not candidates:
        return _not_applicable("noise_vs_attack", "no fixed-ε attack or no clean-correct test images")
    accuracy, index = min(candidates)
    spec = ctx.specs[index]
    eps, attack = max(spec.epsilons), 1.0 - accuracy
    if attack < BARELY_SUCCEEDS:
        return check("noise_vs_attack", True, None, None,
                     f"skipped: {spec.id} succeeds on only {attack:.1%} of the subset at ε={eps:g}")
    fooled = []
    for k, x, y in _chunks(ctx.subset, ctx.batch_size):
        generator = _generator(ctx, "noise", k)
        hit = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(NOISE_DRAWS):
            hit |= _fooled(ctx.model, x, random_noise(x, eps, spec.norm, generator), y, spec.norm, eps)
        fooled.append(hit)
    hits = torch.cat(fooled)
    noise = float(hits.float().mean())
    threshold = max(attack - NOISE_MARGIN, attack / 2)
    return check("noise_vs_attack", noise <= threshold, noise, threshold,
                 f"random {spec.norm} noise (any of {NOISE_DRAWS} draws) fools {noise:.1%} ({ctx.by_class(hits)}), "
                 f"{spec.id} fools {attack:.1%} at ε={eps:g}")
