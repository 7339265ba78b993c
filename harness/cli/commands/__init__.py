"""The subcommands of `harness`, in the order `--help` lists them; one module each.

A command module defines NAME, HELP, `configure(parser)` (its arguments) and `execute(args, console) -> int`
(its exit code). Heavy imports stay inside `execute`, so `harness --help` does not load torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMAND_MODULES = ("run", "validate", "report", "verify", "compare", "runs", "plugins", "export_reference",
                   "fingerprint_data")


def load_commands() -> list[ModuleType]:
    """Every command module, in help order."""
    return [importlib.import_module(f"{__name__}.{name}") for name in COMMAND_MODULES]
