"""Per-sample metadata of a split (subgroup attributes such as manufacturer, sex, age band), checked by the core.

A split may carry `metadata`: attribute name → one string per sample (see harness.registry.contracts.Split).
Values must be categories, never identifiers: plugins bucket ages and thicknesses and never pass names or ids;
the core refuses an attribute with more distinct values than MAX_VALUES, or with one value per sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import DataError

MAX_VALUES = 24  # distinct values an attribute may have: more looks like an identifier or an unbucketed number
UNKNOWN = "unknown"  # the value of a sample whose attribute is missing


def split_metadata(split: Any, attributes: Sequence[str], where: str) -> dict[str, list[str]]:
    """The split's values of the requested attributes (only those are read or checked); DataError naming `where`
    (e.g. "data set 'dicom', test split") when one is missing or malformed."""
    raw = getattr(split, "metadata", None) or {}
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: metadata must map attribute names to lists of values, got {type(raw).__name__}")
    n = len(split)
    out: dict[str, list[str]] = {}
    for attribute in attributes:
        if attribute not in raw:
            have = ", ".join(sorted(str(a) for a in raw)) or "none"
            raise DataError(f"{where}: no metadata '{attribute}' for the plan's subgroups (it has: {have})")
        values = raw[attribute]
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != n:
            raise DataError(f"{where}: metadata '{attribute}' must hold one value per sample ({n})")
        out[attribute] = [UNKNOWN if v is None or str(v).strip() == "" else str(v).strip() for v in values]
        check_categories(attribute, out[attribute], where)
    return out


def check_categories(attribute: str, values: Sequence[str], where: str) -> None:
    """Refuse values that look like identifiers: too many distinct ones, or one per sample."""
    distinct = len(set(values))
    if distinct > MAX_VALUES or (distinct == len(values) and len(values) > 4):
        raise DataError(f"{where}: metadata '{attribute}' has {distinct} distinct values in {len(values)} samples; "
                        f"subgroup attributes must be categories (at most {MAX_VALUES} values; bucket ages and "
                        "measurements into bands, and never use names or ids)")
