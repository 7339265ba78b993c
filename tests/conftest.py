"""Shared fixtures and the test tiers: tests/unit and tests/plugins are fast, tests/e2e is marked slow."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import TESTS, require_shared


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is `slow`: `pytest -m "not slow"` is the fast tier."""
    e2e = TESTS / "e2e"
    for item in items:
        if e2e in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """../shared/datasets: skipped with a reason when absent, a failure where CI requires it."""
    return require_shared()


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One weight cache for the whole test session, so plans that share a model train it once."""
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture(autouse=True)
def isolated_cache(session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HARNESS_CACHE_DIR at the session cache and fix the de-identification salt."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(session_cache))
    monkeypatch.setenv("HARNESS_DEID_SALT", "test-salt")
    return session_cache

# Plans used by the suite's own tests are run by those tests, not collected by the harness pytest plugin.
collect_ignore = ["plans", "real_plans"]
