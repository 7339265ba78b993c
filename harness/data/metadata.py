"""Per-sample metadata of a split (subgroup attributes such as manufacturer, sex, age band), checked by the core.

A split may carry `metadata`: attribute name → one string per sample (see harness.registry.contracts.Split).
Values must be categories, never identifiers: plugins bucket ages and thicknesses and never pass names or ids.
The core refuses an attribute with more distinct values than MAX_VALUES or one value per sample, and, unless the
plan declares it safe (`subgroups: [{name: site, identifier: false}]`), one whose values look like identifiers
(`identifier_reason`): DICOM person-name syntax (`DOE^JANE`), MRN- or date-like values, close to one value per
patient, or a patient-id column. A refusal names the column and the fix, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from harness.errors import DataError

MAX_VALUES = 24  # distinct values an attribute may have: more looks like an identifier or an unbucketed number
UNKNOWN = "unknown"  # the value of a sample whose attribute is missing
PER_PATIENT = 0.8  # distinct values / patients at or above which an attribute looks like one value per patient
MIN_PATIENTS = 10  # the per-patient rule needs at least this many patients (small sets have few of each band)
IDENTIFIER_NAMES = re.compile(r"(?i)^(patient[_ -]?(id|name|number|no)?|mrn|medical[_ -]?record.*|accession.*|"
                              r"study[_ -]?(instance[_ -]?)?uid|series[_ -]?(instance[_ -]?)?uid|sop.*uid|"
                              r"birth[_ -]?date|patientbirthdate|dob|name|subject[_ -]?id)$")
PERSON_NAME = re.compile(r"\^")  # DICOM PN: family^given^middle^prefix^suffix
MRN_LIKE = re.compile(r"(?i)(\bmrn\b|mrn\d|\d{6,}|[a-z]{1,4}[-_]?\d{5,})")
DATE_LIKE = re.compile(r"(\b(19|20)\d{2}[-/.](0?[1-9]|1[0-2])[-/.]\d{1,2}\b|\b\d{1,2}[-/.]\d{1,2}[-/.](19|20)?\d{2}\b|"
                       r"\b(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\b)")
FIX = "hash it or map it to a category (e.g. site A/B, an age band) before it is used"


def split_metadata(split: Any, attributes: Sequence[str], where: str,
                   declared_safe: Collection[str] = ()) -> dict[str, list[str]]:
    """The split's values of the requested attributes (only those are read or checked); DataError naming `where`
    (e.g. "data set 'dicom', test split") when one is missing, malformed or looks like an identifier (unless the plan
    declared it `identifier: false`)."""
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
        if attribute not in declared_safe:
            check_identifier(attribute, out[attribute], getattr(split, "group_ids", None), where)
    return out


def identifier_reason(attribute: str, values: Sequence[str], group_ids: Sequence[str] | None = None) -> str | None:
    """Why an attribute's values look like identifiers (a phrase without any value), or None."""
    if IDENTIFIER_NAMES.match(attribute.strip()):
        return "its name is that of a patient identifier column"
    known = [v for v in values if v != UNKNOWN]
    if any(PERSON_NAME.search(v) for v in known):
        return "a value has DICOM person-name syntax ('^')"
    if any(DATE_LIKE.search(v) for v in known):
        return "a value looks like a date"
    if any(MRN_LIKE.search(v) for v in known):
        return "a value looks like a record number (MRN or a long digit run)"
    if group_ids is not None and len(group_ids) == len(values):
        patients = len(set(group_ids))
        distinct = len(set(known))
        pairs = set(zip(values, group_ids, strict=True))
        if patients >= 5 and distinct == patients == len(pairs):
            return "its values follow the patient grouping one to one (the data set's patient-id column)"
        if patients >= MIN_PATIENTS and distinct >= PER_PATIENT * patients:
            return f"it has {distinct} distinct values for {patients} patients (close to one per patient)"
    return None


def check_identifier(attribute: str, values: Sequence[str], group_ids: Sequence[str] | None, where: str) -> None:
    """DataError naming the column and the fix when its values look like identifiers (never quoting a value)."""
    reason = identifier_reason(attribute, values, group_ids)
    if reason:
        raise DataError(f"{where}: metadata '{attribute}' looks like an identifier ({reason}); {FIX}, or, if it "
                        f"is not one, declare it in the plan: subgroups: [{{name: {attribute}, identifier: false}}]")


def check_categories(attribute: str, values: Sequence[str], where: str) -> None:
    """Refuse values that look like identifiers: too many distinct ones, or one per sample."""
    distinct = len(set(values))
    if distinct > MAX_VALUES or (distinct == len(values) and len(values) > 4):
        raise DataError(f"{where}: metadata '{attribute}' has {distinct} distinct values in {len(values)} samples; "
                        f"subgroup attributes must be categories (at most {MAX_VALUES} values): {FIX}; never use "
                        "names or ids")
