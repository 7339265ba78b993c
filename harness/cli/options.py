"""Command-line options shared by several commands."""

from __future__ import annotations

import argparse


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """`--set KEY.PATH=VALUE` (repeatable): override a plan value."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a plan value (repeatable), e.g. --set model.epochs=3")
