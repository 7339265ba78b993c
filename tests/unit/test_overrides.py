"""`--set` overrides: an invalid value is blamed on the command-line override, never on the plan file's line."""

from __future__ import annotations

import pytest
from fake_plugins import fake_registry
from test_plan import VALID

from harness.errors import PlanError
from harness.plan.schema import load_plan_text


def error_of(overrides: list[str], text: str = VALID) -> str:
    with pytest.raises(PlanError) as info:
        load_plan_text(text, overrides, registry=fake_registry(), source="plan.yaml")
    return info.value.one_line()


@pytest.mark.parametrize("override, expected", [
    ("dataset.n=abc", "--set dataset.n=abc, key 'dataset.n': expected an integer, got 'abc'"),
    ("attacks.shift.steps=0", "--set attacks.shift.steps=0, key 'attacks.0.steps': must be ≥ 1"),
    ("dataset.colour=red", "--set dataset.colour=red, key 'dataset.colour': unknown key"),
    ("acceptance.1.epsilon=0.5", "--set acceptance.1.epsilon=0.5, key 'acceptance.1.epsilon': epsilon 0.5 is not"),
    ("seed", "--set seed: an override must look like key.path=value"),
    ("attacks.nosuch.steps=3", "--set attacks.nosuch.steps=3, key 'attacks.nosuch': no list item with id 'nosuch'"),
])
def test_an_invalid_override_is_blamed_on_the_command_line(override, expected):
    message = error_of([override])
    assert message.startswith(expected), message
    assert "plan.yaml" not in message


def test_the_last_override_of_a_key_is_blamed_and_plan_errors_keep_their_line():
    assert error_of(["dataset.n=abc", "dataset.n=xyz"]).startswith("--set dataset.n=xyz, ")
    broken = VALID.replace("  n: 30", "  n: thirty")
    assert error_of(["seed=4"], broken).startswith("plan.yaml:6, key 'dataset.n'")  # not the override's fault
