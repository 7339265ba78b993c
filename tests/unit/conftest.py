"""tests/unit tests the core with the fake plugins of tests/fake_plugins.py: every test here runs as if the built-in
plugins were uninstalled (no entry point is loaded), which is what docs/architecture.md promises. A test that needs
the built-ins belongs in tests/plugins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.registry.manager import default_registry


@pytest.fixture(autouse=True)
def without_builtin_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No entry-point plugin is loaded, here or in a `harness` subprocess (HARNESS_NO_ENTRY_POINTS)."""
    monkeypatch.setenv("HARNESS_NO_ENTRY_POINTS", "1")
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()
