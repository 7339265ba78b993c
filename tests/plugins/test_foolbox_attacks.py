"""Tests for the foolbox attack plugin on a tiny 2-class toy model (CPU, a few seconds)."""

from __future__ import annotations

import pytest
import torch
from attack_toys import one_torch_thread, trained_mlp  # noqa: F401 - one_torch_thread is a fixture
from torch import nn

from harness.errors import PlanError
from harness.plan.params import build_dataclass
from harness.registry.contracts import AttackPlugin
from harness.registry.manager import Registry, make_plugin_manager
from harness_plugins.attacks import foolbox_attacks
from harness_plugins.attacks.foolbox_attacks import ATTACKS, DeepFoolParams, FMNParams

BY_NAME = {attack.name: attack for attack in ATTACKS}
FIXED = [a.name for a in ATTACKS if a.kind == "fixed_epsilon"]
MINIMAL = [a.name for a in ATTACKS if a.kind == "minimal"]
EXPECTED = {
    "fgsm": ("linf", "fixed_epsilon"), "pgd_linf": ("linf", "fixed_epsilon"),
    "bim_linf": ("linf", "fixed_epsilon"), "pgd_l2": ("l2", "fixed_epsilon"),
    "cw_l2": ("l2", "minimal"), "deepfool_linf": ("linf", "minimal"), "deepfool_l2": ("l2", "minimal"),
    "fmn_linf": ("linf", "minimal"), "fmn_l2": ("l2", "minimal"),
}
EPSILONS = {"linf": [0.0, 0.01, 0.1, 0.3], "l2": [0.0, 0.1, 1.0, 3.0]}
FAST = {"cw_l2": {"steps": 50, "binary_search_steps": 5}, "fmn_linf": {"steps": 50}, "fmn_l2": {"steps": 50}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small MLP trained on the toy task, in eval mode, with a held-out batch of 48 images."""
    return trained_mlp()


def correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample: does the model classify the image correctly?"""
    with torch.no_grad():
        return model(images).argmax(dim=1) == labels


def norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample L∞ or L2 norm."""
    return delta.flatten(1).norm(p=float("inf") if norm == "linf" else 2, dim=1)


def params(name: str, **overrides: object) -> object:
    """Validated Params for an attack, as the plan loader builds them."""
    return build_dataclass(BY_NAME[name].Params, overrides, "attacks.0")


def run_pgd(toy: tuple, seed: int, epsilons: list[float], **overrides: object) -> list[torch.Tensor]:
    """PGD L∞ adversarials under a fixed torch seed."""
    model, x, y = toy
    torch.manual_seed(seed)
    return BY_NAME["pgd_linf"].run(model, x, y, epsilons, params("pgd_linf", **overrides)).adversarials


def test_toy_model_is_accurate(toy: tuple) -> None:
    model, x, y = toy
    assert correct(model, x, y).float().mean() >= 0.95


def test_hook_registers_every_attack_with_norm_and_kind() -> None:
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[foolbox_attacks]))
    assert registry.names("attack") == sorted(EXPECTED)
    for name, (norm, kind) in EXPECTED.items():
        attack = registry.get("attack", name)
        assert isinstance(attack, AttackPlugin)
        assert (attack.norm, attack.kind) == (norm, kind)
        assert "\n" not in attack.description and "arXiv:" in attack.description
        attack.Params()  # every param has a default


def test_capabilities_are_declared_not_inferred_from_names() -> None:
    single = {a.name for a in ATTACKS if not a.iterative}
    assert single == {"fgsm"} and all(a.requires_gradients for a in ATTACKS)
    strong = {a.name: a.strengthen(a.Params(), 5, 3) for a in ATTACKS}
    assert {name for name, params in strong.items() if params is not None} == {"pgd_linf", "pgd_l2"}
    assert (strong["pgd_linf"].steps, strong["pgd_linf"].restarts) == (50, 3)
    assert (strong["pgd_l2"].steps, strong["pgd_l2"].restarts) == (250, 3)
    assert BY_NAME["pgd_linf"].Params().steps == 10  # strengthen returns new params, the defaults are untouched


@pytest.mark.parametrize("name", FIXED)
def test_fixed_attacks_stay_within_epsilon_and_bounds(toy: tuple, name: str) -> None:
    model, x, y = toy
    attack = BY_NAME[name]
    epsilons = EPSILONS[attack.norm]
    out = attack.run(model, x, y, epsilons, params(name)).adversarials
    assert len(out) == len(epsilons)
    for adv, eps in zip(out, epsilons, strict=True):
        assert adv.shape == x.shape and adv.dtype == torch.float32 and not adv.requires_grad
        assert adv.min() >= 0 and adv.max() <= 1
        assert norms(adv - x, attack.norm).max() <= eps + 1e-6
    assert torch.equal(out[0], x) or norms(out[0] - x, attack.norm).max() <= 1e-6
    assert not correct(model, out[-1], y).any()  # the largest ε breaks every sample


def test_pgd_success_high_at_large_and_low_at_tiny_epsilon(toy: tuple) -> None:
    model, x, y = toy
    clean = correct(model, x, y)
    tiny, large = run_pgd(toy, 0, [0.001, 0.3])
    assert (clean & ~correct(model, tiny, y)).float().sum() / clean.sum() <= 0.05
    assert (clean & ~correct(model, large, y)).float().sum() / clean.sum() >= 0.95


def test_pgd_robust_accuracy_non_increasing_in_epsilon(toy: tuple) -> None:
    model, x, y = toy
    accuracies = [correct(model, adv, y).float().mean().item() for adv in run_pgd(toy, 0, [0.01, 0.1, 0.3])]
    assert accuracies == sorted(accuracies, reverse=True)
    assert accuracies[0] > accuracies[-1]


def test_pgd_restarts_at_least_as_strong_and_keep_first_success(toy: tuple) -> None:
    model, x, y = toy
    settings = {"steps": 1, "rel_stepsize": 0.25}  # a weak attack, so the random start matters
    (one,) = run_pgd(toy, 7, [0.05], restarts=1, **settings)
    (three,) = run_pgd(toy, 7, [0.05], restarts=3, **settings)
    broken_one, broken_three = ~correct(model, one, y), ~correct(model, three, y)
    assert bool((broken_three | ~broken_one).all())  # every sample broken with 1 restart stays broken
    assert 0 < broken_one.sum() < broken_three.sum() < len(y)  # seed 7: the extra restarts break more
    assert torch.equal(three[broken_one], one[broken_one])  # the first success is kept verbatim


def test_pgd_is_deterministic_under_a_torch_seed(toy: tuple) -> None:
    first, second, other = (run_pgd(toy, seed, [0.05], steps=1)[0] for seed in (3, 3, 4))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)  # the random start depends on the seed


@pytest.mark.parametrize("name", MINIMAL)
def test_minimal_attacks_flip_most_samples_in_bounds(toy: tuple, name: str) -> None:
    model, x, y = toy
    attack = BY_NAME[name]
    out = attack.run(model, x, y, None, params(name, **FAST.get(name, {}))).adversarials
    assert len(out) == 1
    adv = out[0]
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    clean, still = correct(model, x, y), correct(model, adv, y)
    assert (clean & ~still).float().sum() / clean.sum() >= 0.9
    assert torch.equal(adv[still], x[still])  # failed samples come back as the clean input
    large = EPSILONS[attack.norm][-1]
    assert norms(adv - x, attack.norm)[clean].max() < large


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fmn_norms_are_small(toy: tuple, norm: str) -> None:
    """FMN finds perturbations well below a large ε and no larger than DeepFool's (its L2 projection works)."""
    model, x, y = toy
    clean = correct(model, x, y)
    fmn = BY_NAME[f"fmn_{norm}"].run(model, x, y, None, params(f"fmn_{norm}")).adversarials[0]
    deepfool = BY_NAME[f"deepfool_{norm}"].run(model, x, y, None, params(f"deepfool_{norm}")).adversarials[0]
    fmn_norms, deepfool_norms = norms(fmn - x, norm)[clean], norms(deepfool - x, norm)[clean]
    assert fmn_norms.max() < EPSILONS[norm][-1] / 2
    assert fmn_norms.median() <= 1.05 * deepfool_norms.median()


def test_carlini_wagner_failures_return_the_input(toy: tuple) -> None:
    model, x, y = toy
    weak = params("cw_l2", steps=1, binary_search_steps=1)
    adv = BY_NAME["cw_l2"].run(model, x, y, None, weak).adversarials[0]
    still = correct(model, adv, y)
    assert still.any()  # foolbox would return all-zero images for these
    assert torch.equal(adv[still], x[still])


def test_deepfool_candidates_clamped_to_class_count(toy: tuple) -> None:
    model, x, _ = toy
    for name in ("deepfool_linf", "deepfool_l2"):
        assert BY_NAME[name].build(DeepFoolParams(candidates=10), model, x).candidates == 2


def test_fmn_passes_params_verbatim_without_init_attack(toy: tuple) -> None:
    model, x, _ = toy
    attack = BY_NAME["fmn_linf"].build(FMNParams(steps=7, min_stepsize=0.02), model, x)
    assert (attack.steps, attack.min_stepsize, attack.init_attack) == (7, 0.02, None)


def test_attacks_leave_model_parameters_untouched(toy: tuple) -> None:
    model, x, y = toy
    BY_NAME["pgd_linf"].run(model, x, y, [0.1], params("pgd_linf", steps=2))
    BY_NAME["deepfool_l2"].run(model, x, y, None, params("deepfool_l2"))
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_empty_epsilon_list_returns_nothing(toy: tuple) -> None:
    model, x, y = toy
    assert BY_NAME["fgsm"].run(model, x, y, [], params("fgsm")).adversarials == []


@pytest.mark.parametrize(("mapping", "key"), [
    ({"steps": 0}, "attacks.0.steps"),
    ({"stepz": 5}, "attacks.0.stepz"),
    ({"restarts": 0}, "attacks.0.restarts"),
    ({"rel_stepsize": 0}, "attacks.0.rel_stepsize"),
    ({"abs_stepsize": "big"}, "attacks.0.abs_stepsize"),
])
def test_params_validation_names_the_key(mapping: dict, key: str) -> None:
    with pytest.raises(PlanError) as info:
        params("pgd_linf", **mapping)
    assert info.value.key == key and key in str(info.value)


def test_params_validation_per_attack() -> None:
    assert params("pgd_linf", abs_stepsize=None, steps=3).steps == 3
    assert params("fgsm").random_start is False
    with pytest.raises(PlanError, match="attacks.0.loss"):
        params("deepfool_l2", loss="hinge")
    with pytest.raises(PlanError, match="attacks.0.candidates"):
        params("deepfool_linf", candidates=1)
    with pytest.raises(PlanError, match="attacks.0.restarts"):
        params("bim_linf", restarts=2)  # only PGD restarts
    for attack in ATTACKS:
        assert params(attack.name) == attack.Params()
