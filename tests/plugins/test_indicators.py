"""Attack-failure indicators: a gradient-masked model that looks robust is flagged; the same model unmasked is not."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

import fake_plugins
import numpy as np
import pytest
import torch
from attack_toys import one_torch_thread  # noqa: F401 - a fixture
from torch import nn

from harness.attacks.indicators import (
    DESCRIPTIONS,
    EXPLANATIONS,
    check_iterative,
    check_monotone,
    compute_indicators,
)
from harness.attacks.sweep import run_attack
from harness.data.batches import predict_logits
from harness.plan.schema import load_plan_text
from harness.registry.contracts import AttackOutput, TensorSplit
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import Registry, default_registry, make_plugin_manager
from harness.results.build import attack_result
from harness.results.model import AttackPoint, AttackResult, CleanMetrics, MinEpsilonSummary, ModelResult

CPU = torch.device("cpu")
PLAN = textwrap.dedent("""\
    harness: 1
    name: indicators_toy
    seed: 5
    dataset: {plugin: phantom_ct}
    model: {plugin: train, architecture: small_cnn}
    epsilons: [0.02, 0.05, 0.1]
    attacks:
      - attack: fgsm
      - attack: pgd_linf
        steps: 10
      - attack: fmn_linf
        steps: 30
    """)


# ------------------------------------------------------------------------------------------------ fixtures


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_data(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Dark vs slightly brighter noisy 16×16 squares: an ε of ~0.06 flips an undefended classifier."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.uniform(0.3, 0.5, (n, 1, 16, 16)) + 0.12 * labels[:, None, None, None]
    return torch.tensor(images, dtype=torch.float32), labels


class Quantise(nn.Module):
    """x → round(255x)/255: invisible to the eye, but its gradient is zero everywhere (gradient masking)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 255) / 255


