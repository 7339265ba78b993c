"""De-identification: salted hashes for sample and patient identifiers before they leave the data layer."""

from __future__ import annotations

import hashlib
import hmac


def hash_id(identifier: str, salt: str, prefix: str = "") -> str:
    """A 16-hex-digit keyed hash of `identifier` (HMAC-SHA256 with the run's salt)."""
    digest = hmac.new(salt.encode("utf-8"), str(identifier).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{prefix}{digest[:16]}"
