"""Content hashes of files and bytes (sha256, hex)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


CANONICAL_JSON = "json.dumps(value, sort_keys=True) with Python's defaults (', ' and ': ' separators, ASCII escapes)"
PLAN_ID_COMMAND = ("python3 -c 'import hashlib,json; m=json.load(open(\"manifest.json\")); "
                   "print(hashlib.sha256(json.dumps(m[\"plan\"][\"resolved\"], sort_keys=True).encode()).hexdigest())'")


def canonical_json_sha256(value: object) -> str:
    """Hex sha256 of `value` as canonical JSON (CANONICAL_JSON; non-JSON values as str): the plan id.

    PLAN_ID_COMMAND reproduces it from a run directory's manifest.json with the Python standard library alone.
    """
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