@pytest.fixture(scope="module")
def models() -> tuple[nn.Module, nn.Module]:
    """A small CNN trained on the toy task, and the same CNN behind the quantisation layer."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    x, y = toy_data(256, 1)
    target = torch.tensor(y)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(150):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(x), target).backward()
        optimiser.step()
    net.eval()
    return net, nn.Sequential(Quantise(), net).eval()


@pytest.fixture(scope="module")
def test_split() -> TensorSplit:
    x, y = toy_data(80, 2)
    return TensorSplit(x, y, [f"s{i}" for i in range(len(y))], [f"p{i}" for i in range(len(y))])


def evaluate_section(model: nn.Module, split: TensorSplit, plan, registry) -> dict:
    """The results section of one model, built like harness.run.runner does."""
    prediction = predict_logits(model, split, 64, CPU).argmax(1)
    correct = prediction == split.labels
    section = {"clean": {"accuracy": float(correct.mean())}, "attacks": {}}
    for spec in plan.attacks:
        outcome = run_attack(model, split, spec, registry.get("attack", spec.attack), prediction, 64, CPU,
                             plan.seed, "naive")
        section["attacks"][spec.id] = attack_result(spec.attack, spec.norm, spec.kind, spec.params_dict(), outcome,
                                                   split.labels, correct, 1, None).to_json()
    return section


def typed(section: dict) -> ModelResult:
    """The section as the typed ModelResult the runner hands the indicators (clean metrics as far as the tests need)."""
    clean = CleanMetrics(section["clean"]["accuracy"], None, None, None, 0, ())
    return ModelResult(None, clean, {aid: AttackResult.from_json(a) for aid, a in section["attacks"].items()})


def robust(section: dict, attack: str, eps: float) -> float:
    return next(p["robust_accuracy"] for p in section["attacks"][attack]["points"] if p["epsilon"] == eps)


def by_id(indicators: dict) -> dict[str, dict]:
    return {c["id"]: c for c in indicators["checks"]}


# ------------------------------------------------------------------------------------------------ end to end


def test_masked_model_looks_robust_but_is_not_credible(models, test_split):
    plain, masked = models
    registry = default_registry()
    plan = load_plan_text(PLAN, registry=registry)
    sections = {name: evaluate_section(model, test_split, plan, registry)
                for name, model in (("plain", plain), ("masked", masked))}
    for section in sections.values():
        assert section["clean"]["accuracy"] >= 0.9
    # the masking makes PGD useless: the masked model "looks robust"; the plain one is not
    assert robust(sections["masked"], "pgd_linf", 0.05) >= 0.8
    assert robust(sections["plain"], "pgd_linf", 0.1) <= 0.1

    state = torch.get_rng_state()
    results = {name: compute_indicators(model, test_split, typed(sections[name]), plan, registry, CPU, 32, plan.seed,
                                        class_names=["benign", "malignant"])
               for name, model in (("plain", plain), ("masked", masked))}
    assert torch.equal(state, torch.get_rng_state())  # the run's random streams are untouched

    plain_checks, masked_checks = by_id(results["plain"]), by_id(results["masked"])
    assert results["plain"]["credible"], [c for c in plain_checks.values() if not c["passed"]]
    assert results["plain"]["flags"] == []
    assert not results["masked"]["credible"]
    assert not masked_checks["gradients"]["passed"] and masked_checks["gradients"]["value"] == 0.0
    unbounded = masked_checks["unbounded_budget"]
    assert not unbounded["passed"] and plain_checks["unbounded_budget"]["value"] <= 0.05
    # zero gradients stop APGD; a trivial perturbation (all-black, all-white, a class mean) still flips the images:
    # an attack-side failure, not robustness, and the flipping probes are named per class
    assert "the attack is too weak for this model" in unbounded["detail"]
    probes = dict(part.split(": ") for part in unbounded["flipped_by"].split("; "))
    assert "apgd_ce" not in probes and any(name.startswith("toward") for name in probes)
    assert any("gradient masking" in flag for flag in results["masked"]["flags"])
    assert any("too weak for this model" in flag for flag in results["masked"]["flags"])
    # the detail says which true classes the unbounded attack could not flip (class names when given)
    named = results["masked"]
    named_unbounded = by_id(named)["unbounded_budget"]
    detail = named_unbounded["detail"].split("still correct by class: ")[1].split("; ")[0]
    survivors = [int(part.split()[1]) for part in detail.split(", ")]
    assert "benign " in detail and "malignant " in detail
    assert sum(survivors) == round(named_unbounded["value"] * named["n_subset"])
    assert "benign " in named_unbounded["flipped_by"] and "malignant " in named_unbounded["flipped_by"]
    assert results["plain"]["credible"] is True and results["masked"]["credible"] is False

    for indicators in results.values():
        json.dumps(indicators, allow_nan=False)  # JSON-ready
        assert indicators["n_subset"] == 64
        assert [c["id"] for c in indicators["checks"]] == list(DESCRIPTIONS)
        for c in indicators["checks"]:
            assert set(c) - {"flipped_by", "rule", "on_subset"} == {"id", "description", "explanation", "passed",
                                                                   "value", "threshold", "detail", "concerns",
                                                                   "quantity"}
            assert "\n" not in c["description"] + c["detail"] + c["explanation"]
            assert c["explanation"] == EXPLANATIONS[c["id"]] and c["explanation"].endswith(".")
    # deterministic: the same inputs give the same indicators
    again = compute_indicators(masked, test_split, typed(sections["masked"]), plan, registry, CPU, 32, plan.seed,
                               class_names=["benign", "malignant"])
    assert [c["value"] for c in again["checks"]] == [c["value"] for c in results["masked"]["checks"]]


# ------------------------------------------------------------------------------------------------ a raw re-run


@dataclass
class NoParams:
    pass


class Forgetful:
    """A broken attack: perfect at small ε, returns the clean image at larger ε (its raw curve rises)."""

    name, norm, kind, description, Params = "forgetful", "linf", "fixed_epsilon", "broken attack", NoParams
    iterative, requires_gradients = False, False

    def strengthen(self, params, steps_factor, restarts):
        return None

    def run(self, model, images, labels, epsilons, params):
        sign = (1 - 2 * labels).float().view(-1, 1, 1, 1)
        return AttackOutput([(images + sign * eps).clamp(0, 1) if eps <= 0.25 else images.clone()
                             for eps in epsilons])


class ForgetfulPlugin:
    @hookimpl
    def harness_register_attacks(self):
        return [Forgetful()]


def test_raw_rerun_catches_an_attack_whose_accumulated_curve_hides_it():
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[fake_plugins, ForgetfulPlugin()]))
    plan = load_plan_text(textwrap.dedent("""\
        harness: 1
        name: forgetful
        dataset: {plugin: toy}
        model: {plugin: mean_threshold}
        epsilons: [0.2, 0.3]
        attacks: [{attack: forgetful}]
        """), registry=registry)
    model = registry.get("model", "mean_threshold").provide(plan.model.params, None).module
    x, y = toy_data(40, 3)
    x = x + 0.09  # centre the two classes on the model's 0.55 threshold
    split = TensorSplit(x, y, [str(i) for i in range(40)], [str(i) for i in range(40)])
    section = evaluate_section(model, split, plan, registry)
    assert robust(section, "forgetful", 0.2) == robust(section, "forgetful", 0.3)  # accumulated: looks monotone
    indicators = compute_indicators(model, split, typed(section), plan, registry, CPU, 16, 0)
    monotone = by_id(indicators)["monotone"]
    assert not monotone["passed"] and "subset" in monotone["detail"]
    assert not indicators["credible"] and "robust accuracy rises with epsilon" in indicators["flags"]


# ------------------------------------------------------------------------------------------------ section checks


def point(eps: float, acc: float | None) -> AttackPoint:
    return AttackPoint(eps, acc, None, None, None, 0, 0)


def summary(attack: str, accs: list[float | None], eps=(0.01, 0.02, 0.04), steps: int | None = None) -> AttackResult:
    return AttackResult(attack, "linf", "fixed_epsilon", {} if steps is None else {"steps": steps},
                        tuple(point(e, a) for e, a in zip(eps, accs, strict=True)))


def test_monotone_check_on_hand_built_sections():
    good = {"pgd": summary("pgd_linf", [0.8, 0.5, None], steps=10)}
    assert check_monotone(good).passed
    bad = {"pgd": summary("pgd_linf", [0.8, 0.5, 0.6], steps=10)}
    result = check_monotone(bad)
    assert not result.passed and "pgd: robust accuracy rises by 0.100 at ε=0.04" in result.detail
    minimal = {"fmn": AttackResult("fmn_linf", "linf", "minimal", {}, (point(0.01, 0.9), point(0.02, 0.7)),
                                   MinEpsilonSummary(10, 5, 0.015, 0.01, None, 0.02, None, None))}
    assert not check_monotone(minimal).passed  # a found ε above a not-found (inf) quantile
    assert check_monotone({}, {"pgd": ((0.01, 0.02), (0.5, 0.53))}).passed  # within tolerance
    # 6 of 64 images lost: chance explains it against the tolerated 5 % (one-sided exact binomial, p = 0.1)
    chance = check_monotone({}, {"pgd": ((0.01, 0.02), (0.5, 0.6))})
    assert chance.passed and "6 of 64" in chance.rule and "p = 0.1" in chance.rule
    assert not check_monotone({}, {"pgd": ((0.01, 0.02), (0.5, 0.7))}).passed


def test_iterative_check_on_hand_built_sections():
    fgsm = summary("fgsm", [0.7, 0.5, 0.3])
    ok = {"fgsm": fgsm, "pgd": summary("pgd_linf", [0.6, 0.3, 0.1], steps=10)}
    assert check_iterative(ok, default_registry()).passed
    weak = {"fgsm": fgsm, "bim": summary("bim_linf", [0.6, 0.55, 0.1], steps=10)}
    result = check_iterative(weak, default_registry())
    assert not result.passed and "bim vs fgsm at ε=0.02" in result.detail
    assert result.value == pytest.approx(0.05)
    only_fgsm = check_iterative({"fgsm": fgsm}, default_registry())
    assert only_fgsm.passed and only_fgsm.detail.startswith("not applicable")


# ------------------------------------------------------------------------------------------------ attack-side failure


class Overshoot(nn.Module):
    """Benign (class 0) when the mean pixel m is below 0.30 or within 0.01 of 0.5, else malignant (class 1).

    From a malignant image (m ≈ 0.735) every gradient points at the narrow band around 0.5: signed steps of
    ε/4 = 0.125 (ε = 0.5) or 0.1 (ε = 1) jump across it back and forth and never flip the image, while a smaller
    step, APGD's first step to the ball's edge, or simply darkening by ε (m → 0.235) flips it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1, keepdim=True)
        low = 20 * (0.30 - m) - 2000 * torch.relu(m - 0.30) ** 2  # falls steeply above 0.30
        benign = torch.maximum(low, 0.5 - 50 * (m - 0.5).abs())  # a tent: gradients never vanish
        return torch.cat([benign, torch.zeros_like(m)], dim=1)


