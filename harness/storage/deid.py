"""Keyed hashes: of sample and patient identifiers (applied to every data set by harness.data.loading) and of data
file names in every output."""

from __future__ import annotations

import hashlib
import hmac
import secrets

FILE_HASH_DIGITS = 8
SHOW_PATHS_HINT = "set show_paths: true to see file paths"


def hash_id(identifier: str, salt: str, prefix: str = "") -> str:
    """A 16-hex-digit keyed hash of `identifier` (HMAC-SHA256 with the installation's secret salt)."""
    digest = hmac.new(salt.encode("utf-8"), str(identifier).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{prefix}{digest[:16]}"


class FileNamer:
    """How outputs name a data file: 'file <keyed hash of its folder-relative path>', and the path itself only when
    the plan says `show_paths: true` (file names often carry a patient's name or id)."""

    def __init__(self, salt: str | None = None, show_paths: bool = False) -> None:
        self._salt = salt if salt is not None else secrets.token_hex(16)  # no secret given: stable in this process
        self.show_paths = show_paths

    def __call__(self, relative_path: str) -> str:
        label = f"file {hash_id(f'file:{relative_path}', self._salt)[:FILE_HASH_DIGITS]}"
        return f"{label} ({relative_path})" if self.show_paths else label
