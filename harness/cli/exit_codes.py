"""Exit codes of every `harness` command (defined with the errors, in harness.errors)."""

from harness.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_PASS,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAIL", "EXIT_INCONCLUSIVE", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_PASS"]
