"""Fixtures for teams' own tests: `harness_plan` and `harness_run`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.pytest_plugin.session import harness_session

if TYPE_CHECKING:
    from harness.plan.schema import Plan
    from harness.results.view import RunResults


def settings_to_overrides(overrides: list[str] | tuple[str, ...] | None, settings: dict[str, Any]) -> list[str]:
    """`overrides` strings ('model.epochs=2') then keyword settings, where '__' stands for '.' (model__epochs=2)."""
    out = list(overrides or [])
    for key, value in settings.items():
        out.append(f"{key.replace('__', '.')}={json.dumps(value)}")
    return out


@pytest.fixture(scope="session")
def harness_plan(pytestconfig: pytest.Config) -> Callable[..., Plan]:
    """Factory: ``harness_plan(path, overrides=None, **settings)`` → a validated Plan (PlanError if invalid).

    A relative path is taken from the rootdir. Overrides apply after --harness-set: ``overrides=["model.epochs=2"]``
    and/or settings with '__' for '.', ``harness_plan("specs/ct_nodule.yaml", model__epochs=2)``.
    """
    session = harness_session(pytestconfig)

    def load(path: str | Path, overrides: list[str] | None = None, **settings: Any) -> Plan:
        return session.load(session.resolve(path), settings_to_overrides(overrides, settings))

    return load


@pytest.fixture(scope="session")
def harness_run(pytestconfig: pytest.Config, harness_plan: Callable[..., Plan]) -> Callable[..., RunResults]:
    """Factory: ``harness_run(plan_or_path, overrides=None, **settings)`` → RunResults of that plan's run.

    Runs are cached for the session by plan file and resolved content, shared with the plan's collected items.
    A run that fails raises its HarnessError; with --harness-report a failed PDF rendering fails the test.
    """
    from harness.plan.schema import Plan

    session = harness_session(pytestconfig)

    def run(plan_or_path: Plan | str | Path, overrides: list[str] | None = None, **settings: Any) -> RunResults:
        if isinstance(plan_or_path, Plan):
            if overrides or settings:
                raise TypeError("harness_run: overrides apply to a plan path; pass them to harness_plan instead")
            plan = plan_or_path
        else:
            plan = harness_plan(plan_or_path, overrides, **settings)
        record = session.run(plan)
        if record.error is not None:
            raise record.error
        if record.report_error:
            pytest.fail(record.report_error, pytrace=False)
        return record.result  # type: ignore[return-value]

    return run
