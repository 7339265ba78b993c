"""The clean-start runs of random-start attacks (AutoAttack's convention): they join the worst case over attacks
and never change the attack's own numbers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import fake_plugins
from fake_plugins import Shift
from test_plan import VALID

from harness.attacks.clean_start import clean_start_specs
from harness.plan.schema import load_plan_text
from harness.registry.contracts import AttackOutput
from harness.registry.hookspecs import hookimpl
from harness.registry.manager import Registry, make_plugin_manager
from harness.run.runner import RunConfig, Runner


@dataclass
class HidingParams:
    random_start: bool = True


class HidingShift(Shift):
    """Shift whose random start hides every break (it then moves nothing); from the clean image it shifts by ε."""

    name, description, Params = "hiding_shift", "shift that a random start hides", HidingParams

    def run(self, model, images, labels, epsilons, params):
        if params.random_start:
            return AttackOutput([images.clone() for _ in epsilons])
        return super().run(model, images, labels, epsilons, params)


class _Plugins:
    @hookimpl
    def harness_register_attacks(self):
        return [HidingShift()]


def _registry() -> Registry:
    return Registry(make_plugin_manager(load_entry_points=False, extra=[sys.modules[fake_plugins.__name__],
                                                                        _Plugins()]))


PLAN = VALID.replace("  - attack: shift\n    id: shift_big\n    epsilons: [0.2]\n",
                     "  - attack: hiding_shift\n    id: hide\n    epsilons: [0.004, 0.2]\n    random_start: true\n")
assert "hiding_shift" in PLAN


def _run(tmp_path, text):
    registry = _registry()
    plan = load_plan_text(text, registry=registry, base_dir=tmp_path)
    return plan, Runner(plan, registry, RunConfig(out_root=tmp_path / "runs", progress=False,
                                                  echo=lambda m: None)).run()


def test_the_worst_case_counts_the_breaks_a_clean_start_finds_and_the_attacks_own_number_is_unchanged(tmp_path):
    plan, run = _run(tmp_path, PLAN)
    assert [s.id for s in clean_start_specs(plan.attacks)] == ["hide__clean_start"]
    naive = run.model("naive")
    own = naive.attack("hide").point(0.2)
    assert own.robust_accuracy == naive.clean.accuracy > 0.5  # the random start hid every break: its own number
    worst = naive.worst_case
    assert worst.find(0.2).robust_accuracy == 0.0  # from the clean image, a shift of 0.2 breaks every image
    assert "hide from the clean image" in dict(worst.attacks)[0.2]
    assert worst.clean_starts == ("hide from the clean image",)
    assert worst.label.startswith("worst case of 2 attacks") and "their clean-start runs" in worst.label
    assert worst.find(0.004).robust_accuracy == own.robust_accuracy  # nothing breaks at 0.004 either way
    saved = json.loads((run.run_dir / "results.json").read_text())["models"]["naive"]
    assert saved["worst_case"]["clean_starts"] == ["hide from the clean image"]
    assert saved["attacks"]["hide"]["points"][-1]["robust_accuracy"] == own.robust_accuracy
    assert "naive:attack:hide__clean_start" in json.loads((run.run_dir / "manifest.json").read_text())[
        "timings_seconds"]
    # the same run again gives the same worst case (the clean start is deterministic)
    again = _run(tmp_path / "again", PLAN)[1].model("naive").worst_case
    assert [p.robust_accuracy for p in again.points] == [p.robust_accuracy for p in worst.points]


def test_an_attack_without_a_random_start_gets_no_clean_start_run(tmp_path):
    plan, run = _run(tmp_path, PLAN.replace("random_start: true", "random_start: false"))
    assert clean_start_specs(plan.attacks) == []
    worst = run.model("naive").worst_case
    assert worst.find(0.2).robust_accuracy == 0.0 and worst.clean_starts == ()
    assert worst.label == "worst case of 2 attacks"
