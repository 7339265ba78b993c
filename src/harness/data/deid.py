"""De-identification: keyed hashes replace sample and patient identifiers before anything else sees them."""

from __future__ import annotations

import hashlib
import hmac

from harness.registry.contracts import DatasetBundle


def hash_id(identifier: str, salt: str, prefix: str = "") -> str:
    """A 16-hex-digit keyed hash of `identifier` (HMAC-SHA256 with the installation's secret salt)."""
    digest = hmac.new(salt.encode("utf-8"), str(identifier).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{prefix}{digest[:16]}"


def deidentify(bundle: DatasetBundle, salt: str) -> None:
    """Replace every split's sample and group ids, in place, by keyed hashes ('sample:<id>', 'patient:<id>')."""
    for split in bundle.splits.values():
        split.sample_ids = [hash_id(f"sample:{raw}", salt) for raw in split.sample_ids]
        split.group_ids = [hash_id(f"patient:{raw}", salt) for raw in split.group_ids]
