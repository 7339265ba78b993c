"""The `harness` command line: `main` parses arguments and dispatches to harness.cli.commands."""

from harness.cli.main import main

__all__ = ["main"]
