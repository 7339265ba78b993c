"""Subgroup attributes from DICOM headers, bucketed so that no value identifies a person.

Read: Manufacturer (vendor name, shortened for the common vendors), PatientSex (M, F, O), PatientAge (decade bands;
90 and over pooled, as HIPAA's safe harbour requires) and SliceThickness (bands in mm). Names, ids, dates and raw
ages are never read. A missing or unreadable tag gives 'unknown'.
"""

from __future__ import annotations

import re
from typing import Any

from harness.data.metadata import UNKNOWN

VENDORS = (("GE", "GE"), ("SIEMENS", "Siemens"), ("PHILIPS", "Philips"), ("TOSHIBA", "Canon"), ("CANON", "Canon"),
           ("HOLOGIC", "Hologic"), ("FUJI", "Fujifilm"), ("AGFA", "Agfa"), ("CARESTREAM", "Carestream"),
           ("KODAK", "Carestream"), ("KONICA", "Konica Minolta"), ("HITACHI", "Hitachi"), ("UNITED IMAGING", "UIH"))
THICKNESS_BANDS_MM = ((1.0, "<=1 mm"), (2.5, "1-2.5 mm"), (5.0, "2.5-5 mm"))  # upper limits; above: '>5 mm'
_AGE = re.compile(r"^(\d{1,3})([DWMY])$")


def manufacturer(value: Any) -> str:
    """The vendor: 'GE', 'Siemens', ... for the common ones, else the tag's text (at most 40 characters)."""
    text = " ".join(str(value or "").split())
    if not text:
        return UNKNOWN
    upper = text.upper()
    for prefix, name in VENDORS:
        if upper.startswith(prefix):
            return name
    return text[:40]


def sex(value: Any) -> str:
    """'M', 'F', 'O' (DICOM's codes) or 'unknown'."""
    text = str(value or "").strip().upper()
    return text if text in ("M", "F", "O") else UNKNOWN


def age_band(value: Any) -> str:
    """A DICOM age string ('065Y', '006M') as a decade band ('60-69'); '90+' from 90 years; 'unknown' otherwise."""
    found = _AGE.match(str(value or "").strip().upper())
    if not found:
        return UNKNOWN
    years = int(found.group(1)) if found.group(2) == "Y" else 0
    if years >= 90:
        return "90+"
    decade = years // 10 * 10
    return f"{decade}-{decade + 9}"


def thickness_band(value: Any) -> str:
    """SliceThickness in mm as a band: '<=1 mm', '1-2.5 mm', '2.5-5 mm', '>5 mm' (or 'unknown')."""
    try:
        mm = float(value)
    except (TypeError, ValueError):
        return UNKNOWN
    if not mm > 0:
        return UNKNOWN
    return next((band for limit, band in THICKNESS_BANDS_MM if mm <= limit), ">5 mm")


TAGS = {"manufacturer": ("Manufacturer", manufacturer), "sex": ("PatientSex", sex),
        "age_band": ("PatientAge", age_band), "slice_thickness": ("SliceThickness", thickness_band)}


def header_attributes(ds: Any) -> dict[str, str]:
    """Every attribute of TAGS from a parsed header (a pydicom Dataset)."""
    out = {}
    for attribute, (keyword, bucket) in TAGS.items():
        try:
            out[attribute] = bucket(ds.get(keyword))
        except Exception:  # noqa: BLE001 - a corrupt element must not stop loading: the attribute is unknown
            out[attribute] = UNKNOWN
    return out
