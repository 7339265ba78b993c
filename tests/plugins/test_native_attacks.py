"""The native attack plugins on small toy models (CPU, seconds): bounds, capabilities, Foolbox agreement, APGD's
convergence at any budget, the gradient-free Square attack, targeted APGD, and static shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from attack_toys import one_torch_thread, trained_mlp  # noqa: F401 - one_torch_thread is a fixture
from torch import nn

from harness.attacks.sweep import run_attack
from harness.plan.schema import AttackSpec
from harness.registry.contracts import AttackPlugin, TensorSplit
from harness.registry.manager import Registry, make_plugin_manager
from harness_plugins.attacks import foolbox_attacks, native_attacks
from harness_plugins.attacks.native_attacks import ATTACKS

NATIVE = {a.name: a for a in ATTACKS}
FOOLBOX = {a.name: a for a in foolbox_attacks.ATTACKS}
TWINS = {"native_fgsm": "fgsm", "native_bim_linf": "bim_linf", "native_pgd_linf": "pgd_linf",
         "native_pgd_l2": "pgd_l2"}
FAST = {"apgd_ce_linf": {"steps": 20}, "apgd_ce_l2": {"steps": 20}, "apgd_dlr_linf": {"steps": 20},
        "apgd_dlr_l2": {"steps": 20}, "square_linf": {"queries": 200}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    return trained_mlp(2)


def run(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilons: list[float], seed: int = 0,
        **overrides: object) -> list[torch.Tensor]:
    plugin = NATIVE[name]
    torch.manual_seed(seed)
    return plugin.run(model, x, y, epsilons, plugin.Params(**{**FAST.get(name, {}), **overrides})).adversarials


def fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def test_registered_with_declared_capabilities() -> None:
    registry = Registry(make_plugin_manager(load_entry_points=False, extra=[native_attacks]))
    assert registry.names("attack") == sorted(NATIVE)
    for attack in ATTACKS:
        assert isinstance(registry.get("attack", attack.name), AttackPlugin)
        assert attack.kind == "fixed_epsilon" and "arXiv:" in attack.description
    assert {a.name for a in ATTACKS if not a.iterative} == {"native_fgsm"}
    assert {a.name for a in ATTACKS if not a.requires_gradients} == {"square_linf"}
    assert NATIVE["square_linf"].strengthen(NATIVE["square_linf"].Params(), 5, 3).queries == 5000
    assert NATIVE["apgd_ce_linf"].strengthen(None, 2, 4).steps == 200
    assert NATIVE["native_fgsm"].strengthen(None, 5, 3) is None
    for name, twin in TWINS.items():  # the same plan keys as the Foolbox twin
        assert NATIVE[name].Params is FOOLBOX[twin].Params and NATIVE[name].norm == FOOLBOX[twin].norm


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_adversarials_stay_within_epsilon_and_bounds(toy: tuple, name: str) -> None:
    model, x, y = toy
    epsilons = [0.0, 0.05, 0.3] if NATIVE[name].norm == "linf" else [0.0, 0.5, 3.0]
    adversarials = run(name, model, x, y, epsilons)
    assert len(adversarials) == 3
    for eps, adv in zip(epsilons, adversarials, strict=True):
        delta = (adv - x).flatten(1)
        size = delta.abs().amax(1) if NATIVE[name].norm == "linf" else delta.norm(dim=1)
        assert float(size.max()) <= eps + 1e-5 and adv.min() >= 0 and adv.max() <= 1
    assert fooled(model, adversarials[0], y) == fooled(model, x, y)
    assert fooled(model, adversarials[-1], y) >= 0.9


@pytest.mark.parametrize("name", sorted(TWINS))
def test_native_matches_its_foolbox_twin_from_the_same_seed(toy: tuple, name: str) -> None:
    model, x, y = toy
    epsilons = [0.02, 0.05, 0.08] if NATIVE[name].norm == "linf" else [0.3, 0.6, 1.0]
    for eps in epsilons:
        torch.manual_seed(1)
        (reference,) = FOOLBOX[TWINS[name]].run(model, x, y, [eps], FOOLBOX[TWINS[name]].Params()).adversarials
        (ours,) = run(name, model, x, y, [eps], seed=1)
        with torch.no_grad():
            ref_wrong, our_wrong = model(reference).argmax(1) != y, model(ours).argmax(1) != y
        assert bool((our_wrong | ~ref_wrong).all()), "native misses an image Foolbox breaks"
        assert int((our_wrong & ~ref_wrong).sum()) <= 1  # at most the first-success rule's extra images


class Band(nn.Module):
    """Class 1 only while the mean pixel is within 0.01 of 0.5 (a parabola in the mean; gradients never vanish)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([torch.zeros_like(m), 0.2 - 2000 * (m - 0.5) ** 2], dim=1)


def test_apgd_converges_where_large_sign_steps_overshoot() -> None:
    x = torch.full((8, 1, 4, 4), 0.40) + torch.linspace(0, 0.02, 8).view(-1, 1, 1, 1)
    y = torch.zeros(8, dtype=torch.int64)
    model = Band().eval()
    (pgd_adv,) = run("native_pgd_linf", model, x, y, [0.5], random_start=False, steps=40)
    (apgd_adv,) = run("apgd_ce_linf", model, x, y, [0.5], steps=100, random_start=False)
    assert fooled(model, pgd_adv, y) == 0.0  # steps of ε/4 = 0.125 jump across the 0.02-wide band, back and forth
    assert fooled(model, apgd_adv, y) == 1.0  # the adaptive step halves until a step lands in it


def test_square_needs_no_gradients(toy: tuple) -> None:
    model, x, y = toy

    class NoBackward(nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(images)

    (adv,) = run("square_linf", NoBackward(), x, y, [0.3])
    assert fooled(model, adv, y) >= 0.9
    with pytest.raises(RuntimeError):
        run("native_pgd_linf", NoBackward(), x, y, [0.3])


def test_targeted_apgd_on_ten_classes_and_two() -> None:
    model, x, y = trained_mlp(10)
    (adv,) = run("apgd_dlr_linf", model, x, y, [0.1], target_classes=3)
    assert fooled(model, adv, y) >= 0.9
    binary, xb, yb = trained_mlp(2)
    (adv,) = run("apgd_dlr_linf", binary, xb, yb, [0.3])
    assert fooled(binary, adv, yb) >= 0.9


def test_static_shapes_keep_one_batch_shape_in_the_sweep(toy: tuple) -> None:
    model, x, y = toy
    seen: list[int] = []

    class Static(nn.Module):
        static_shapes = True

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            seen.append(len(images))
            return model(images)

    split = TensorSplit(x[:45], y[:45].numpy(), [str(i) for i in range(45)], [str(i) for i in range(45)])
    plugin = NATIVE["native_pgd_linf"]
    spec = AttackSpec("pgd", plugin.name, plugin.Params(), [0.02, 0.05, 0.3], "linf", "fixed_epsilon")
    clean = model(x[:45]).argmax(1).numpy()
    static = run_attack(Static(), split, spec, plugin, clean, 16, torch.device("cpu"), 0, "naive", judge=model)
    assert set(seen) == {16}  # the last batch (13 images) and shrinking ε rounds are padded to 16
    dynamic = run_attack(model, split, spec, plugin, clean, 16, torch.device("cpu"), 0, "naive")
    assert np.abs(static.success.mean(1) - dynamic.success.mean(1)).max() <= 2 / 45