def overshoot_split(n: int = 40) -> TensorSplit:
    """Benign images at m ≈ 0.02 (random noise cannot lift them past 0.30), malignant ones at m in [0.72, 0.735]
    (so that neither 0.125 nor 0.1 steps land within 0.01 of 0.5)."""
    generator = torch.Generator().manual_seed(7)
    labels = np.arange(n) % 2
    means = torch.where(torch.as_tensor(labels) == 1, 0.72 + 0.015 * torch.rand(n, generator=generator),
                        0.01 + 0.02 * torch.rand(n, generator=generator))
    noise = (torch.rand(n, 1, 16, 16, generator=generator) - 0.5) * 0.01
    return TensorSplit((means.view(-1, 1, 1, 1) + noise).clamp(0, 1), labels, [f"s{i}" for i in range(n)],
                       [f"p{i}" for i in range(n)])


OVERSHOOT_PLAN = textwrap.dedent("""\
    harness: 1
    name: overshoot
    seed: 3
    dataset: {plugin: phantom_ct}
    model: {plugin: train, architecture: small_cnn}
    epsilons: [0.1, 0.25, 0.5]
    attacks:
      - attack: native_pgd_linf
        id: pgd_linf
        steps: 10
        rel_stepsize: 0.25
        random_start: false
    """)


