"""`harness plugins`: list installed plugins with kind, provider and version."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from harness.errors import EXIT_PASS

NAME = "plugins"
HELP = "list installed plugins"


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of `harness plugins`."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def execute(args: argparse.Namespace, console: Console) -> int:
    """List every installed plugin with its kind, provider and version."""
    from harness.registry.manager import default_registry

    entries = default_registry().all()
    if args.json:
        console.print_json(json.dumps([{"kind": e.kind, "name": e.name, "provider": e.provider,
                                        "version": e.version, "module": e.module, "description": e.description}
                                       for e in entries]))
        return EXIT_PASS
    table = Table(title="Installed harness plugins", title_justify="left")
    for column in ("kind", "name", "provider", "version", "description"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(e.kind, e.name, e.provider, e.version, e.description)
    console.print(table)
    return EXIT_PASS
