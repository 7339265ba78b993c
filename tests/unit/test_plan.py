"""Plan loading and validation: typed plans, env expansion, overrides, and one-line errors with key and line."""

from __future__ import annotations

import textwrap

import pytest
from fake_plugins import fake_registry

from harness.errors import PlanError
from harness.plan.schema import load_plan_text

VALID = textwrap.dedent("""\
    harness: 1
    name: toy_plan
    seed: 3
    dataset:
      plugin: toy
      n: 30
    model:
      plugin: mean_threshold
    epsilons: [0.01, 0.004]
    attacks:
      - attack: shift
        steps: 2
      - attack: shift
        id: shift_big
        epsilons: [0.2]
    acceptance:
      - metric: clean_accuracy
        min: 0.75
      - metric: robust_accuracy
        attack: shift
        epsilon: 0.004
        min: 0.6
    """)


def load(text: str, overrides: list[str] | None = None):
    return load_plan_text(text, overrides, registry=fake_registry(), source="plan.yaml")


def test_valid_plan_is_typed_and_sorted():
    plan = load(VALID)
    assert plan.name == "toy_plan" and plan.seed == 3
    assert plan.epsilons == [0.004, 0.01]
    assert plan.dataset.params.n == 30 and plan.dataset.params.size == 8
    assert [a.id for a in plan.attacks] == ["shift", "shift_big"]
    assert plan.attacks[0].params.steps == 2 and plan.attacks[1].epsilons == [0.2]
    assert [c.id for c in plan.acceptance] == ["clean_accuracy>=0.75", "shift[eps=0.004]::robust_accuracy>=0.60"]


def test_overrides_are_applied_validated_and_recorded():
    plan = load(VALID, ["dataset.n=12", "attacks.shift.steps=5", "seed=9"])
    assert plan.dataset.params.n == 12 and plan.attacks[0].params.steps == 5 and plan.seed == 9
    assert plan.overrides == ["dataset.n=12", "attacks.shift.steps=5", "seed=9"]
    assert plan.resolved["dataset"]["n"] == 12
    with pytest.raises(PlanError, match=r"key 'dataset.n'.*must be ≥ 6"):
        load(VALID, ["dataset.n=2"])


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("TOY_N", "18")
    text = VALID.replace("n: 30", "n: 30\n  size: 8") .replace("name: toy_plan", "name: ${PLAN_NAME:-fallback}")
    assert load(text).name == "fallback"
    with pytest.raises(PlanError, match=r"\$\{MISSING_VAR\} is not set"):
        load(VALID.replace("name: toy_plan", "name: ${MISSING_VAR}"))


def test_batch_size_auto_is_a_flag_on_the_plan():
    assert load(VALID).batch_size_auto is False
    plan = load(VALID, ["batch_size=auto"])
    assert plan.batch_size_auto is True and plan.batch_size >= 1


def test_plan_hash_changes_with_content():
    assert load(VALID).sha256 != load(VALID, ["seed=4"]).sha256


# (replacement applied to VALID, expected fragment of the one-line error, expected YAML line)
MALFORMED = [
    (("  n: 30", "  n: 30\n  colour: red"), "key 'dataset.colour': unknown key", 7),
    (("  n: 30", "  n: thirty"), "key 'dataset.n': expected an integer, got 'thirty'", 6),
    (("  plugin: toy", "  plugin: nope"), "key 'dataset.plugin': unknown dataset plugin 'nope'", 5),
    (("  - attack: shift\n    steps: 2", "  - attack: nosuch"), "key 'attacks.0.attack': unknown attack 'nosuch'", 11),
    (("epsilons: [0.01, 0.004]", "epsilons: [0.01, 1.5]"), "key 'epsilons.1': epsilon 1.5 is outside (0, 1]", 9),
    (("epsilons: [0.01, 0.004]", "epsilons: [0.01, 0]"), "epsilon 0 is outside (0, 1]", 9),
    (("seed: 3", "seed: 3\nsede: 4"), "key 'sede': unknown key", 4),
    (("    steps: 2", "    steps: 0"), "key 'attacks.0.steps': must be ≥ 1", 12),
    (("    steps: 2", "    steps: 2\n    steps: 3"), "key 'attacks.0.steps': duplicate key", 13),
    (("    min: 0.6", "    min: high"), "key 'acceptance.1.min': expected a number", 22),
    (("    epsilon: 0.004", "    epsilon: 0.5"), "epsilon 0.5 is not in the grid of attack 'shift'", 21),
    (("  - metric: clean_accuracy", "  - metric: happiness"), "unknown metric 'happiness'", 17),
    (("harness: 1\n", ""), "not a harness plan", None),
    (("name: toy_plan", "name: [toy"), "invalid YAML", None),
    (("    min: 0.75", "    min: 0.75\n    max: 0.9"), "give exactly one of 'min' or 'max'", 17),
    (("seed: 3", "seed: 3\nbatch_size: huge"), "key 'batch_size': batch_size must be a positive integer or 'auto'", 4),
    (("seed: 3", "seed: 3\nbatch_size: 0"), "batch_size must be a positive integer or 'auto', got 0", 4),
    (("  - metric: clean_accuracy", "  - metric: clean_accuracy\n    model: hardened"),
     "refers to the hardened model but the plan has no 'defence'", 18),
]


@pytest.mark.parametrize("replacement, fragment, line", MALFORMED, ids=[m[1][:40] for m in MALFORMED])
def test_malformed_plan_gives_one_line_error_with_key_and_line(replacement, fragment, line):
    old, new = replacement
    assert old in VALID
    with pytest.raises(PlanError) as info:
        load(VALID.replace(old, new, 1))
    message = info.value.one_line()
    assert "\n" not in message
    assert fragment in message
    if line is not None:
        assert message.startswith(f"plan.yaml:{line}:") or message.startswith(f"plan.yaml:{line},"), message