def test_an_attack_that_overshoots_is_reported_as_an_attack_side_failure_not_robustness():
    registry = default_registry()
    plan = load_plan_text(OVERSHOOT_PLAN, registry=registry)
    model, split = Overshoot().eval(), overshoot_split()
    section = evaluate_section(model, split, plan, registry)
    assert section["clean"]["accuracy"] == 1.0
    assert robust(section, "pgd_linf", 0.5) == 0.5  # every malignant image survives the plan's PGD at ε = 0.5
    indicators = compute_indicators(model, split, typed(section), plan, registry, CPU, 16, plan.seed,
                                    class_names=["benign", "malignant"])
    checks = by_id(indicators)
    # the unbounded budget is reached by converging and trivial probes: the model is not blamed
    assert checks["unbounded_budget"]["passed"], checks["unbounded_budget"]["detail"]
    assert checks["gradients"]["passed"]
    assert not any("gradient masking" in flag for flag in indicators["flags"]), indicators["flags"]
    # the plan's attack is: stronger and trivial probes flip the malignant images it left standing, named per class
    more = checks["more_iterations"]
    assert not more["passed"] and not indicators["credible"]
    assert any("too weak for this model" in flag for flag in indicators["flags"])
    flipped = dict(part.split(": ") for part in more["flipped_by"].split("; "))
    assert flipped["apgd_ce"] == "benign 0 of 20, malignant 20 of 20"
    assert flipped["toward black"] == "benign 0 of 20, malignant 20 of 20"
    assert "pgd_linf ×5 steps, 2 restarts" not in flipped  # more of the same steps still overshoot
    assert "broken by " in more["detail"] and "malignant 20 of 20" in more["detail"]
    assert more["explanation"].startswith("If stronger or simpler attacks break noticeably more images")
