"""Shared test fixtures: paths to the real data sets and an isolated harness cache."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """../shared/datasets; always present in CI, so its absence is a failure, not a skip."""
    assert SHARED_DATASETS.is_dir(), f"missing {SHARED_DATASETS}: the real data sets must sit beside the repo"
    return SHARED_DATASETS


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
