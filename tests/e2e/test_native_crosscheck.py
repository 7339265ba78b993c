"""Cross-checks on the default plan (specs/ct_nodule.yaml): native FGSM/BIM/PGD against their Foolbox twins, and
the bisection schedule against the exhaustive sweep, on the plan's own model, test images, seeds and ε grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from attack_toys import one_torch_thread  # noqa: F401 - a fixture
from support import REPO

from harness.attacks.sweep import run_attack
from harness.data.batches import predict_logits
from harness.plan.schema import AttackSpec, Plan, load_plan
from harness.registry.contracts import DatasetContext, ModelContext
from harness.registry.manager import default_registry

DEFAULT_PLAN = REPO / "specs" / "ct_nodule.yaml"
CPU = torch.device("cpu")
TWINS = {"fgsm": ("fgsm", "native_fgsm"), "pgd_linf": ("pgd_linf", "native_pgd_linf"),
         "bim_linf": ("bim_linf", "native_bim_linf")}  # attack id in the plan: (Foolbox, native)
AGREEMENT = 0.01  # robust accuracy within 1 point at every ε


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def default_plan(session_cache: Path) -> tuple[Plan, torch.nn.Module, object, np.ndarray]:
    """The default plan, its naive model (trained into the session cache once) and clean test predictions."""
    registry = default_registry()
    plan = load_plan(DEFAULT_PLAN, registry=registry)
    dataset = registry.get("dataset", plan.dataset.plugin).load(
        plan.dataset.params, DatasetContext(seed=plan.seed, base_dir=plan.base_dir,
                                            cache_dir=session_cache))
    model = registry.get("model", plan.model.plugin).provide(plan.model.params, ModelContext(
        dataset=dataset, device=CPU, seed=plan.seed, base_dir=plan.base_dir, cache_dir=session_cache,
        architectures=registry.of_kind("architecture"))).module.eval()
    test = dataset.splits["test"]
    return plan, model, test, predict_logits(model, test, plan.batch_size, CPU).argmax(1)


def robust_accuracy(plan: Plan, model: torch.nn.Module, test: object, clean: np.ndarray,
                    spec: AttackSpec) -> np.ndarray:
    outcome = run_attack(model, test, spec, default_registry().get("attack", spec.attack), clean, plan.batch_size,
                         CPU, plan.seed, "naive")
    return (~outcome.success).mean(axis=1)


@pytest.mark.parametrize("attack_id", sorted(TWINS))
def test_native_agrees_with_foolbox_at_every_epsilon_of_the_default_plan(default_plan: tuple, attack_id: str) -> None:
    plan, model, test, clean = default_plan
    (spec,) = [s for s in plan.attacks if s.id == attack_id]
    foolbox_name, native_name = TWINS[attack_id]
    foolbox = AttackSpec(spec.id, foolbox_name, spec.params, spec.epsilons, spec.norm, spec.kind)
    native = AttackSpec(spec.id, native_name, spec.params, spec.epsilons, spec.norm, spec.kind)
    reference = robust_accuracy(plan, model, test, clean, foolbox)
    ours = robust_accuracy(plan, model, test, clean, native)
    assert np.abs(ours - reference).max() <= AGREEMENT, (reference.tolist(), ours.tolist())
    assert (ours <= reference + 1e-12).all()  # first-success rule: never weaker than Foolbox's last iterate


def test_bisect_agrees_with_the_exhaustive_sweep_with_fewer_attacks(default_plan: tuple) -> None:
    plan, model, test, clean = default_plan
    (pgd,) = [s for s in plan.attacks if s.id == "pgd_linf"]
    registry = default_registry()
    plugin = registry.get("attack", "native_pgd_linf")
    calls: dict[str, int] = {"ascending": 0, "bisect": 0}
    accuracy = {}
    for schedule in calls:
        spec = AttackSpec(pgd.id, plugin.name, pgd.params, pgd.epsilons, pgd.norm, pgd.kind, schedule)

        class Counting:
            def __getattr__(self, name: str) -> object:
                return getattr(plugin, name)

            def run(self, model, images, labels, epsilons, params, schedule=schedule):
                calls[schedule] += len(images)
                return plugin.run(model, images, labels, epsilons, params)

        outcome = run_attack(model, test, spec, Counting(), clean, plan.batch_size, CPU, plan.seed, "naive")
        accuracy[schedule] = (~outcome.success).mean(axis=1)
    assert np.abs(accuracy["bisect"] - accuracy["ascending"]).max() <= AGREEMENT, accuracy
    assert calls["bisect"] <= 0.7 * calls["ascending"], calls
