"""The plan's corruptions section and criteria on corruptions: what is accepted, and one-line errors naming key and
line for everything else (core, with the fake corruptions of tests/fake_plugins.py)."""

from __future__ import annotations

import pytest
from fake_plugins import fake_registry
from test_plan import VALID

from harness.errors import PlanError
from harness.plan.schema import load_plan_text

SECTION = """\
corruptions:
  - corruption: darken
  - corruption: darken
    id: darken_steady
    severities: [5, 1, 3]
    jitter: 0.0
"""


def load(text: str = VALID + SECTION, overrides: list[str] | None = None):
    return load_plan_text(text, overrides, registry=fake_registry(), source="plan.yaml")


def error(overrides: list[str], text: str = VALID + SECTION) -> PlanError:
    with pytest.raises(PlanError) as caught:
        load(text, overrides)
    return caught.value


def test_corruptions_are_parsed_with_ids_sorted_severities_and_overrides():
    plan = load()
    first, second = plan.corruptions
    assert (first.id, first.corruption, first.severities) == ("darken", "darken", [1, 2, 3, 4, 5])
    assert (second.id, second.severities, second.params.jitter) == ("darken_steady", [1, 3, 5], 0.0)
    assert second.key == "corruptions.1" and second.line == VALID.count("\n") + 3
    assert load(VALID).corruptions == []


@pytest.mark.parametrize(("override", "key", "message"), [
    ("corruptions.0.corruption=blur", "corruptions.0.corruption", "unknown corruption 'blur' (available: darken,"),
    ("corruptions.0.severities=[0]", "corruptions.0.severities.0", "severity 0 is not one of 1, 2, 3, 4, 5"),
    ("corruptions.0.severities=[6]", "corruptions.0.severities.0", "severity 6 is not one of"),
    ("corruptions.0.severities=[2.5]", "corruptions.0.severities.0", "severity 2.5 is not one of"),
    ("corruptions.0.severities=[true]", "corruptions.0.severities.0", "severity True is not one of"),
    ("corruptions.0.severities=[]", "corruptions.0.severities", "non-empty list of severities"),
    ("corruptions.0.severities=[2, 2]", "corruptions.0.severities", "must not repeat"),
    ("corruptions.0.amount=0.5", "corruptions.0.amount",
     "'amount' is what the severities of darken set (1: 0.05, 2: 0.1, 3: 0.15, 4: 0.2, 5: 0.3, in of the range)"),
    ("corruptions.1.jitter=-1", "corruptions.1.jitter", "must be ≥ 0, got -1.0"),
    ("corruptions.1.sharpness=2", "corruptions.1.sharpness", "unknown key"),
    ("corruptions.1.id=darken", "corruptions.1.id", "corruption id 'darken' is used twice"),
    ("corruptions.1.id=any", "corruptions.1.id", "(and not 'any')"),
    ("corruptions=darken", "corruptions", "expected a list of corruptions"),
])
def test_bad_corruption_entries_are_one_line_errors_naming_the_key(override, key, message):
    exc = error([override])
    assert exc.key == key and message in exc.detail and exc.source == f"--set {override}"  # blamed on the override
    assert "\n" not in str(exc)


CRITERIA = """\
  - metric: accuracy
    corruption: darken
    severity: 3
    min: 0.8
  - metric: relative_drop
    corruption: any
    severity: 3
    max: 0.05
  - metric: corruption_error
    corruption: darken_steady
    max: 2
  - metric: mean_corruption_error
    max: 1.5
"""


def test_criteria_on_corruptions_get_readable_ids():
    plan = load(VALID + CRITERIA + SECTION)
    ids = [c.id for c in plan.acceptance[2:]]
    assert ids == ["darken[severity=3]::accuracy>=0.80", "any_corruption[severity=3]::relative_drop<=0.05",
                   "darken_steady::corruption_error<=2.00", "mean_corruption_error<=1.50"]
    accuracy = plan.acceptance[2]
    assert (accuracy.corruption, accuracy.severity, accuracy.attack, accuracy.epsilon) == ("darken", 3, None, None)


@pytest.mark.parametrize(("override", "key", "message"), [
    ("acceptance.2.corruption=nope", "acceptance.2.corruption",
     "metric accuracy needs 'corruption' naming one of the plan's corruptions (darken, darken_steady) or 'any'"),
    ("acceptance.2.severity=2.5", "acceptance.2.severity", "metric accuracy needs a 'severity' (one of 1, 2, 3, 4, 5)"),
    ("acceptance.2.corruption=darken_steady", None, None),  # darken_steady runs at 3: valid
    ("acceptance.2.severity=2", None, None),
    ("acceptance.3.severity=6", "acceptance.3.severity", "no corruption of the plan runs at severity 6"),
    ("acceptance.4.severity=3", "acceptance.4.severity", "takes no severity (it summarises every severity run)"),
    ("acceptance.0.corruption=darken", "acceptance.0.corruption", "metric clean_accuracy takes no corruption"),
    ("acceptance.2.attack=shift", "acceptance.2.attack", "metric accuracy takes no attack"),
])
def test_bad_corruption_criteria_are_one_line_errors(override, key, message):
    text = VALID + CRITERIA + SECTION
    if key is None:
        load(text, [override])
        return
    exc = error([override], text)
    assert exc.key == key and message in exc.detail


def test_severity_a_corruption_does_not_run_at_is_refused():
    exc = error(["acceptance.2.corruption=darken_steady", "acceptance.2.severity=2"], VALID + CRITERIA + SECTION)
    assert exc.key == "acceptance.2.severity"
    assert "corruption 'darken_steady' does not run at severity 2 (its severities: 1, 3, 5)" in exc.detail


def test_mean_corruption_error_needs_corruptions_in_the_plan():
    text = VALID + "  - metric: mean_corruption_error\n    max: 1.5\n"
    exc = error([], text)
    assert exc.key == "acceptance.2.metric" and "needs corruptions in the plan" in exc.detail


def test_a_regression_gate_on_a_corruption_is_refused():
    gate = ("  - metric: accuracy\n    corruption: darken\n    severity: 3\n    baseline: latest-pass\n"
            "    max_drop: 0.02\n")
    exc = error([], VALID + gate + SECTION)
    assert exc.key == "acceptance.2.baseline" and "not to corruptions" in exc.detail
