"""Text helpers the report sections share: plan values verbatim, hashes, paths reduced to file names, times."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any


def verbatim(value: Any) -> str:
    """A plan or parameter value as it would be written: true/false/null, numbers exactly, JSON for structures."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits, anything else verbatim."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return verbatim(value)


def mapping_rows(mapping: Any) -> list[tuple[str, str]]:
    """(key, verbatim value) rows of a mapping; none for anything else."""
    if not isinstance(mapping, Mapping):
        return []
    return [(str(k), verbatim(v)) for k, v in mapping.items()]


def short_hash(value: str | None, n: int = 12) -> str:
    """The first `n` hex digits of a sha256 (or 'n/a')."""
    return value[:n] if value else "n/a"


def basename(path: str) -> str:
    """The last component of a POSIX or Windows path."""
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    return name or path


def reduce_command(argv: list[Any] | None) -> str:
    """The command line with every path reduced to its file name (no directories of the machine leak)."""
    if not argv:
        return "n/a"
    out = []
    for arg in map(str, argv):
        if "=" in arg and ("/" in arg or "\\" in arg):
            key, _, value = arg.partition("=")
            out.append(f"{key}={basename(value)}" if ("/" in value or "\\" in value) else arg)
        elif "/" in arg or "\\" in arg:
            out.append(basename(arg))
        else:
            out.append(arg)
    return " ".join(out)


def utc_text(stamp: str | None) -> str:
    """'2026-11-25T19:42:57Z' → '2026-11-25 19:42:57 UTC'."""
    if not stamp:
        return "n/a"
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})Z?", stamp)
    return f"{match.group(1)} {match.group(2)} UTC" if match else stamp


def join_words(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_BREAK_AFTER = re.compile(r"(::|,|\[|\]|_|>=|<=|=|/|-(?!\d))")


def breakable_id(text: str) -> str:
    """An id with zero-width spaces after its separators (`::`, `,`, `[`, `=`, `_` …), so that a narrow cell wraps it
    there and never inside a number such as 0.004 (report.css sets such cells to wrap only at break points)."""
    return _BREAK_AFTER.sub(lambda m: m.group(1) + "\u200b", str(text))
