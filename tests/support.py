"""Paths the tests share, and the rule for the real data sets: skip with a reason locally, fail in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PLANS = TESTS / "plans"
REAL_PLANS = TESTS / "real_plans"
SHARED_DATASETS = Path(os.environ.get("HARNESS_SHARED_DATASETS") or REPO.parent / "shared" / "datasets")
REQUIRE_SHARED = "HARNESS_REQUIRE_SHARED_DATASETS"  # set by .ci/run: CI always has the data sets


def require_shared(path: Path = SHARED_DATASETS) -> Path:
    """`path` under ../shared/datasets; skipped with a reason when absent, a failure when CI requires it."""
    if path.exists():
        return path
    message = f"{path} is missing: the real data sets sit in ../shared/datasets beside the checkout"
    if os.environ.get(REQUIRE_SHARED):
        pytest.fail(f"{message} (${REQUIRE_SHARED} is set, as in CI)")
    pytest.skip(message)
